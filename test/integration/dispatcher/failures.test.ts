import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pulsarPlain } from '../../support/env.ts';
import { metricValue, startInProcess } from './inproc.ts';
import { ensureSubscription, FunctionServer, produce, uniqueName, until } from './support.ts';

const enc = (s: string) => new TextEncoder().encode(s);

function retryDecisions(lines: string[]): { retryInMs: number; outcome: string }[] {
  return lines
    .map((l) => JSON.parse(l) as { msg: string; retryInMs: number; outcome: string })
    .filter((l) => l.msg === 'retry scheduled');
}

describe('a failing function', () => {
  const pulsar = pulsarPlain();
  let fn: FunctionServer;
  before(async () => {
    fn = await FunctionServer.start();
  });
  after(async () => {
    await fn.close().catch(() => undefined);
  });

  test('500, then timeouts, then refused connections: nothing lost, backoff grows to its cap, delivery resumes', async () => {
    const topic = `persistent://public/default/${uniqueName('fail')}`;
    const name = uniqueName('trig');
    await ensureSubscription(pulsar.serviceUrl, topic, `${name}-default`);
    const n = 20;
    await produce(
      pulsar.serviceUrl,
      topic,
      Array.from({ length: n }, (_, i) => ({ payload: enc(`msg-${i}`) })),
    );
    let phase: 'error' | 'timeout' | 'ok' = 'error';
    fn.reply = () =>
      phase === 'error'
        ? { status: 500, body: 'down' }
        : phase === 'timeout'
          ? { hang: true }
          : { status: 200 };
    const logLines: string[] = [];
    const { trigger, metrics } = startInProcess(
      {
        TRIGGER_NAME: name,
        TRIGGER_NAMESPACE: 'default',
        PULSAR_BROKER: pulsar.serviceUrl,
        PULSAR_TOPIC: topic,
        KUBELESS_FUNCTION: fn.url,
        DISPATCH_CONCURRENCY: '4',
        DISPATCH_TIMEOUT_SECONDS: '0.2',
        ERROR_BACKOFF_DELAY_INITIAL: '0.02',
        ERROR_BACKOFF_DELAY_MAX: '0.16',
      },
      { logLines },
    );
    const attempts = (outcome: string) =>
      metricValue(metrics, 'kpt_dispatcher_delivery_attempts_total', { outcome });
    try {
      await until(async () => (await attempts('status')) >= 40, '500s answered');
      phase = 'timeout';
      await until(async () => (await attempts('timeout')) >= 10, 'timeouts');
      await fn.close();
      await until(async () => (await attempts('refused')) >= 10, 'refused connections');
      assert.equal(
        await metricValue(metrics, 'kpt_dispatcher_messages_delivered_total'),
        0,
        'nothing acked while failing',
      );

      // Backoff decisions of each failure streak grow until the cap and stay there.
      const decisions = retryDecisions(logLines);
      assert.ok(decisions.length > 0);
      const max = Math.max(...decisions.map((d) => d.retryInMs));
      assert.ok(max <= 160, `never beyond the cap: ${max}`);
      assert.ok(max >= 160 * 0.8, `reaches the cap (less jitter): ${max}`);
      assert.ok(
        decisions.some((d) => d.retryInMs <= 20),
        'starts at the initial delay',
      );

      phase = 'ok';
      await fn.listen(fn.port);
      await until(
        () => fn.distinctBodies().filter((b) => b.startsWith('msg-')).length === n,
        'all delivered after recovery',
      );
      await until(
        async () => (await metricValue(metrics, 'kpt_dispatcher_messages_delivered_total')) === n,
        'all acked',
      );
      assert.ok((await metricValue(metrics, 'kpt_dispatcher_retries_total')) >= 60);
    } finally {
      await trigger.stop();
    }
  });

  test('Retry-After is honoured up to the cap', async () => {
    const topic = `persistent://public/default/${uniqueName('ra')}`;
    const name = uniqueName('trig');
    await ensureSubscription(pulsar.serviceUrl, topic, `${name}-default`);
    await produce(pulsar.serviceUrl, topic, [{ payload: enc('ra-1') }]);
    let calls = 0;
    fn.reply = (r) => {
      if (r.body.toString() !== 'ra-1') return { status: 200 };
      calls++;
      if (calls === 1) return { status: 503, headers: { 'retry-after': '1' } };
      if (calls === 2) return { status: 429, headers: { 'retry-after': '3600' } };
      return { status: 200 };
    };
    const logLines: string[] = [];
    const { trigger, metrics } = startInProcess(
      {
        TRIGGER_NAME: name,
        TRIGGER_NAMESPACE: 'default',
        PULSAR_BROKER: pulsar.serviceUrl,
        PULSAR_TOPIC: topic,
        KUBELESS_FUNCTION: fn.url,
        ERROR_BACKOFF_DELAY_INITIAL: '0.01',
        ERROR_BACKOFF_DELAY_MAX: '1.5',
      },
      { logLines },
    );
    try {
      await until(
        async () => (await metricValue(metrics, 'kpt_dispatcher_messages_delivered_total')) === 1,
        'delivered',
      );
      const decisions = retryDecisions(logLines).map((d) => d.retryInMs);
      assert.deepEqual(decisions, [1000, 1500], 'Retry-After: 1 s as asked, then an hour capped at 1.5 s');
    } finally {
      await trigger.stop();
    }
  });
});

