import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { inspect } from 'node:util';
import type { Logger } from '../../../src/pulsar/auth.ts';
import { PulsarError, PulsarErrorCode } from '../../../src/pulsar/errors.ts';
import { describeTlsError, tlsOptions } from '../../../src/pulsar/tls.ts';
import { redactTokens, TokenAuth, tokenAuthFromParams } from '../../../src/pulsar/token.ts';
import { makeCa, makeLeaf } from '../../../testenv/lib/certs.ts';

const dir = mkdtempSync(join(tmpdir(), 'kpt-token-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const SECRET = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1bml0In0.c2lnbmF0dXJlLXNlY3JldA';
const text = (b: Uint8Array) => new TextDecoder().decode(b);

test('token from a string, trimmed', async () => {
  const auth = new TokenAuth({ token: ` ${SECRET}\n` });
  assert.equal(auth.method, 'token');
  assert.equal(text(await auth.data()), SECRET);
});

test('token file is re-read on every call (rotation)', async () => {
  const file = join(dir, 'token');
  writeFileSync(file, 'first-token-value\n');
  const auth = new TokenAuth({ file });
  assert.equal(text(await auth.data()), 'first-token-value');
  writeFileSync(file, 'second-token-value');
  assert.equal(text(await auth.data()), 'second-token-value');
});

test('token from an environment variable, read at each call', async () => {
  const name = `KPT_TEST_TOKEN_${process.pid}`;
  const auth = new TokenAuth({ env: name });
  await assert.rejects(auth.data(), (e: unknown) => {
    assert.ok(e instanceof PulsarError);
    assert.equal(e.code, PulsarErrorCode.AuthenticationFailed);
    assert.match(e.message, new RegExp(name));
    return true;
  });
  process.env[name] = 'env-token-1';
  assert.equal(text(await auth.data()), 'env-token-1');
  delete process.env[name];
});

test('missing or empty token file: AuthenticationFailed naming the file, not the token', async () => {
  const missing = new TokenAuth({ file: join(dir, 'nope') });
  await assert.rejects(missing.data(), /cannot read token file .*nope: ENOENT/);
  const empty = join(dir, 'empty');
  writeFileSync(empty, '  \n');
  await assert.rejects(new TokenAuth({ file: empty }).data(), /token file .*empty is empty/);
});

test('the token never shows in inspect, JSON or String', () => {
  const auth = new TokenAuth({ token: SECRET });
  for (const s of [inspect(auth), JSON.stringify(auth), String(auth), inspect({ auth }, { depth: 5 })]) {
    assert.ok(!s.includes(SECRET), s);
    assert.match(s, /token string/);
  }
});

test('Java-style parameters: token:, file://, env:', async () => {
  assert.equal(text(await tokenAuthFromParams(`token:${SECRET}`).data()), SECRET);
  const file = join(dir, 't2');
  writeFileSync(file, 'from-file');
  assert.equal(text(await tokenAuthFromParams(`file://${file}`).data()), 'from-file');
  assert.equal(tokenAuthFromParams('env:X_Y').source, 'environment variable X_Y');
  assert.throws(() => new TokenAuth({ file: '' }), PulsarError);
});

test('redactTokens removes JWTs and named secrets', () => {
  const out = redactTokens(`bad token ${SECRET} and xyzsecret123`, ['xyzsecret123']);
  assert.ok(!out.includes(SECRET));
  assert.ok(!out.includes('xyzsecret123'));
  assert.match(out, /<redacted token>/);
});

test('tlsOptions: CA, client cert and key are read; hostname verification stays on', () => {
  const ca = makeCa(dir, 'unit-ca');
  const leaf = makeLeaf(dir, ca, 'unit-client', { cn: 'client', client: true });
  const opts = tlsOptions({ trustCertsFile: ca.certFile, certFile: leaf.certFile, keyFile: leaf.keyFile });
  assert.equal(opts.rejectUnauthorized, true);
  assert.equal(opts.checkServerIdentity, undefined);
  assert.match(String(opts.ca), /BEGIN CERTIFICATE/);
  assert.match(String(opts.cert), /BEGIN CERTIFICATE/);
  assert.match(String(opts.key), /PRIVATE KEY/);
});

test('tlsOptions: turning hostname verification off is explicit and logs a warning', () => {
  const warnings: string[] = [];
  const logger: Logger = {
    debug() {},
    info() {},
    error() {},
    warn(_o, msg) {
      warnings.push(msg ?? '');
    },
  };
  const opts = tlsOptions({ hostnameVerification: false, logger });
  assert.equal(typeof opts.checkServerIdentity, 'function');
  assert.equal(opts.rejectUnauthorized, true);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0] as string, /hostname verification is OFF/);
});

test('tlsOptions: unreadable or non-PEM files and half a key pair are errors', () => {
  assert.throws(
    () => tlsOptions({ trustCertsFile: join(dir, 'missing.pem') }),
    (e: unknown) =>
      e instanceof PulsarError && e.code === PulsarErrorCode.TlsFailed && /missing\.pem/.test(e.message),
  );
  const notPem = join(dir, 'not.pem');
  writeFileSync(notPem, 'hello');
  assert.throws(() => tlsOptions({ trustCertsFile: notPem }), /holds no PEM certificate/);
  assert.throws(() => tlsOptions({ certFile: notPem }), /needs both certFile and keyFile/);
});

test('describeTlsError: certificate problems become TlsFailed with a hint; others pass', () => {
  const err = Object.assign(new Error("Hostname/IP does not match certificate's altnames"), {
    code: 'ERR_TLS_CERT_ALTNAME_INVALID',
  });
  const d = describeTlsError(err, 'pulsar+ssl://127.0.0.1:6651');
  assert.ok(d);
  assert.equal(d.code, PulsarErrorCode.TlsFailed);
  assert.match(d.message, /does not name this host/);
  assert.match(d.message, /127\.0\.0\.1:6651/);
  const ca = describeTlsError(Object.assign(new Error('x'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' }), 'b');
  assert.match(ca?.message ?? '', /CA that is not trusted/);
  assert.equal(describeTlsError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), 'b'), undefined);
});
