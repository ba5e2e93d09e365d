// Batches and Key_Shared on the real broker. The broker reads one key per entry, the batch's (its first
// message's, as the Java client writes it), and gives the whole entry to that key's consumer. With batchingByKey
// every entry holds one key, so every message reaches its own key's consumer; with ordinary batching an entry of
// several keys goes whole to the consumer of its first key. Sticky hash ranges make the owner of a key known.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { type Consumer, type Message, murmur3_32, PulsarClient } from '../../../src/pulsar/index.ts';
import { pulsarPlain } from '../../support/env.ts';
import { uniqueName } from './prod-helpers.ts';

const env = pulsarPlain();
const client = new PulsarClient({ serviceUrl: env.serviceUrl, operationTimeoutMs: 20_000 });
after(() => client.close());

const stickyHash = (key: string) => (murmur3_32(new TextEncoder().encode(key)) & 0x7fffffff) % 65536;
const owner = (key: string) => (stickyHash(key) <= 32767 ? 'low' : 'high');
const KEYS = Array.from({ length: 12 }, (_, i) => `account-${i}`);
const PER_KEY = 30;

interface Got {
  consumer: string;
  m: Message;
  key: string;
  n: number;
  entry: string;
}

/** Receives from both consumers until `n` messages arrived, acking each. */
async function drain(consumers: Record<string, Consumer>, n: number): Promise<Got[]> {
  const got: Got[] = [];
  let done: () => void = () => {};
  const all = new Promise<void>((r) => {
    done = r;
  });
  for (const [name, c] of Object.entries(consumers)) {
    void (async () => {
      for (;;) {
        let m: Message;
        try {
          m = await c.receive();
        } catch {
          return; // closed
        }
        const [key, i] = new TextDecoder().decode(m.payload).split('/') as [string, string];
        const id = m.messageId;
        got.push({ consumer: name, m, key, n: Number(i), entry: `${id.ledgerId}:${id.entryId}` });
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

/** Produces PER_KEY messages of every key, the keys interleaved, all sent at once so that they batch. */
async function produceInterleaved(topic: string, batchingByKey: boolean): Promise<void> {
  // 7 per batch: not a divisor of the 12 keys, so ordinary batches start with every key in turn.
  const producer = await client.createProducer({ topic, batchingMaxMessages: 7, batchingByKey });
  const sends = [];
  for (let n = 0; n < PER_KEY; n++)
    for (const key of KEYS) sends.push(producer.send({ payload: Buffer.from(`${key}/${n}`), key }));
  const ids = await Promise.all(sends);
  assert.ok(
    ids.every((id) => id.batchIndex >= 0),
    'every message went in a batch',
  );
  await producer.close();
}

async function subscribeLowHigh(topic: string): Promise<Record<string, Consumer>> {
  const sub = {
    topic,
    subscription: 'ks',
    subscriptionType: 'Key_Shared' as const,
    initialPosition: 'Earliest' as const,
  };
  return {
    low: await client.subscribe({ ...sub, keySharedPolicy: { mode: 'Sticky', ranges: [[0, 32767]] } }),
    high: await client.subscribe({ ...sub, keySharedPolicy: { mode: 'Sticky', ranges: [[32768, 65535]] } }),
  };
}

test('the keys fall on both sides of the hash range (the premise of the tests below)', () => {
  const sides = new Set(KEYS.map(owner));
  assert.deepEqual([...sides].sort(), ['high', 'low']);
});

test('batchingByKey: one key per entry; each message reaches its key consumer, in order, once', async () => {
  const topic = uniqueName('persistent://public/default/key-batching');
  const consumers = await subscribeLowHigh(topic);
  await produceInterleaved(topic, true);
  const got = await drain(consumers, KEYS.length * PER_KEY);
  assert.equal(got.length, KEYS.length * PER_KEY);
  const keysOfEntry = new Map<string, Set<string>>();
  for (const g of got) keysOfEntry.set(g.entry, (keysOfEntry.get(g.entry) ?? new Set()).add(g.key));
  for (const [entry, keys] of keysOfEntry) assert.equal(keys.size, 1, `entry ${entry}: ${[...keys]}`);
  assert.ok(keysOfEntry.size < got.length, `batched: ${keysOfEntry.size} entries for ${got.length} messages`);
  for (const g of got) assert.equal(g.consumer, owner(g.key), `${g.key}/${g.n} went to ${g.consumer}`);
  for (const key of KEYS) {
    assert.deepEqual(
      got.filter((g) => g.key === key).map((g) => g.n),
      Array.from({ length: PER_KEY }, (_, i) => i),
      `${key}: in order, once`,
    );
  }
  await Promise.all(Object.values(consumers).map((c) => c.close()));
});

test('ordinary batching: entries of several keys go whole to the consumer of their first key', async () => {
  const topic = uniqueName('persistent://public/default/mixed-batching');
  const consumers = await subscribeLowHigh(topic);
  await produceInterleaved(topic, false);
  const got = await drain(consumers, KEYS.length * PER_KEY);
  assert.equal(got.length, KEYS.length * PER_KEY);
  const entries = new Map<string, Got[]>();
  for (const g of got) entries.set(g.entry, [...(entries.get(g.entry) ?? []), g]);
  assert.ok(
    [...entries.values()].some((e) => new Set(e.map((g) => g.key)).size > 1),
    'entries mix keys',
  );
  for (const [entry, messages] of entries) {
    const first = messages.find((g) => g.m.messageId.batchIndex === 0);
    assert.ok(first, `entry ${entry} has its first message`);
    for (const g of messages)
      assert.equal(g.consumer, owner(first.key), `entry ${entry} (first key ${first.key}): ${g.key}/${g.n}`);
  }
  // So one key's messages reach both consumers: its order holds only within each of them.
  const split = KEYS.filter(
    (key) => new Set(got.filter((g) => g.key === key).map((g) => g.consumer)).size > 1,
  );
  assert.ok(split.length > 0, 'some key reached both consumers');
  await Promise.all(Object.values(consumers).map((c) => c.close()));
});
