import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { httpStatus } from '../../../src/controller/errors.ts';
import { execCredentialSource, parseExecConfig } from '../../../src/controller/execcred.ts';
import {
  forEachLine,
  KubeApiError,
  loadInCluster,
  loadKubeconfigFile,
  withQuery,
} from '../../../src/controller/kubeapi.ts';

const dir = mkdtempSync(join(tmpdir(), 'kpt-kubeapi-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function kubeconfig(name: string, user: Record<string, unknown>, cluster: Record<string, unknown>): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: 'other', cluster: { server: 'https://wrong:1' } },
        { name: 'c', cluster },
      ],
      users: [{ name: 'u', user }],
      contexts: [
        { name: 'first', context: { cluster: 'other', user: 'u' } },
        { name: 'mine', context: { cluster: 'c', user: 'u', namespace: 'team-a' } },
      ],
      'current-context': 'mine',
    }),
  );
  return path;
}

test("a kubeconfig's current context: server, CA file relative to the kubeconfig, token, namespace", () => {
  writeFileSync(join(dir, 'ca.crt'), 'CA PEM');
  const c = loadKubeconfigFile(
    kubeconfig(
      'a',
      { token: 'tok' },
      { server: 'https://127.0.0.1:6443/', 'certificate-authority': 'ca.crt' },
    ),
  );
  assert.equal(c.server, 'https://127.0.0.1:6443');
  assert.equal(c.ca?.toString(), 'CA PEM');
  assert.equal(c.token(), 'tok');
  assert.equal(c.namespace, 'team-a');
});

test('client certificates from data fields; a token file is read', () => {
  writeFileSync(join(dir, 'token'), 'from-file\n');
  const c = loadKubeconfigFile(
    kubeconfig(
      'b',
      {
        'client-certificate-data': Buffer.from('CERT').toString('base64'),
        'client-key-data': Buffer.from('KEY').toString('base64'),
        tokenFile: join(dir, 'token'),
      },
      { server: 'https://h:1', 'certificate-authority-data': Buffer.from('CA').toString('base64') },
    ),
  );
  assert.equal(c.cert?.toString(), 'CERT');
  assert.equal(c.key?.toString(), 'KEY');
  assert.equal(c.ca?.toString(), 'CA');
  assert.equal(c.token(), 'from-file');
});

test('auth-provider and missing files are refused with E_KUBECONFIG naming the problem', () => {
  assert.throws(
    () =>
      loadKubeconfigFile(kubeconfig('c', { 'auth-provider': { name: 'gcp' } }, { server: 'https://h:1' })),
    (e: { code?: string; message?: string }) =>
      e.code === 'E_KUBECONFIG' && /auth-provider/.test(e.message ?? '') && /exec/.test(e.message ?? ''),
  );
  assert.throws(
    () =>
      loadKubeconfigFile(
        kubeconfig('d', {}, { server: 'https://h:1', 'certificate-authority': 'missing.crt' }),
      ),
    (e: { code?: string; message?: string }) =>
      e.code === 'E_KUBECONFIG' && /missing\.crt/.test(e.message ?? ''),
  );
  assert.throws(
    () => loadKubeconfigFile(join(dir, 'nope')),
    (e: { code?: string }) => e.code === 'E_KUBECONFIG',
  );
});

/**
 * An exec credential plugin: a Node script that prints an ExecCredential. Its token counts its runs (a file beside
 * it), and it records the KUBERNETES_EXEC_INFO and PLUGIN_ENV it was given; `status` is merged into its answer.
 */
function plugin(name: string, status: Record<string, unknown>, extra = ''): string {
  const path = join(dir, `${name}.mjs`);
  writeFileSync(
    path,
    `#!${process.execPath}
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
const counter = ${JSON.stringify(join(dir, `${name}.runs`))};
const n = (existsSync(counter) ? Number(readFileSync(counter, 'utf8')) : 0) + 1;
writeFileSync(counter, String(n));
writeFileSync(${JSON.stringify(join(dir, `${name}.info`))}, JSON.stringify({ info: JSON.parse(process.env.KUBERNETES_EXEC_INFO), env: process.env.PLUGIN_ENV, args: process.argv.slice(2) }));
${extra}
const info = JSON.parse(process.env.KUBERNETES_EXEC_INFO);
process.stdout.write(JSON.stringify({ apiVersion: info.apiVersion, kind: 'ExecCredential', status: { token: 'tok-' + n, ...${JSON.stringify(status)} } }));
`,
    { mode: 0o755 },
  );
  return path;
}

