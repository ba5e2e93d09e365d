// Partitioned topics against the real broker, with the Java client: Java's keyed messages all received by
// ours; ours routes each key to the partition Java's default router uses; partitions added later are used.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { type Message, PulsarClient, partitionForKey } from '../../../src/pulsar/index.ts';
import type { PartitionedConsumer, PartitionedProducer } from '../../../src/pulsar/partitioned.ts';
import { pulsarHome, pulsarPlain } from '../../support/env.ts';
import { runKptJava, sha256 } from '../../support/java.ts';
import { admin, createPartitionedTopic, nextWithin, takeN, uniqueName } from './prod-helpers.ts';

const env = pulsarPlain();
const home = pulsarHome();
const client = new PulsarClient({ serviceUrl: env.serviceUrl, operationTimeoutMs: 30_000 });
after(() => client.close());

const KEYS = Array.from({ length: 20 }, (_, i) => `key-${i}-ü`);
const partitionOf = (m: Message) => Number(/-partition-(\d+)$/.exec(m.topic)?.[1] ?? -1);

for (const scheme of ['Murmur3_32Hash', 'JavaStringHash'] as const) {
  test(`4 partitions, ${scheme}: Java produces keyed messages, ours receives all; ours routes keys as Java does`, async () => {
    const name = uniqueName(`java-keyed-${scheme.toLowerCase()}`);
    const topic = await createPartitionedTopic(env.adminUrl, name, 4);
    const consumer = await client.subscribe({ topic, subscription: 'ts', initialPosition: 'Earliest' });
    assert.equal((consumer as PartitionedConsumer).partitions, 4);
    // The Java producer's own default is JavaStringHash; Murmur3_32Hash is set explicitly.
    const sent = await runKptJava(home, [
      'produce',
      '--url',
      env.serviceUrl,
      '--topic',
      topic,
      '--count',
      '200',
      '--size',
      '300',
      '--keys',
      KEYS.join(','),
      ...(scheme === 'Murmur3_32Hash' ? ['--hashing', 'murmur3'] : []),
    ]);
    assert.equal(sent.length, 200);
    const got = await takeN(consumer, 200);
    const byIndex = new Map(got.map((m) => [m.properties.i, m]));
    assert.equal(byIndex.size, 200, 'no duplicates, none missing');
    const javaPartition = new Map<string, number>();
    sent.forEach((s, i) => {
      const m = byIndex.get(String(i));
      assert.ok(m, `message ${i} received`);
      assert.equal(m.key, s.key);
      assert.equal(sha256(m.payload), s.sha256);
      const p = partitionOf(m);
      const seen = javaPartition.get(s.key as string);
      if (seen !== undefined) assert.equal(p, seen, `key ${s.key} always on one partition`);
      javaPartition.set(s.key as string, p);
    });
    assert.equal(new Set(javaPartition.values()).size, 4, 'keys spread over the 4 partitions');
    // Ours produces the same keys: each lands where Java put it. Both producers at their defaults agree.
    const producer = await client.createProducer({
      topic,
      batchingMaxDelayMs: 2,
      ...(scheme === 'JavaStringHash' ? {} : { hashingScheme: scheme }),
    });
    const check = await client.subscribe({ topic, subscription: 'ts-check', initialPosition: 'Latest' });
    await Promise.all(
      KEYS.flatMap((key) =>
        [0, 1, 2].map((n) => producer.send({ payload: Buffer.from(`${key}/${n}`), key })),
      ),
    );
    const ours = await takeN(check, KEYS.length * 3);
    for (const m of ours) {
      const key = m.key as string;
      assert.equal(partitionOf(m), javaPartition.get(key), `key ${key} on Java's partition`);
      assert.equal(partitionOf(m), partitionForKey(key, 4, scheme));
    }
    // Without a key: round-robin over every partition.
    await Promise.all(
      Array.from({ length: 8 }, (_, i) => producer.send({ payload: Buffer.from(`nokey-${i}`) })),
    );
    const spread = await takeN(check, 8);
    assert.deepEqual([...new Set(spread.map(partitionOf))].sort(), [0, 1, 2, 3]);
    await producer.close();
    await Promise.all([consumer.close(), check.close()]);
  });
}

test('partitions added later are picked up by the periodic check (consumer and producer)', async () => {
  const name = uniqueName('grow');
  const topic = await createPartitionedTopic(env.adminUrl, name, 2);
  const consumer = (await client.subscribe({
    topic,
    subscription: 'grow',
    initialPosition: 'Earliest',
    autoUpdatePartitionsIntervalMs: 500,
  })) as PartitionedConsumer;
  const producer = (await client.createProducer({
    topic,
    autoUpdatePartitionsIntervalMs: 500,
  })) as PartitionedProducer;
  await admin(env.adminUrl, 'POST', `/admin/v2/persistent/public/default/${name}/partitions`, { body: 4 });
  const deadline = Date.now() + 30_000;
  while ((consumer.partitions < 4 || producer.partitions < 4) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(consumer.partitions, 4);
  assert.equal(producer.partitions, 4);
  const keyFor = (p: number) => KEYS.find((k) => partitionForKey(k, 4) === p) as string;
  for (const p of [2, 3]) await producer.send({ payload: Buffer.from(`to-${p}`), key: keyFor(p) });
  const got = await takeN(consumer, 2);
  assert.deepEqual(got.map(partitionOf).sort(), [2, 3]);
  assert.equal(await nextWithin(consumer, 500), undefined, 'nothing else');
  await producer.close();
  await consumer.close();
});
