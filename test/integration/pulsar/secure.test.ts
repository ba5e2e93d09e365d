// TLS and token authentication against the real secure broker (pulsar+ssl://localhost, token auth,
// authorization, authenticationRefreshCheckSeconds=5 in the shared test environment).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  PulsarClient,
  PulsarError,
  PulsarErrorCode,
  TokenAuth,
  tlsOptions,
  tokenAuth,
} from '../../../src/pulsar/index.ts';
import { makeCa } from '../../../testenv/lib/certs.ts';
import { newSecretKey, signToken } from '../../../testenv/lib/jwt.ts';
import { pulsarSecure } from '../../support/env.ts';
import { nextWithin, readKey, recordingLogger, takeN, uniqueName } from './prod-helpers.ts';

const env = pulsarSecure();
const dir = mkdtempSync(join(tmpdir(), 'kpt-secure-'));
const clients: PulsarClient[] = [];
after(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  rmSync(dir, { recursive: true, force: true });
});

function client(opts: Partial<ConstructorParameters<typeof PulsarClient>[0]> = {}): PulsarClient {
  const c = new PulsarClient({
    serviceUrl: env.serviceUrl,
    operationTimeoutMs: 15_000,
    tls: tlsOptions({ trustCertsFile: env.caFile }),
    auth: tokenAuth({ token: env.clientToken }),
    ...opts,
  });
  clients.push(c);
  return c;
}

async function roundTrip(c: PulsarClient): Promise<void> {
  const topic = uniqueName('persistent://public/default/secure');
  const consumer = await c.subscribe({ topic, subscription: 's', initialPosition: 'Earliest' });
  const producer = await c.createProducer({ topic });
  await producer.send({ payload: new TextEncoder().encode('over TLS with a token'), key: 'k' });
  const [m] = await takeN(consumer, 1, 30_000);
  assert.equal(new TextDecoder().decode(m?.payload), 'over TLS with a token');
  assert.equal(m?.key, 'k');
  await producer.close();
  await consumer.close();
}

test('TLS with the CA file and a valid token: produce and consume', async () => {
  await roundTrip(client());
});

test('a CA that did not sign the broker certificate: refused with a TLS error about the CA', async () => {
  const other = makeCa(dir, 'other-ca');
  const c = client({ tls: tlsOptions({ trustCertsFile: other.certFile }) });
  await assert.rejects(c.subscribe({ topic: uniqueName('wrong-ca'), subscription: 's' }), (e: unknown) => {
    assert.ok(e instanceof PulsarError, String(e));
    assert.equal(e.code, PulsarErrorCode.TlsFailed, e.message);
    assert.match(e.message, /not trusted|trusted CA/);
    assert.match(e.message, /localhost/);
    return true;
  });
});

test('a host name the certificate does not name: refused; accepted only with verification explicitly off', async () => {
  const byIp = env.serviceUrl.replace('localhost', '127.0.0.1');
  const c = client({ serviceUrl: byIp });
  await assert.rejects(c.subscribe({ topic: uniqueName('wrong-host'), subscription: 's' }), (e: unknown) => {
    assert.ok(e instanceof PulsarError, String(e));
    assert.equal(e.code, PulsarErrorCode.TlsFailed, e.message);
    assert.match(e.message, /does not name this host/);
    assert.match(e.message, /127\.0\.0\.1/);
    return true;
  });
  const logger = recordingLogger();
  // Lookups answer with the broker's advertised name (localhost), so only the first hop goes to 127.0.0.1.
  const relaxed = client({
    serviceUrl: byIp,
    logger,
    tls: tlsOptions({ trustCertsFile: env.caFile, hostnameVerification: false, logger }),
  });
  await roundTrip(relaxed);
  assert.ok(logger.records.some((r) => r.level === 'warn' && /hostname verification is OFF/.test(r.msg)));
});

test('no token: refused with an authentication error naming the broker', async () => {
  const c = client({ auth: undefined as unknown as TokenAuth });
  await assert.rejects(c.subscribe({ topic: uniqueName('no-token'), subscription: 's' }), (e: unknown) => {
    assert.ok(e instanceof PulsarError, String(e));
    assert.equal(e.code, PulsarErrorCode.AuthenticationFailed, e.message);
    assert.match(e.message, new RegExp(`broker ${env.serviceUrl.replace(/[+.]/g, '\\$&')}`));
    assert.match(e.message, /AuthenticationError/);
    return true;
  });
});

test('a token signed with another key: refused with the reason, the token never printed', async () => {
  const bad = signToken(newSecretKey(), 'client');
  const logger = recordingLogger();
  const c = client({ auth: tokenAuth({ token: bad }), logger });
  let message = '';
  await assert.rejects(c.subscribe({ topic: uniqueName('bad-token'), subscription: 's' }), (e: unknown) => {
    assert.ok(e instanceof PulsarError, String(e));
    assert.equal(e.code, PulsarErrorCode.AuthenticationFailed, e.message);
    assert.match(e.message, /rejected the connection \(AuthenticationError\)/);
    assert.match(e.message, /credentials: token from token string/);
    message = `${e.message} ${JSON.stringify(e.context)} ${String((e as Error).cause)}`;
    return true;
  });
  const logged = JSON.stringify(logger.records);
  for (const text of [message, logged]) {
    assert.ok(!text.includes(bad), 'the token must not appear');
    assert.ok(!text.includes(bad.split('.')[2] as string), 'not even its signature');
  }
});

test('a short-lived token rotated in its file keeps a long-running consumer connected across AUTH_CHALLENGE', async () => {
  const secret = readKey(env.secretKeyFile);
  const file = join(dir, 'rotating-token');
  // Each token lives 8 s; the broker re-checks every 5 s and challenges once the current one has expired.
  writeFileSync(file, signToken(secret, 'client', 8));
  const auth = new TokenAuth({ file });
  let reads = 0;
  const counting = {
    method: auth.method,
    source: auth.source,
    data: () => {
      reads++;
      return auth.data();
    },
  };
  const logger = recordingLogger();
  const consumerClient = client({ auth: counting, logger });
  const producerClient = client();
  const topic = uniqueName('persistent://public/default/rotating');
  const consumer = await consumerClient.subscribe({ topic, subscription: 's', initialPosition: 'Earliest' });
  const producer = await producerClient.createProducer({ topic, batchingMaxMessages: 1 });
  const rotator = setInterval(() => writeFileSync(file, signToken(secret, 'client', 8)), 3000);
  try {
    // ~30 s: several token lifetimes, so the broker must challenge (and accept the new token) several times.
    for (let i = 0; i < 15; i++) {
      await producer.send({ payload: new TextEncoder().encode(`tick-${i}`) });
      const m = await nextWithin(consumer, 20_000);
      assert.ok(m, `message ${i} arrived`);
      assert.equal(new TextDecoder().decode(m.payload), `tick-${i}`);
      await consumer.ack(m);
      await new Promise((r) => setTimeout(r, 2000));
    }
  } finally {
    clearInterval(rotator);
  }
  assert.ok(reads >= 3, `the token was read for CONNECT and for challenges (${reads} reads)`);
  const disconnects = logger.records.filter((r) => /disconnected|reconnect/.test(r.msg));
  assert.deepEqual(disconnects, [], 'the consumer stayed connected');
  await producer.close();
  await consumer.close();
});
