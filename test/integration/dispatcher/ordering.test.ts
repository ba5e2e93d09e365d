import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pulsarPlain } from '../../support/env.ts';
import { metricValue, startInProcess } from './inproc.ts';
import { ensureSubscription, FunctionServer, produce, uniqueName, until } from './support.ts';

test('key ordering: each key in order under concurrency, other keys pass a stuck key', async () => {
  const pulsar = pulsarPlain();
  const fn = await FunctionServer.start();
  const topic = `persistent://public/default/${uniqueName('order')}`;
  const name = uniqueName('trig');
  await ensureSubscription(pulsar.serviceUrl, topic, `${name}-default`);
  const keys = ['a', 'b', 'c', 'd', 'e', 'stuck'];
  const perKey = 60;
  const messages = [];
  for (let i = 0; i < perKey; i++) {
    for (const k of keys) messages.push({ payload: new TextEncoder().encode(`${k}:${i}`), key: k });
  }
  await produce(pulsar.serviceUrl, topic, messages, { batching: true });
  let stuck = true;
  // Random small delays so that, without ordering, messages of a key would overtake each other.
  fn.reply = (r) => {
    const [k] = r.body.toString().split(':');
    if (k === 'stuck' && stuck) return { status: 503 };
    return { status: 200, delayMs: Math.floor(Math.random() * 4) };
  };
  const { trigger, metrics } = startInProcess(
    {
      TRIGGER_NAME: name,
      TRIGGER_NAMESPACE: 'default',
      PULSAR_BROKER: pulsar.serviceUrl,
      PULSAR_TOPIC: topic,
      KUBELESS_FUNCTION: fn.url,
      DISPATCH_CONCURRENCY: '8',
      DISPATCH_ORDERING: 'key',
      ERROR_BACKOFF_DELAY_INITIAL: '0.01',
      ERROR_BACKOFF_DELAY_MAX: '0.05',
    },
    { tuning: { maxParkedPerKey: 4, releaseDelayMs: 100 } },
  );
  try {
    const okBodies = () => fn.received.filter((r) => !r.body.toString().startsWith('stuck'));
    await until(
      () => new Set(okBodies().map((r) => r.body.toString())).size === (keys.length - 1) * perKey,
      'other keys done',
    );
    // The function has every body; the dispatcher counts a delivery when the 2xx reaches it, a moment later.
    await until(
      async () =>
        (await metricValue(metrics, 'kpt_dispatcher_messages_delivered_total')) >= (keys.length - 1) * perKey,
      'the other keys counted as delivered',
    );
    assert.ok(
      (await metricValue(metrics, 'kpt_dispatcher_messages_released_total')) > 0,
      'the stuck key released what it could not park',
    );
    stuck = false;
    await until(
      async () =>
        (await metricValue(metrics, 'kpt_dispatcher_messages_delivered_total')) >= keys.length * perKey,
      'stuck key recovered',
    );
    // Per key, the successful deliveries arrive in production order.
    const byKey = new Map<string, number[]>();
    for (const r of fn.received) {
      if (r.headers['event-topic'] !== topic) continue;
      const [k, i] = r.body.toString().split(':') as [string, string];
      byKey.set(k, [...(byKey.get(k) ?? []), Number(i)]);
    }
    for (const k of keys.filter((x) => x !== 'stuck')) {
      assert.deepEqual(
        byKey.get(k),
        Array.from({ length: perKey }, (_, i) => i),
        `key ${k} in order, once`,
      );
    }
    // The stuck key: retries repeat a message, but never go back to an earlier one once a later one was sent.
    const stuckSeq = byKey.get('stuck') ?? [];
    for (let i = 1; i < stuckSeq.length; i++)
      assert.ok(stuckSeq[i]! >= stuckSeq[i - 1]!, `stuck key in order: ${stuckSeq.join(',')}`);
    assert.equal(new Set(stuckSeq).size, perKey);
  } finally {
    await trigger.stop();
    await fn.close();
  }
});