const execUser = (command: string, more: Record<string, unknown> = {}) => ({
  exec: {
    apiVersion: 'client.authentication.k8s.io/v1',
    command,
    args: ['--region', 'x'],
    env: [{ name: 'PLUGIN_ENV', value: 'set' }],
    ...more,
  },
});

/** The credential source of a plugin written by plugin(), on the given clock. */
const source = (name: string, now: () => number) =>
  execCredentialSource(
    parseExecConfig(execUser(join(dir, `${name}.mjs`)).exec, name),
    name,
    dir,
    undefined,
    now,
  );

test('exec plugin: its token is sent; it gets KUBERNETES_EXEC_INFO (cluster when asked), args and env; a relative command is found beside the kubeconfig', () => {
  plugin('p1', {});
  const c = loadKubeconfigFile(
    kubeconfig('e1', execUser('./p1.mjs', { provideClusterInfo: true }), {
      server: 'https://h:1',
      'certificate-authority-data': Buffer.from('CA').toString('base64'),
    }),
  );
  assert.equal(c.token(), 'tok-1');
  assert.equal(c.token(), 'tok-1', 'no expiry: the same token until the API server refuses it');
  const seen = JSON.parse(readFileSync(join(dir, 'p1.info'), 'utf8'));
  assert.equal(seen.env, 'set');
  assert.deepEqual(seen.args, ['--region', 'x']);
  assert.equal(seen.info.kind, 'ExecCredential');
  assert.equal(seen.info.apiVersion, 'client.authentication.k8s.io/v1');
  assert.equal(seen.info.spec.interactive, false);
  assert.equal(seen.info.spec.cluster.server, 'https://h:1');
  assert.equal(seen.info.spec.cluster['certificate-authority-data'], Buffer.from('CA').toString('base64'));
});

