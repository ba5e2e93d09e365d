// mTLS: a broker of its own (started here, stopped at the end) that requires a trusted client certificate on
// pulsar+ssl://. Without a client certificate the connection is refused with a clear TLS error; with one
// signed by the broker's CA, produce and consume work.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PulsarClient, PulsarError, PulsarErrorCode, tlsOptions } from '../../../src/pulsar/index.ts';
import { type CertAuthority, makeCa, makeLeaf } from '../../../testenv/lib/certs.ts';
import { freePort } from '../../../testenv/lib/proc.ts';
import { type PulsarHandle, startPulsar } from '../../../testenv/pulsar.ts';
import { takeN, uniqueName } from './prod-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'kpt-mtls-'));
let broker: PulsarHandle;
let ca: CertAuthority;
let tlsUrl: string;
const clients: PulsarClient[] = [];

before(async () => {
  ca = makeCa(dir, 'mtls-ca');
  const server = makeLeaf(dir, ca, 'mtls-broker', {
    cn: 'localhost',
    altNames: ['DNS:localhost', 'IP:127.0.0.1'],
  });
  const tlsPort = await freePort();
  broker = await startPulsar({
    profile: 'plain',
    maxHeap: '512m',
    settings: {
      brokerServicePortTls: tlsPort,
      tlsCertificateFilePath: server.certFile,
      tlsKeyFilePath: server.keyFile,
      tlsTrustCertsFilePath: ca.certFile,
      tlsRequireTrustedClientCertOnConnect: true,
    },
  });
  tlsUrl = `pulsar+ssl://127.0.0.1:${tlsPort}`;
});
after(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function client(tls: ReturnType<typeof tlsOptions>): PulsarClient {
  const c = new PulsarClient({ serviceUrl: tlsUrl, operationTimeoutMs: 15_000, tls });
  clients.push(c);
  return c;
}

test('a broker requiring client certificates refuses a client without one, clearly', async () => {
  const c = client(tlsOptions({ trustCertsFile: ca.certFile }));
  await assert.rejects(c.subscribe({ topic: uniqueName('mtls-none'), subscription: 's' }), (e: unknown) => {
    assert.ok(e instanceof PulsarError, String(e));
    assert.equal(e.code, PulsarErrorCode.TlsFailed, e.message);
    assert.match(e.message, /client certificate/);
    assert.match(e.message, /127\.0\.0\.1/);
    return true;
  });
});

test('with a client certificate signed by its CA: produce and consume over mTLS', async () => {
  const leaf = makeLeaf(dir, ca, 'mtls-client', { cn: 'client', client: true });
  const c = client(
    tlsOptions({ trustCertsFile: ca.certFile, certFile: leaf.certFile, keyFile: leaf.keyFile }),
  );
  const topic = uniqueName('persistent://public/default/mtls');
  const consumer = await c.subscribe({ topic, subscription: 's', initialPosition: 'Earliest' });
  const producer = await c.createProducer({ topic });
  await producer.send({ payload: Buffer.from('mutual TLS') });
  const [m] = await takeN(consumer, 1, 30_000);
  assert.equal(Buffer.from(m?.payload ?? []).toString(), 'mutual TLS');
  await producer.close();
  await consumer.close();
});
