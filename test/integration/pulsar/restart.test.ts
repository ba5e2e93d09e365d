// Broker restart in the middle of a stream: the consumer resumes and every message produced (every send that
// resolved) is received at least once. Starts its own standalone through testenv (restart needs a broker of
// its own), so it does not disturb the shared one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PulsarClient } from '../../../src/pulsar/index.ts';
import { startPulsar } from '../../../testenv/pulsar.ts';
import { receiveWithin } from './helpers.ts';

test('broker restart mid-stream: producer resends, consumer resumes, nothing acknowledged is lost', {
  timeout: 600_000,
}, async () => {
  const pulsar = await startPulsar({ profile: 'plain' });
  const client = new PulsarClient({
    serviceUrl: pulsar.serviceUrl,
    operationTimeoutMs: 30_000,
    initialBackoffMs: 200,
    maxBackoffMs: 2000,
  });
  try {
    const topic = `restart-${Date.now().toString(36)}`;
    const consumer = await client.subscribe({
      topic,
      subscription: 's',
      subscriptionType: 'Shared',
      initialPosition: 'Earliest',
    });
    const producer = await client.createProducer({ topic, batchingMaxMessages: 20, batchingMaxDelayMs: 5 });
    const total = 1000;
    const received = new Set<string>();
    let receiving = true;
    const reader = (async () => {
      while (receiving || received.size < total) {
        const m = await receiveWithin(consumer, 1000);
        if (!m) continue;
        received.add(new TextDecoder().decode(m.payload));
        await consumer.ack(m);
      }
    })();
    assert.equal(consumer.connected, true, 'connected once subscribed');
    // The connection state follows the broker: false while it is away, true again after the resubscribe.
    let sawDisconnected = false;
    const watcher = setInterval(() => {
      if (!consumer.connected) sawDisconnected = true;
    }, 20);
    const sent: Promise<unknown>[] = [];
    let restarting: Promise<void> | undefined;
    for (let i = 0; i < total; i++) {
      sent.push(producer.send({ payload: new TextEncoder().encode(`m${i}`) }));
      if (i === 300) {
        await Promise.all(sent);
        // Keep sending while the broker goes down and comes back: those sends wait and are resent.
        restarting = pulsar.restart();
      }
      if (i % 50 === 49) await new Promise((r) => setTimeout(r, 5));
    }
    await restarting;
    const ids = await Promise.all(sent);
    clearInterval(watcher);
    assert.equal(sawDisconnected, true, 'connected was false while the broker restarted');
    assert.equal(ids.length, total, 'every send resolved');
    receiving = false;
    const guard = setTimeout(() => {
      throw new Error(`only ${received.size} of ${total} messages received after the restart`);
    }, 240_000);
    await reader;
    clearTimeout(guard);
    for (let i = 0; i < total; i++) assert.ok(received.has(`m${i}`), `m${i} received`);
    assert.equal(consumer.connected, true, 'connected again after the restart');
    await producer.close();
    await consumer.close();
  } finally {
    await client.close();
    await pulsar.stop();
  }
});