test('exec plugin: a token about to expire is renewed in the background, the old one used meanwhile; runs at most every 10 s', async () => {
  plugin('p2', { expirationTimestamp: new Date(Date.now() + 30_000).toISOString() });
  const c = loadKubeconfigFile(kubeconfig('e2', execUser(join(dir, 'p2.mjs')), { server: 'https://h:1' }));
  const runs = () => readFileSync(join(dir, 'p2.runs'), 'utf8');
  // Within a minute of expiry: the plugin runs again, and the old token is used until its answer comes.
  assert.equal(c.token(), 'tok-1');
  for (let i = 0; i < 200 && c.token() === 'tok-1'; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(c.token(), 'tok-2');
  // The new token expires as soon, but the plugin ran less than 10 s ago: not again, not even for a 401.
  c.refresh?.();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(runs(), '2');
  assert.equal(c.token(), 'tok-2');
});

test('exec plugin: a 401 runs it again (background), and the next requests carry the new token', async () => {
  plugin('p3', {});
  const src = source('p3', Date.now);
  assert.equal(src.token(), 'tok-1');
  src.refresh();
  for (let i = 0; i < 200 && src.token() === 'tok-1'; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(src.token(), 'tok-2');
  assert.equal(src.problem(), undefined);
});

test('exec plugin: an expiring token is renewed; a failing renewal keeps the old token and says why', async () => {
  // Fails from its second run on, with a message on stderr.
  plugin(
    'p4',
    { expirationTimestamp: new Date(Date.now() + 120_000).toISOString() },
    "if (n > 1) { process.stderr.write('token service unreachable\\nmore'); process.exit(3); }",
  );
  let clock = Date.now();
  const src = source('p4', () => clock);
  assert.equal(src.token(), 'tok-1');
  clock += 61_000; // within a minute of expiry
  assert.equal(src.token(), 'tok-1', 'the old token while the plugin runs');
  for (let i = 0; i < 200 && src.problem() === undefined; i++) await new Promise((r) => setTimeout(r, 25));
  assert.match(src.problem() ?? '', /p4\.mjs exited with 3: token service unreachable$/);
  assert.equal(src.token(), 'tok-1');
});

test('exec plugin: bad configurations and bad answers are E_KUBECONFIG errors that name the field', () => {
  const refused = (name: string, user: Record<string, unknown>, re: RegExp) =>
    assert.throws(
      () => loadKubeconfigFile(kubeconfig(name, user, { server: 'https://h:1' })),
      (e: { code?: string; message?: string }) => e.code === 'E_KUBECONFIG' && re.test(e.message ?? ''),
      `${name}: ${re}`,
    );
  plugin('ok', {});
  refused('x1', { exec: { command: join(dir, 'ok.mjs') } }, /exec: apiVersion: expected one of/);
  refused('x2', execUser(''), /exec: command: expected/);
  refused(
    'x3',
    execUser(join(dir, 'ok.mjs'), { interactiveMode: 'Always' }),
    /interactiveMode: Always needs a terminal/,
  );
  refused('x4', execUser(join(dir, 'ok.mjs'), { args: 'nope' }), /args: expected a list of strings/);
  refused('x5', { ...execUser(join(dir, 'ok.mjs')), token: 't' }, /also has a token/);
  refused(
    'x6',
    execUser(join(dir, 'not-there'), { installHint: 'install it with: brew install thing\nmore' }),
    /was not found \(install it with: brew install thing\)/,
  );
  plugin('cert', { token: null, clientCertificateData: 'PEM' });
  refused('x7', execUser(join(dir, 'cert.mjs')), /client certificate/);
  writeFileSync(join(dir, 'junk.mjs'), `#!${process.execPath}\nprocess.stdout.write('not json')`, {
    mode: 0o755,
  });
  refused('x8', execUser(join(dir, 'junk.mjs')), /output is not JSON/);
  writeFileSync(
    join(dir, 'old.mjs'),
    `#!${process.execPath}\nprocess.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1beta1', kind: 'ExecCredential', status: { token: 't' } }))`,
    { mode: 0o755 },
  );
  refused(
    'x9',
    execUser(join(dir, 'old.mjs')),
    /apiVersion: expected client\.authentication\.k8s\.io\/v1 \(as asked\)/,
  );
  plugin('when', { expirationTimestamp: 'soon' });
  refused('x10', execUser(join(dir, 'when.mjs')), /expirationTimestamp: expected an RFC 3339 time/);
});

test('in-cluster: service host and port, CA, namespace, and a rotated token is read again', async () => {
  const sa = join(dir, 'sa');
  rmSync(sa, { recursive: true, force: true });
  mkdirSync(sa);
  writeFileSync(join(sa, 'token'), 'one');
  writeFileSync(join(sa, 'ca.crt'), 'SA CA');
  writeFileSync(join(sa, 'namespace'), 'kpt-system');
  const c = loadInCluster({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, sa);
  assert.equal(c.server, 'https://[fd00::1]:443');
  assert.equal(c.ca?.toString(), 'SA CA');
  assert.equal(c.namespace, 'kpt-system');
  assert.equal(c.token(), 'one');
  // The kubelet replaces the file (a new inode); the token is re-checked at most once a second.
  writeFileSync(join(sa, 'token.new'), 'two-rotated');
  renameSync(join(sa, 'token.new'), join(sa, 'token'));
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(c.token(), 'two-rotated');
  assert.throws(
    () => loadInCluster({}, sa),
    (e: { code?: string }) => e.code === 'E_KUBECONFIG',
  );
});

test('API errors carry the HTTP status and the server message; queries are encoded', () => {
  const e = new KubeApiError('PATCH', '/apis/x', 409, {
    message: 'the object has been modified',
    reason: 'Conflict',
  });
  assert.equal(httpStatus(e), 409);
  assert.equal(e.code, 'E_KUBE_API');
  assert.match(e.message, /409 the object has been modified/);
  assert.equal(
    withQuery('/p', { labelSelector: 'a=b,c', limit: 5, continue: undefined, watch: true }),
    '/p?labelSelector=a%3Db%2Cc&limit=5&watch=true',
  );
});

test('forEachLine: lines split across chunks, several per chunk, multi-byte characters cut in two', async () => {
  const text = '{"a":"é€😀"}\n{"b":1}\n\n{"c":"xyz"}\n{"d":"cut';
  const bytes = Buffer.from(text, 'utf8');
  // Every split into 1-byte, 3-byte and 7-byte chunks, so each multi-byte character is cut somewhere.
  for (const size of [1, 3, 7, bytes.length]) {
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
    const lines: string[] = [];
    await forEachLine(
      (async function* () {
        yield* chunks;
      })(),
      (l) => lines.push(l),
    );
    // The unterminated tail (a reply cut short mid-event) is not reported.
    assert.deepEqual(lines, ['{"a":"é€😀"}', '{"b":1}', '', '{"c":"xyz"}'], `chunks of ${size}`);
  }
});
