// Proves the test broker is a real Pulsar: Pulsar's own Java CLI produces and consumes through it, and the secure
// profile enforces TLS plus token authentication.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { pulsarHome, pulsarPlain, pulsarSecure } from '../../support/env.ts';

const run = promisify(execFile);

async function pulsarClient(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(join(pulsarHome(), 'bin', 'pulsar-client'), args, {
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

test('plain profile: the Java client produces and consumes back through the standalone broker', async () => {
  const { serviceUrl } = pulsarPlain();
  const topic = `persistent://public/default/testenv-${randomUUID()}`;
  const consumed = pulsarClient([
    '--url',
    serviceUrl,
    'consume',
    topic,
    '-s',
    'testenv',
    '-p',
    'Earliest',
    '-n',
    '3',
  ]);
  const produced = await pulsarClient([
    '--url',
    serviceUrl,
    'produce',
    topic,
    '-m',
    'hello-real-pulsar',
    '-n',
    '3',
  ]);
  assert.equal(produced.code, 0, produced.out);
  assert.match(produced.out, /3 messages successfully produced/);
  const c = await consumed;
  assert.equal(c.code, 0, c.out);
  assert.equal(c.out.match(/hello-real-pulsar/g)?.length, 3, c.out);
});

test('secure profile: TLS with the client token works; no token and a bad token are refused', async () => {
  const s = pulsarSecure();
  const topic = `persistent://public/default/testenv-secure-${randomUUID()}`;
  const base = ['--url', s.serviceUrl, '--tlsTrustCertsFilePath', s.caFile];
  const auth = (token: string) => [
    '--auth-plugin',
    'org.apache.pulsar.client.impl.auth.AuthenticationToken',
    '--auth-params',
    `token:${token}`,
  ];

  const ok = await pulsarClient([
    ...base,
    ...auth(s.clientToken),
    'produce',
    topic,
    '-m',
    'secret-ok',
    '-n',
    '1',
  ]);
  assert.equal(ok.code, 0, ok.out);
  assert.match(ok.out, /1 messages successfully produced/);

  const none = await pulsarClient([...base, 'produce', topic, '-m', 'x', '-n', '1']);
  assert.notEqual(none.code, 0, 'a client without a token must be refused');
  assert.match(none.out, /Authentication|auth/i);

  const forged = `${s.clientToken.slice(0, -4)}AAAA`;
  const bad = await pulsarClient([...base, ...auth(forged), 'produce', topic, '-m', 'x', '-n', '1']);
  assert.notEqual(bad.code, 0, 'a client with a bad token must be refused');
  assert.match(bad.out, /Authentication|auth/i);
});

test('secure profile: the admin API requires the admin token over TLS', async () => {
  const s = pulsarSecure();
  const { adminRequest } = await import('../../../testenv/pulsar.ts');
  const { readFileSync } = await import('node:fs');
  const ca = readFileSync(s.caFile);
  const anonymous = await adminRequest(s.adminUrl, 'GET', '/admin/v2/clusters', { ca });
  assert.equal(anonymous.status, 401);
  const admin = await adminRequest(s.adminUrl, 'GET', '/admin/v2/clusters', { ca, token: s.adminToken });
  assert.equal(admin.status, 200);
  assert.deepEqual(JSON.parse(admin.body), ['standalone']);
});
