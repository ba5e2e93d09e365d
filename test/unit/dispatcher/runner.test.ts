import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger } from '../../../src/dispatcher/log.ts';
import { DispatcherMetrics } from '../../../src/dispatcher/metrics.ts';
import {
  DEFAULT_RETRY,
  DEFAULT_STATUS_ACTIONS,
  type OrderingMode,
  type RetryPolicy,
  type StatusActions,
  statusActionsFromRules,
} from '../../../src/dispatcher/policy.ts';
import { Dispatcher, DLQ_PROPS } from '../../../src/dispatcher/runner.ts';
import { FakeFunction, FakeSink, FakeSource, hang, message, type Script, until } from './fakes.ts';

const silent = createLogger('silent');

function setup(
  opts: {
    script?: Script;
    ordering?: OrderingMode;
    concurrency?: number;
    retry?: Partial<RetryPolicy>;
    actions?: StatusActions;
    maxParkedPerKey?: number;
    maxHeld?: number;
  } = {},
) {
  const source = new FakeSource();
  const fn = new FakeFunction(opts.script);
  const sink = new FakeSink();
  const metrics = new DispatcherMetrics({ defaultMetrics: false });
  const d = new Dispatcher(
    {
      trigger: 'default/t',
      topic: 'persistent://public/default/t',
      subscription: 't-default',
      request: {
        triggerName: 't',
        triggerNamespace: 'default',
        timezone: 'UTC',
        contentType: { kind: 'auto' },
        eventFormat: 'kubeless',
      },
      statusActions: opts.actions ?? DEFAULT_STATUS_ACTIONS,
      retry: { ...DEFAULT_RETRY, initialDelayMs: 2, maxDelayMs: 20, ...opts.retry },
      lanes: {
        ordering: opts.ordering ?? 'key',
        concurrency: opts.concurrency ?? 8,
        maxHeld: opts.maxHeld ?? 64,
        maxParkedPerKey: opts.maxParkedPerKey ?? 4,
        overflowMemoryMs: 60_000,
        maxOverflowMemory: 1000,
      },
      shutdownGraceMs: 1000,
    },
    {
      source,
      fn,
      openDeadLetter: async () => sink,
      metrics: metrics.forTrigger('default/t'),
      log: silent,
    },
  );
  const loop = d.start();
  return { source, fn, sink, d, metrics, loop };
}

async function metric(
  m: DispatcherMetrics,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const all = await m.registry.getMetricsAsJSON();
  const found = all.find((x) => x.name === name);
  let total = 0;
  for (const v of found?.values ?? []) {
    if (Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val))
      total += v.value;
  }
  return total;
}

