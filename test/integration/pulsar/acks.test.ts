// Acknowledgement semantics against the real broker.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { type Message, PulsarClient } from '../../../src/pulsar/index.ts';
import { type PulsarHandle, startPulsar } from '../../../testenv/pulsar.ts';
import { pulsarPlain } from '../../support/env.ts';
import { receiveN, receiveWithin, unique } from './helpers.ts';

const env = pulsarPlain();
const client = new PulsarClient({ serviceUrl: env.serviceUrl, operationTimeoutMs: 30_000 });
let privateBroker: PulsarHandle | undefined;
after(async () => {
  await client.close();
  await privateBroker?.stop();
});
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

test('unacked messages come back after the consumer closes; acked ones do not', async () => {
  const topic = unique('unacked');
  const producer = await client.createProducer({ topic, batchingMaxMessages: 1 });
  const c1 = await client.subscribe({
    topic,
    subscription: 's',
    subscriptionType: 'Shared',
    initialPosition: 'Earliest',
  });
  await Promise.all(Array.from({ length: 10 }, (_, i) => producer.send({ payload: enc(`m${i}`) })));
  const got = await receiveN(c1, 10, 30_000, false);
  for (const m of got.slice(0, 4)) await c1.ack(m);
  await c1.close();
  const c2 = await client.subscribe({ topic, subscription: 's', subscriptionType: 'Shared' });
  const again = await receiveN(c2, 6);
  assert.deepEqual(again.map((m) => dec(m.payload)).sort(), ['m4', 'm5', 'm6', 'm7', 'm8', 'm9']);
  assert.equal(await receiveWithin(c2, 1500), undefined);
  await Promise.all([c2.close(), producer.close()]);
});

test('nack redelivers the message with its redelivery count raised', async () => {
  const topic = unique('nack');
  const producer = await client.createProducer({ topic, batchingMaxMessages: 1 });
  const c = await client.subscribe({
    topic,
    subscription: 's',
    subscriptionType: 'Shared',
    nackRedeliveryDelayMs: 200,
  });
  await producer.send({ payload: enc('again') });
  const first = await receiveWithin(c, 10_000);
  assert.ok(first);
  assert.equal(first.redeliveryCount, 0);
  c.nack(first);
  const second = await receiveWithin(c, 20_000);
  assert.ok(second, 'redelivered');
  assert.equal(dec(second.payload), 'again');
  assert.equal(second.messageId.toString(), first.messageId.toString());
  assert.equal(second.redeliveryCount, 1);
  await c.ack(second);
  await Promise.all([c.close(), producer.close()]);
});

test('a partly acked batch redelivers only the unacked entries', async () => {
  const topic = unique('partial-batch');
  const producer = await client.createProducer({ topic, batchingMaxMessages: 10, batchingMaxDelayMs: 50 });
  const c = await client.subscribe({
    topic,
    subscription: 's',
    subscriptionType: 'Shared',
    nackRedeliveryDelayMs: 200,
  });
  const ids = await Promise.all(
    Array.from({ length: 10 }, (_, i) => producer.send({ payload: enc(`b${i}`) })),
  );
  assert.equal(new Set(ids.map((id) => `${id.ledgerId}:${id.entryId}`)).size, 1, 'one batch entry');
  const got = await receiveN(c, 10, 30_000, false);
  const unacked: Message[] = [];
  for (const m of got) {
    if (m.messageId.batchIndex % 3 === 0) unacked.push(m);
    else await c.ack(m);
  }
  for (const m of unacked) c.nack(m);
  const redelivered = await receiveN(c, unacked.length, 30_000);
  assert.deepEqual(
    redelivered.map((m) => dec(m.payload)),
    unacked.map((m) => dec(m.payload)),
  );
  assert.ok(redelivered.every((m) => m.redeliveryCount === 1));
  assert.equal(await receiveWithin(c, 1500), undefined, 'the acked entries of the batch did not come back');
  await Promise.all([c.close(), producer.close()]);
});

/**
 * A broker with acknowledgmentAtBatchIndexLevelEnabled=true: the shared one if its runtime configuration says
 * so (brokers from testenv/pulsar.ts started since that setting was added), else a private one started here.
 */
async function batchIndexBroker(): Promise<string> {
  const res = await fetch(`${env.adminUrl}/admin/v2/brokers/configuration/runtime`);
  const conf = (await res.json()) as Record<string, string>;
  if (conf.acknowledgmentAtBatchIndexLevelEnabled === 'true') return env.serviceUrl;
  privateBroker = await startPulsar({ profile: 'plain', maxHeap: '512m' });
  return privateBroker.serviceUrl;
}

