// A broker restart during a stream, on a private broker (the shared one must not restart under other tests).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PulsarClient } from '../../../src/pulsar/index.ts';
import { startPulsar } from '../../../testenv/pulsar.ts';
import { metricValue, startInProcess } from './inproc.ts';
import { ensureSubscription, FunctionServer, sleep, uniqueName, until } from './support.ts';

test('broker restart during a stream: nothing lost', { timeout: 600_000 }, async () => {
  const broker = await startPulsar({ profile: 'plain' });
  const fn = await FunctionServer.start();
  fn.reply = () => ({ status: 200, delayMs: 1 });
  const topic = `persistent://public/default/${uniqueName('restart')}`;
  const name = uniqueName('trig');
  let trigger: ReturnType<typeof startInProcess>['trigger'] | undefined;
  const client = new PulsarClient({ serviceUrl: broker.serviceUrl });
  try {
    await ensureSubscription(broker.serviceUrl, topic, `${name}-default`);
    const started = startInProcess({
      TRIGGER_NAME: name,
      TRIGGER_NAMESPACE: 'default',
      PULSAR_BROKER: broker.serviceUrl,
      PULSAR_TOPIC: topic,
      KUBELESS_FUNCTION: fn.url,
      DISPATCH_CONCURRENCY: '16',
    });
    trigger = started.trigger;
    const producer = await client.createProducer({ topic, batchingMaxMessages: 1 });
    const total = 3000;
    // The producer resends what the broker did not confirm; every send resolves once the message is stored.
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < total; i++) {
      sends.push(producer.send({ payload: new TextEncoder().encode(`x-${i}`) }));
      if (i === 1000) {
        await until(() => fn.received.length >= 500, 'stream under way');
        await broker.restart();
      }
      if (i % 100 === 0) await sleep(5);
    }
    await Promise.all(sends);
    await until(
      () => new Set(fn.distinctBodies()).size >= total,
      'every message delivered after the restart',
      240_000,
    );
    const bodies = new Set(fn.distinctBodies());
    for (let i = 0; i < total; i++) assert.ok(bodies.has(`x-${i}`), `x-${i}`);
    await until(
      async () => (await metricValue(started.metrics, 'kpt_dispatcher_messages_delivered_total')) >= total,
      'acked',
    );
    assert.ok(trigger.isReady(), 'ready again after the restart');
  } finally {
    await trigger?.stop();
    await client.close().catch(() => undefined);
    await fn.close();
    await broker.stop();
  }
});
