// Key_Shared modes against the real broker: sticky hash ranges (each consumer gets exactly the keys whose
// hash is in its ranges; overlapping ranges are refused) and auto-split (each key goes to one consumer).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { type Message, murmur3_32, PulsarClient, PulsarError } from '../../../src/pulsar/index.ts';
import { pulsarPlain } from '../../support/env.ts';
import { uniqueName } from './prod-helpers.ts';

const env = pulsarPlain();
const client = new PulsarClient({ serviceUrl: env.serviceUrl, operationTimeoutMs: 20_000 });
after(() => client.close());

const KEYS = Array.from({ length: 40 }, (_, i) => `order-${i}`);
const stickyHash = (key: string) => (murmur3_32(new TextEncoder().encode(key)) & 0x7fffffff) % 65536;

/** Receives from every consumer at once until n messages arrived in total (or the guard passes). */
async function drain(
  consumers: { name: string; c: Awaited<ReturnType<PulsarClient['subscribe']>> }[],
  n: number,
): Promise<{ name: string; m: Message }[]> {
  const got: { name: string; m: Message }[] = [];
  let done: () => void = () => {};
  const all = new Promise<void>((r) => {
    done = r;
  });
  for (const { name, c } of consumers) {
    void (async () => {
      for (;;) {
        let m: Message;
        try {
          m = await c.receive();
        } catch {
          return; // closed
        }
        got.push({ name, m });
        await c.ack(m);
        if (got.length >= n) done();
      }
    })();
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([all, new Promise<void>((r) => (timer = setTimeout(r, 60_000)))]);
  clearTimeout(timer);
  return got;
}

test('Key_Shared sticky: each consumer gets exactly the keys in its hash ranges; overlaps are refused', async () => {
  const topic = uniqueName('persistent://public/default/key-shared-sticky');
  const sub = {
    topic,
    subscription: 'ks',
    subscriptionType: 'Key_Shared' as const,
    initialPosition: 'Earliest' as const,
  };
  const low = await client.subscribe({ ...sub, keySharedPolicy: { mode: 'Sticky', ranges: [[0, 32767]] } });
  const high = await client.subscribe({
    ...sub,
    keySharedPolicy: { mode: 'Sticky', ranges: [[32768, 65535]] },
  });
  await assert.rejects(
    client.subscribe({ ...sub, keySharedPolicy: { mode: 'Sticky', ranges: [[1000, 2000]] } }),
    (e: unknown) => e instanceof PulsarError && /range|conflict|overlap/i.test(e.message),
  );
  await assert.rejects(
    client.subscribe({
      ...sub,
      keySharedPolicy: {
        mode: 'Sticky',
        ranges: [
          [0, 10],
          [5, 20],
        ],
      },
    }),
    /overlaps/,
  );
  const producer = await client.createProducer({ topic, batchingMaxMessages: 1 });
  await Promise.all(
    KEYS.flatMap((key) => [0, 1].map((n) => producer.send({ payload: Buffer.from(`${key}/${n}`), key }))),
  );
  const got = await drain(
    [
      { name: 'low', c: low },
      { name: 'high', c: high },
    ],
    KEYS.length * 2,
  );
  assert.equal(got.length, KEYS.length * 2);
  for (const { name, m } of got) {
    const h = stickyHash(m.key as string);
    assert.equal(name, h <= 32767 ? 'low' : 'high', `key ${m.key} (hash ${h}) went to ${name}`);
  }
  assert.ok(got.some((g) => g.name === 'low') && got.some((g) => g.name === 'high'));
  await producer.close();
  await Promise.all([low.close(), high.close()]);
});

test('Key_Shared auto-split: every key is delivered to exactly one consumer', async () => {
  const topic = uniqueName('persistent://public/default/key-shared-auto');
  const sub = {
    topic,
    subscription: 'ks',
    subscriptionType: 'Key_Shared' as const,
    initialPosition: 'Earliest' as const,
  };
  const a = await client.subscribe({ ...sub, keySharedPolicy: { mode: 'AutoSplit' } });
  const b = await client.subscribe({ ...sub, keySharedPolicy: { mode: 'AutoSplit' } });
  const producer = await client.createProducer({ topic, batchingMaxMessages: 1 });
  await Promise.all(
    KEYS.flatMap((key) => [0, 1, 2].map((n) => producer.send({ payload: Buffer.from(`${key}/${n}`), key }))),
  );
  const got = await drain(
    [
      { name: 'a', c: a },
      { name: 'b', c: b },
    ],
    KEYS.length * 3,
  );
  assert.equal(got.length, KEYS.length * 3);
  const owner = new Map<string, string>();
  for (const { name, m } of got) {
    const key = m.key as string;
    assert.equal(owner.get(key) ?? name, name, `key ${key} stays with one consumer`);
    owner.set(key, name);
  }
  assert.equal(new Set(owner.values()).size, 2, 'both consumers got keys');
  await producer.close();
  await Promise.all([a.close(), b.close()]);
});