test('a partly acked batch: a new consumer of the subscription gets only the unacked messages (batch-index acks)', async () => {
  const url = await batchIndexBroker();
  const c = new PulsarClient({ serviceUrl: url, operationTimeoutMs: 30_000 });
  try {
    // batchIndexAck: true (the default) sends the entry's ack_set; false acks an entry only once all of it is.
    for (const batchIndexAck of [true, false]) {
      const topic = unique(`partial-batch-new-consumer-${batchIndexAck}`);
      const producer = await c.createProducer({ topic, batchingMaxMessages: 10, batchingMaxDelayMs: 50 });
      const sub = { topic, subscription: 's', subscriptionType: 'Shared' as const, batchIndexAck };
      const c1 = await c.subscribe({ ...sub, initialPosition: 'Earliest' });
      const ids = await Promise.all(
        Array.from({ length: 10 }, (_, i) => producer.send({ payload: enc(`b${i}`) })),
      );
      assert.equal(new Set(ids.map((id) => `${id.ledgerId}:${id.entryId}`)).size, 1, 'one batch entry');
      const got = await receiveN(c1, 10, 30_000, false);
      for (const m of got) if (m.messageId.batchIndex % 3 !== 0) await c1.ack(m);
      await c1.close(); // sends the pending (grouped) acks first
      const c2 = await c.subscribe(sub);
      if (batchIndexAck) {
        const again = await receiveN(c2, 4, 30_000, false);
        assert.deepEqual(
          again.map((m) => dec(m.payload)),
          ['b0', 'b3', 'b6', 'b9'],
        );
        assert.deepEqual(
          again.map((m) => m.messageId.batchIndex),
          [0, 3, 6, 9],
        );
        assert.equal(await receiveWithin(c2, 1500), undefined, 'no acked message of the batch came back');
        for (const m of again) await c2.ack(m);
        await c2.close();
        const c3 = await c.subscribe(sub);
        assert.equal(await receiveWithin(c3, 1500), undefined, 'the batch is fully acked');
        await c3.close();
      } else {
        const again = await receiveN(c2, 10, 30_000, false);
        assert.deepEqual(
          again.map((m) => dec(m.payload)),
          Array.from({ length: 10 }, (_, i) => `b${i}`),
          'without ack_set the broker keeps the whole entry',
        );
        await c2.close();
      }
      await producer.close();
    }
  } finally {
    await c.close();
  }
});

test('cumulative ack on Exclusive acknowledges everything up to the message', async () => {
  const topic = unique('cumulative');
  const producer = await client.createProducer({ topic, batchingMaxMessages: 1 });
  const c1 = await client.subscribe({
    topic,
    subscription: 's',
    subscriptionType: 'Exclusive',
    initialPosition: 'Earliest',
  });
  await Promise.all(Array.from({ length: 10 }, (_, i) => producer.send({ payload: enc(`m${i}`) })));
  const got = await receiveN(c1, 10, 30_000, false);
  await c1.ackCumulative(got[5] as Message);
  await c1.close();
  const c2 = await client.subscribe({ topic, subscription: 's', subscriptionType: 'Exclusive' });
  const rest = await receiveN(c2, 4);
  assert.deepEqual(
    rest.map((m) => dec(m.payload)),
    ['m6', 'm7', 'm8', 'm9'],
  );
  await Promise.all([c2.close(), producer.close()]);
});

test('seek to the earliest message replays the topic; unsubscribe removes the subscription', async () => {
  const topic = unique('seek');
  const producer = await client.createProducer({ topic, batchingMaxMessages: 1 });
  const c = await client.subscribe({ topic, subscription: 's', initialPosition: 'Earliest' });
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push(await producer.send({ payload: enc(`m${i}`) }));
  await receiveN(c, 5);
  await c.seek(ids[0] as (typeof ids)[number]);
  const replay = await receiveN(c, 5);
  assert.deepEqual(
    replay.map((m) => dec(m.payload)),
    ['m0', 'm1', 'm2', 'm3', 'm4'],
  );
  await c.unsubscribe();
  await assert.rejects(c.receive(), (e: unknown) => (e as { code?: string }).code === 'ALREADY_CLOSED');
  const res = await fetch(`${env.adminUrl}/admin/v2/persistent/public/default/${topic}/subscriptions`);
  assert.deepEqual(await res.json(), []);
  await producer.close();
});
