// Every compression codec, both directions, with the Java client against the real broker.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { type CompressionName, PulsarClient } from '../../../src/pulsar/index.ts';
import { pulsarHome, pulsarPlain } from '../../support/env.ts';
import { runKptJava, sha256 } from '../../support/java.ts';
import { takeN, uniqueName } from './prod-helpers.ts';

const env = pulsarPlain();
const home = pulsarHome();
const client = new PulsarClient({ serviceUrl: env.serviceUrl, operationTimeoutMs: 30_000 });
after(() => client.close());

const CODECS: CompressionName[] = ['LZ4', 'ZLIB', 'ZSTD', 'SNAPPY'];

for (const codec of CODECS) {
  test(`${codec}: Java produces (batched and single), ours receives byte-exact`, async () => {
    const topic = uniqueName(`persistent://public/default/java-${codec.toLowerCase()}`);
    const consumer = await client.subscribe({ topic, subscription: 'ts', initialPosition: 'Earliest' });
    const common = ['--url', env.serviceUrl, '--topic', topic, '--compression', codec, '--keys', 'a,b,c'];
    const batched = await runKptJava(home, ['produce', ...common, '--count', '60', '--size', '3000']);
    const single = await runKptJava(home, [
      'produce',
      ...common,
      '--count',
      '5',
      '--size',
      '200000',
      '--no-batch',
    ]);
    const got = await takeN(consumer, 65);
    const sent = [...batched, ...single];
    const want = new Map(sent.map((s) => [`${s.length}/${s.sha256}`, s]));
    for (const m of got) {
      assert.ok(want.has(`${m.payload.length}/${sha256(m.payload)}`), `message ${m.properties.i} byte-exact`);
    }
    assert.equal(
      new Set(got.map((m) => `${m.payload.length}/${sha256(m.payload)}/${m.properties.i}`)).size,
      65,
    );
    await consumer.close();
  });

  test(`${codec}: ours produces (batched and single), Java receives byte-exact`, async () => {
    const topic = uniqueName(`persistent://public/default/ts-${codec.toLowerCase()}`);
    const text = Buffer.from('compressible text for the Java consumer; '.repeat(100));
    const payloads: Buffer[] = [];
    for (let i = 0; i < 40; i++) payloads.push(Buffer.concat([text, Buffer.from(`#${i}`)]));
    for (let i = 0; i < 3; i++) payloads.push(Buffer.concat([randomBytes(1000), Buffer.alloc(300_000, i)]));
    const batched = await client.createProducer({ topic, compressionType: codec, batchingMaxDelayMs: 20 });
    const single = await client.createProducer({ topic, compressionType: codec, batchingMaxMessages: 1 });
    await Promise.all(
      payloads.map((p, i) =>
        (i < 40 ? batched : single).send({ payload: p, key: `k${i}`, properties: { i: String(i) } }),
      ),
    );
    await Promise.all([batched.close(), single.close()]);
    const got = await runKptJava(home, [
      'consume',
      '--url',
      env.serviceUrl,
      '--topic',
      topic,
      '--sub',
      'java',
      '--count',
      String(payloads.length),
    ]);
    assert.equal(got.length, payloads.length);
    for (const r of got) {
      const i = Number(r.index);
      const p = payloads[i] as Buffer;
      assert.equal(r.length, p.length, `message ${i} length`);
      assert.equal(r.sha256, sha256(p), `message ${i} bytes`);
      assert.equal(r.key, `k${i}`);
    }
  });
}