describe('dead letter', () => {
  const pulsar = pulsarPlain();

  test('after the budget the message is on the DLQ topic with its properties and the error, and acked', async () => {
    const fn = await FunctionServer.start();
    fn.reply = (r) =>
      r.body.toString() === 'poison' ? { status: 500, body: 'cannot digest' } : { status: 200 };
    const topic = `persistent://public/default/${uniqueName('dlq')}`;
    const name = uniqueName('trig');
    const sub = `${name}-default`;
    const dlqTopic = `${topic}-${sub}-DLQ`;
    await ensureSubscription(pulsar.serviceUrl, topic, sub);
    await ensureSubscription(pulsar.serviceUrl, dlqTopic, 'inspect');
    await produce(pulsar.serviceUrl, topic, [
      { payload: enc('fine-1') },
      {
        payload: enc('poison'),
        key: 'k-poison',
        properties: { origin: 'test', 'content-type': 'text/plain' },
      },
      { payload: enc('fine-2') },
    ]);
    const { trigger, metrics } = startInProcess({
      TRIGGER_NAME: name,
      TRIGGER_NAMESPACE: 'default',
      PULSAR_BROKER: pulsar.serviceUrl,
      PULSAR_TOPIC: topic,
      KUBELESS_FUNCTION: fn.url,
      DISPATCH_MAX_ATTEMPTS: '3',
      ERROR_BACKOFF_DELAY_INITIAL: '0.01',
      ERROR_BACKOFF_DELAY_MAX: '0.05',
    });
    const { PulsarClient } = await import('../../../src/pulsar/index.ts');
    const client = new PulsarClient({ serviceUrl: pulsar.serviceUrl });
    try {
      await until(
        async () => (await metricValue(metrics, 'kpt_dispatcher_messages_dead_lettered_total')) === 1,
        'dead-lettered',
      );
      assert.equal(fn.received.filter((r) => r.body.toString() === 'poison').length, 3, 'three attempts');
      const inspect = await client.subscribe({
        topic: dlqTopic,
        subscription: 'inspect',
        subscriptionType: 'Shared',
      });
      const m = await inspect.receive();
      assert.equal(new TextDecoder().decode(m.payload), 'poison');
      assert.equal(m.key, 'k-poison');
      assert.equal(m.properties.origin, 'test');
      assert.equal(m.properties.DLQ_ATTEMPTS, '3');
      assert.equal(m.properties.DLQ_LAST_STATUS, '500');
      assert.match(m.properties.DLQ_LAST_ERROR ?? '', /HTTP 500: cannot digest/);
      assert.equal(m.properties.REAL_TOPIC, topic);
      await inspect.ack(m);
      // Acked on the source: the subscription's backlog drains to zero.
      await until(async () => {
        const res = await fetch(`${pulsar.adminUrl}/admin/v2/${topic.replace('://', '/')}/stats`);
        const stats = (await res.json()) as {
          subscriptions: Record<string, { msgBacklog: number; unackedMessages: number }>;
        };
        const s = stats.subscriptions[sub];
        return s !== undefined && s.msgBacklog === 0;
      }, 'source backlog empty');
      assert.equal(await metricValue(metrics, 'kpt_dispatcher_messages_delivered_total'), 2);
    } finally {
      await trigger.stop();
      await client.close();
      await fn.close();
    }
  });
});
