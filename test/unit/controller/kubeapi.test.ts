import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { httpStatus } from '../../../src/controller/errors.ts';
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

test('exec credential plugins and missing files are refused with E_KUBECONFIG naming the problem', () => {
  assert.throws(
    () => loadKubeconfigFile(kubeconfig('c', { exec: { command: 'aws' } }, { server: 'https://h:1' })),
    (e: { code?: string; message?: string }) => e.code === 'E_KUBECONFIG' && /exec/.test(e.message ?? ''),
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
