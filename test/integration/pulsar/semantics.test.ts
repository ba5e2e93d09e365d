// Subscription types against the real broker.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { PulsarClient, ServerError } from '../../../src/pulsar/index.ts';
import { pulsarPlain } from '../../support/env.ts';
import { receiveN, receiveWithin, unique } from './helpers.ts';

const env = pulsarPlain();
const client = new PulsarClient({ serviceUrl: env.serviceUrl, operationTimeoutMs: 30_000 });
after(() => client.close());
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

test('Exclusive refuses a second consumer with ConsumerBusy', async () => {
  const topic = unique('excl');
  const first = await client.subscribe({ topic, subscription: 's', subscriptionType: 'Exclusive' });
  await assert.rejects(
    client.subscribe({ topic, subscription: 's', subscriptionType: 'Exclusive' }),
    (e: unknown) => e instanceof ServerError && e.serverError === 'ConsumerBusy' && e.message.includes(topic),
  );
  await first.close();
});

test('Shared spreads messages over two consumers, each message once', async () => {
  const topic = unique('shared');
  const a = await client.subscribe({
    topic,
    subscription: 's',
    subscriptionType: 'Shared',
    receiverQueueSize: 10,
  });
  const b = await client.subscribe({
    topic,
    subscription: 's',
    subscriptionType: 'Shared',
    receiverQueueSize: 10,
  });
  const producer = await client.createProducer({ topic, batchingMaxMessages: 1 });
  const n = 200;
  await Promise.all(Array.from({ length: n }, (_, i) => producer.send({ payload: enc(`m${i}`) })));
  const seen = new Map<string, string>();
  const drain = async (c: typeof a, name: string) => {
    for (;;) {
      const m = await receiveWithin(c, 3000);
      if (!m) return;
      assert.ok(!seen.has(dec(m.payload)), `duplicate ${dec(m.payload)}`);
      seen.set(dec(m.payload), name);
      await c.ack(m);
    }
  };
  await Promise.all([drain(a, 'a'), drain(b, 'b')]);
  assert.equal(seen.size, n);
  const byA = [...seen.values()].filter((v) => v === 'a').length;
  assert.ok(byA > 0 && byA < n, `both consumers got messages (a: ${byA}, b: ${n - byA})`);
  await Promise.all([a.close(), b.close(), producer.close()]);
});

test('Failover moves the stream to the standby when the active consumer closes', async () => {
  const topic = unique('failover');
  const producer = await client.createProducer({ topic, batchingMaxMessages: 1 });
  const c1 = await client.subscribe({
    topic,
    subscription: 's',
    subscriptionType: 'Failover',
    consumerName: 'c1',
  });
  const c2 = await client.subscribe({
    topic,
    subscription: 's',
    subscriptionType: 'Failover',
    consumerName: 'c2',
  });
  await Promise.all(Array.from({ length: 10 }, (_, i) => producer.send({ payload: enc(`a${i}`) })));
  const got = new Map<typeof c1, string[]>([
    [c1, []],
    [c2, []],
  ]);
  const drain = async (c: typeof c1) => {
    for (;;) {
      const m = await receiveWithin(c, 3000);
      if (!m) return;
      got.get(c)?.push(dec(m.payload));
      await c.ack(m);
    }
  };
  await Promise.all([drain(c1), drain(c2)]);
  const [active, standby] = (got.get(c1)?.length ?? 0) > 0 ? [c1, c2] : [c2, c1];
  assert.deepEqual(
    got.get(active),
    Array.from({ length: 10 }, (_, i) => `a${i}`),
    'one consumer (the active one) got every message, in order',
  );
  assert.deepEqual(got.get(standby), [], 'the standby got nothing');
  await active.close();
  await Promise.all(Array.from({ length: 10 }, (_, i) => producer.send({ payload: enc(`b${i}`) })));
  const after = await receiveN(standby, 10);
  assert.deepEqual(
    after.map((m) => dec(m.payload)),
    Array.from({ length: 10 }, (_, i) => `b${i}`),
  );
  await Promise.all([standby.close(), producer.close()]);
});

test('Key_Shared keeps each key on one consumer', async () => {
  const topic = unique('keyshared');
  const a = await client.subscribe({ topic, subscription: 's', subscriptionType: 'Key_Shared' });
  const b = await client.subscribe({ topic, subscription: 's', subscriptionType: 'Key_Shared' });
  const producer = await client.createProducer({ topic, batchingMaxMessages: 1 });
  const keys = Array.from({ length: 20 }, (_, i) => `key-${i}`);
  await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      producer.send({ payload: enc(`m${i}`), key: keys[i % keys.length] }),
    ),
  );
  const owner = new Map<string, string>();
  let total = 0;
  const drain = async (c: typeof a, name: string) => {
    for (;;) {
      const m = await receiveWithin(c, 3000);
      if (!m) return;
      total++;
      const k = m.key ?? '';
      assert.equal(owner.get(k) ?? name, name, `key ${k} went to both consumers`);
      owner.set(k, name);
      await c.ack(m);
    }
  };
  await Promise.all([drain(a, 'a'), drain(b, 'b')]);
  assert.equal(total, 200);
  assert.equal(owner.size, keys.length);
  assert.equal(new Set(owner.values()).size, 2, 'keys were spread over both consumers');
  await Promise.all([a.close(), b.close(), producer.close()]);
});

test('tryReceive drains what is buffered without waiting; the async iterator yields in order and ends on close', async () => {
  const topic = unique('try-receive');
  const producer = await client.createProducer({ topic, batchingMaxMessages: 20, batchingMaxDelayMs: 50 });
  const c = await client.subscribe({ topic, subscription: 's', initialPosition: 'Earliest' });
  assert.equal(c.tryReceive(), undefined, 'nothing buffered yet');
  await Promise.all(Array.from({ length: 20 }, (_, i) => producer.send({ payload: enc(`m${i}`) })));
  // One batch entry: once its first message is received, the other 19 are buffered.
  const first = await c.receive();
  assert.equal(first.messageId.batchSize, 20);
  const drained = [dec(first.payload)];
  for (let m = c.tryReceive(); m !== undefined; m = c.tryReceive()) drained.push(dec(m.payload));
  assert.deepEqual(
    drained,
    Array.from({ length: 20 }, (_, i) => `m${i}`),
  );
  assert.equal(c.queued, 0);

  const sends = Promise.all(Array.from({ length: 5 }, (_, i) => producer.send({ payload: enc(`n${i}`) })));
  const seen: string[] = [];
  for await (const m of c) {
    seen.push(dec(m.payload));
    await c.ack(m);
    if (seen.length === 5) await c.close(); // the loop then ends without a further message
  }
  await sends;
  assert.deepEqual(seen, ['n0', 'n1', 'n2', 'n3', 'n4']);
  await producer.close();
});