describe('runner', () => {
  test('delivers and acks each message once, with a stable event id', async () => {
    const { source, fn, d, metrics } = setup();
    source.push(...Array.from({ length: 50 }, (_, i) => message(i)));
    await until(() => source.acked.length === 50, 'all acked');
    assert.equal(fn.calls.length, 50);
    assert.deepEqual(new Set(source.acked).size, 50);
    assert.equal(fn.calls[0]!.headers['event-id'], fn.calls[0]!.headers['pulsar-message-id']);
    assert.equal(await metric(metrics, 'kpt_dispatcher_messages_delivered_total'), 50);
    assert.equal(await metric(metrics, 'kpt_dispatcher_delivery_attempts_total', { outcome: 'success' }), 50);
    await d.stop();
    assert.ok(fn.closed && source.closed);
  });

  test('retries failures with the same request until a 2xx, then acks', async () => {
    let n = 0;
    const { source, fn, d, metrics } = setup({
      script: () => (++n <= 3 ? { kind: 'status', status: 503 } : { kind: 'status', status: 200 }),
    });
    source.push(message(1));
    await until(() => source.acked.length === 1, 'acked');
    assert.equal(fn.calls.length, 4);
    assert.equal(new Set(fn.calls.map((c) => c.headers['event-id'])).size, 1, 'one event id across retries');
    assert.equal(await metric(metrics, 'kpt_dispatcher_retries_total'), 3);
    assert.equal(await metric(metrics, 'kpt_dispatcher_delivery_attempts_total', { status_class: '5xx' }), 3);
    await d.stop();
  });

  test('never acks before a 2xx: failing messages stay unacked at shutdown', async () => {
    const { source, d } = setup({
      script: () => ({ kind: 'network', error: 'refused', message: 'ECONNREFUSED' }),
    });
    source.push(message(1), message(2));
    await until(() => source.unacked().length === 2, 'received');
    await new Promise((r) => setTimeout(r, 30));
    await d.stop();
    assert.deepEqual(source.acked, []);
    assert.deepEqual(source.unacked().sort(), [message(1).id, message(2).id].sort());
  });

  test('dead-letters after the budget, acking only after the sink confirmed', async () => {
    const { source, sink, d, fn } = setup({
      retry: { maxAttempts: 3 },
      script: () => ({ kind: 'status', status: 500, body: 'boom' }),
    });
    sink.failNext = 2;
    source.push(message(7, { key: 'k', properties: { a: 'b' }, redeliveryCount: 1 }));
    await until(() => source.acked.length === 1, 'acked after dead letter');
    assert.equal(fn.calls.length, 2, 'one redelivery counted as an earlier attempt');
    assert.equal(sink.sent.length, 1);
    const dl = sink.sent[0]!;
    assert.equal(new TextDecoder().decode(dl.payload), 'm7');
    assert.equal(dl.key, 'k');
    assert.equal(dl.properties.a, 'b');
    assert.equal(dl.properties[DLQ_PROPS.attempts], '3');
    assert.equal(dl.properties[DLQ_PROPS.status], '500');
    assert.match(dl.properties[DLQ_PROPS.error]!, /HTTP 500: boom/);
    assert.equal(dl.properties[DLQ_PROPS.messageId], message(7).id);
    await d.stop();
  });

  test('drop and dead-letter rules act at once', async () => {
    const { source, sink, d, metrics } = setup({
      actions: statusActionsFromRules([
        { status: '404', action: 'drop' },
        { status: '4xx', action: 'deadLetter' },
      ]),
      script: (body) => ({ kind: 'status', status: body === 'm1' ? 404 : 422 }),
    });
    source.push(message(1), message(2));
    await until(() => source.acked.length === 2, 'both acked');
    assert.equal(await metric(metrics, 'kpt_dispatcher_messages_dropped_total'), 1);
    assert.equal(sink.sent.length, 1);
    assert.equal(sink.sent[0]!.properties[DLQ_PROPS.reason], 'rule');
    await d.stop();
  });

  test('key ordering: each key in order, a stuck key does not stop the others', async () => {
    const stuck = { on: true };
    const seen: string[] = [];
    const { source, d } = setup({
      concurrency: 4,
      maxParkedPerKey: 2,
      script: (body, headers) => {
        if (headers['pulsar-key'] === 'stuck' && stuck.on) return { kind: 'status', status: 500 };
        seen.push(body);
        return { kind: 'status', status: 200 };
      },
    });
    let n = 0;
    const keys = ['a', 'b', 'stuck', 'c'];
    for (let i = 0; i < 40; i++) source.push(message(n++, { key: keys[i % 4] }));
    await until(() => source.acked.length === 30, 'other keys delivered while one is stuck');
    stuck.on = false;
    await until(() => source.acked.length === 40, 'the stuck key recovers');
    const byKey = new Map<string, number[]>();
    for (const body of seen) {
      const i = Number(body.slice(1));
      const k = keys[i % 4]!;
      byKey.set(k, [...(byKey.get(k) ?? []), i]);
    }
    for (const [k, seq] of byKey)
      assert.deepEqual(
        seq,
        [...seq].sort((x, y) => x - y),
        `key ${k} in order`,
      );
    assert.ok(source.released.length > 0, 'the stuck key released what it could not park');
    await d.stop();
  });

  test('concurrency is bounded', async () => {
    let inFlight = 0;
    let peak = 0;
    const { source, d } = setup({
      ordering: 'none',
      concurrency: 5,
      script: async () => {
        peak = Math.max(peak, ++inFlight);
        await new Promise((r) => setTimeout(r, 2));
        inFlight--;
        return { kind: 'status', status: 200 };
      },
    });
    source.push(...Array.from({ length: 60 }, (_, i) => message(i)));
    await until(() => source.acked.length === 60, 'all acked');
    assert.ok(peak <= 5 && peak >= 2, `peak ${peak}`);
    await d.stop();
  });

  test('held messages are bounded whatever the function does', async () => {
    const { source, d } = setup({ ordering: 'none', maxHeld: 10, script: (_b, _h, s) => hang(s) });
    source.push(...Array.from({ length: 100 }, (_, i) => message(i)));
    await until(() => source.unacked().length === 10, 'window full');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(source.unacked().length, 10);
    assert.equal(source.queue.length, 90);
    await d.stop(10);
  });

  test('shutdown: finishes in-flight work within the grace period, acks it, aborts the rest', async () => {
    const { source, d } = setup({
      ordering: 'none',
      script: async (body, _h, signal) => {
        if (body === 'm1') return hang(signal);
        await new Promise((r) => setTimeout(r, 20));
        return { kind: 'status', status: 200 };
      },
    });
    source.push(message(1), message(2), message(3));
    await until(() => source.unacked().length === 3, 'all in flight');
    const report = await d.stop(200);
    assert.deepEqual(source.acked.sort(), [message(2).id, message(3).id].sort());
    assert.equal(report.aborted, 1);
    assert.deepEqual(source.unacked(), [message(1).id]);
    assert.equal(d.isReady(), false);
    assert.equal(await d.start(), 'stopped');
  });

  test('a redelivered copy of a held message is ignored', async () => {
    let release: (() => void) | undefined;
    const { source, fn, d } = setup({
      script: () =>
        new Promise((r) => {
          release = () => r({ kind: 'status', status: 200 });
        }),
    });
    source.push(message(1));
    await until(() => fn.calls.length === 1, 'first copy in flight');
    source.push({ ...message(1), redeliveryCount: 1 });
    await new Promise((r) => setTimeout(r, 10));
    release?.();
    await until(() => source.acked.length === 1, 'acked');
    assert.equal(fn.calls.length, 1);
    await d.stop();
  });

  test('a copy of a message acked lately (a batch entry redelivered whole) is acked again, not delivered', async () => {
    const { source, fn, d } = setup();
    source.push(message(1));
    await until(() => source.acked.length === 1, 'acked');
    source.push({ ...message(1), redeliveryCount: 1 });
    await until(() => source.acked.length === 2, 're-acked');
    assert.equal(fn.calls.length, 1);
    await d.stop();
  });
});
