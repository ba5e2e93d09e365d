// Order across replicas, on the real broker with dispatcher processes (the way a Deployment runs them). With the
// default ordering (key) and no subscription type the dispatchers subscribe Key_Shared, so each key is with one
// dispatcher at a time: fed by a producer that batches by key, every key arrives at the function in order and
// nothing is lost, while a dispatcher joins and another leaves mid-stream. The same run with ordinary batching
// (entries of several keys, routed by their first key) loses nothing either; what it does to the order per key
// is reported, not asserted. With ordering strict the dispatchers subscribe Failover: one delivers, the others
// stand by (and are ready), and the topic's order holds when the active one leaves.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PulsarClient } from '../../../src/pulsar/index.ts';
import { pulsarPlain } from '../../support/env.ts';
import { orderReport } from '../../support/order.ts';
import {
  type Child,
  ensureSubscription,
  FunctionServer,
  freePort,
  spawnDispatcher,
  uniqueName,
  until,
} from './support.ts';

const pulsar = pulsarPlain();

async function ready(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200;
  } catch {
    return false;
  }
}

interface SubscriptionStats {
  type?: string;
  consumers?: { consumerName?: string; msgOutCounter: number }[];
}

/** The broker's view of a subscription (admin REST API). */
async function subscriptionStats(
  topic: string,
  subscription: string,
): Promise<SubscriptionStats | undefined> {
  const r = await fetch(`${pulsar.adminUrl}/admin/v2/${topic.replace('://', '/')}/stats`);
  const stats = (await r.json()) as { subscriptions?: Record<string, SubscriptionStats> };
  return stats.subscriptions?.[subscription];
}

interface Dispatcher {
  name: string;
  port: number;
  child: Child;
}

/** A dispatcher of the trigger; its function URL ends in /<name>, so the function can tell who delivered. */
async function startDispatcher(
  name: string,
  trigger: string,
  topic: string,
  fn: FunctionServer,
  extra: Record<string, string>,
): Promise<Dispatcher> {
  const port = await freePort();
  const child = spawnDispatcher({
    TRIGGER_NAME: trigger,
    TRIGGER_NAMESPACE: 'default',
    PULSAR_BROKER: pulsar.serviceUrl,
    PULSAR_TOPIC: topic,
    KUBELESS_FUNCTION: `${fn.url}${name}`,
    DISPATCHER_PORT: String(port),
    LOG_LEVEL: 'info',
    ...extra,
  });
  return { name, port, child };
}

/**
 * Produces `perKey` messages for each of `keys`, interleaved (key after key, "<key>/<n>"), in rounds of a few per
 * key sent at once so that they batch; it stays at most `ahead` messages ahead of the deliveries, so that it is
 * still producing while dispatchers join and leave.
 */
function stream(
  topic: string,
  keys: string[],
  perKey: number,
  batchingByKey: boolean,
  delivered: () => number,
  ahead: number,
): Promise<number> {
  return (async () => {
    const client = new PulsarClient({ serviceUrl: pulsar.serviceUrl });
    try {
      const producer = await client.createProducer({
        topic,
        batchingByKey,
        batchingMaxMessages: 20,
        maxPendingMessages: 4000,
      });
      const round = 5;
      let sent = 0;
      for (let n = 0; n < perKey; n += round) {
        await until(() => sent - delivered() < ahead, 'the dispatchers to catch up', 120_000);
        const sends = [];
        for (let i = n; i < Math.min(perKey, n + round); i++)
          for (const key of keys) sends.push(producer.send({ payload: Buffer.from(`${key}/${i}`), key }));
        await Promise.all(sends);
        sent += sends.length;
      }
      await producer.close();
      return sent;
    } finally {
      await client.close();
    }
  })();
}

/** Each function request: who delivered it (the URL's last segment), the message id, key and number. */
function arrivals(fn: FunctionServer, topic: string) {
  return fn.received
    .filter((r) => r.headers['event-topic'] === topic)
    .map((r) => {
      const [key, n] = r.body.toString().split('/') as [string, string];
      return { by: r.url.slice(1), id: String(r.headers['event-id']), key, n: Number(n) };
    });
}

/**
 * Three dispatchers with the defaults (ordering key, no subscription type) on one subscription; a fourth joins
 * once a third of the messages were delivered, the first leaves (SIGTERM) at two thirds. Returns what the function
 * saw.
 */
async function scaleRun(batchingByKey: boolean) {
  const fn = await FunctionServer.start();
  // A few milliseconds per request, varying: messages of one key handled in parallel would overtake each other.
  fn.reply = () => ({ status: 200, delayMs: 2 + Math.floor(Math.random() * 6) });
  const topic = `persistent://public/default/${uniqueName('scale-order')}`;
  const trigger = uniqueName('trig');
  const subscription = `${trigger}-default`;
  await ensureSubscription(pulsar.serviceUrl, topic, subscription);
  const keys = Array.from({ length: 32 }, (_, i) => `customer-${i}`);
  const perKey = 150;
  const total = keys.length * perKey;
  const extra = { DISPATCH_CONCURRENCY: '4' };
  const all: Dispatcher[] = [];
  try {
    for (const name of ['a', 'b', 'c']) all.push(await startDispatcher(name, trigger, topic, fn, extra));
    await until(
      async () => (await Promise.all(all.map((d) => ready(d.port)))).every(Boolean),
      'a, b, c ready',
    );
    const stats = await subscriptionStats(topic, subscription);
    assert.equal(stats?.type, 'Key_Shared', 'the broker sees a Key_Shared subscription');
    assert.equal(stats?.consumers?.length, 3);

    const distinct = () => new Set(arrivals(fn, topic).map((a) => a.id)).size;
    const producing = stream(topic, keys, perKey, batchingByKey, distinct, 1500);

    await until(() => distinct() >= total / 3, 'a third delivered', 120_000);
    const d = await startDispatcher('d', trigger, topic, fn, extra);
    all.push(d);
    await until(() => ready(d.port), 'd ready');
    const atJoin = distinct();

    await until(() => distinct() >= (2 * total) / 3, 'two thirds delivered', 120_000);
    const a = all[0]!;
    a.child.proc.kill('SIGTERM');
    const exit = await a.child.exited;
    assert.equal(exit.code, 0, `a exits 0 after SIGTERM: ${a.child.stderr()}`);
    const atLeave = distinct();

    assert.equal(await producing, total);
    await until(() => distinct() >= total, 'every message delivered', 120_000);
    const seen = arrivals(fn, topic);
    const byDispatcher = Object.fromEntries(
      ['a', 'b', 'c', 'd'].map((n) => [n, seen.filter((s) => s.by === n).length]),
    );
    const dispatchersOf = new Map<string, Set<string>>();
    for (const s of seen) dispatchersOf.set(s.key, (dispatchersOf.get(s.key) ?? new Set()).add(s.by));
    return {
      total,
      seen,
      keysOnSeveral: [...dispatchersOf.values()].filter((set) => set.size > 1).length,
      atJoin,
      atLeave,
      byDispatcher,
      report: orderReport(seen),
      ids: new Set(seen.map((s) => s.id)),
    };
  } finally {
    for (const d of all) d.child.proc.kill('SIGKILL');
    await fn.close();
  }
}

describe('order across dispatcher replicas', { timeout: 600_000 }, () => {
  test('Key_Shared by default, key-batching producer: every key in order, nothing lost, while one dispatcher joins and one leaves', async (t) => {
    const run = await scaleRun(true);
    t.diagnostic(
      `key batching: ${JSON.stringify({ ...run.report, keysOutOfOrder: run.report.keysOutOfOrder.length, keysOnSeveral: run.keysOnSeveral, byDispatcher: run.byDispatcher, atJoin: run.atJoin, atLeave: run.atLeave })}`,
    );
    assert.equal(run.ids.size, run.total, 'every message id delivered');
    assert.equal(run.report.delivered, run.total, 'every key/number delivered');
    assert.equal(run.report.late, 0, `keys out of order: ${run.report.keysOutOfOrder.join(', ')}`);
    // The changes happened mid-stream, and every dispatcher took part.
    assert.ok(run.atJoin < run.total && run.atLeave < run.total, `${run.atJoin} / ${run.atLeave}`);
    for (const [name, count] of Object.entries(run.byDispatcher)) assert.ok(count > 0, `${name} delivered`);
  });

  test('the same run with ordinary (mixed-key) batching: nothing lost; the order per key is reported', async (t) => {
    const run = await scaleRun(false);
    t.diagnostic(
      `mixed batching: ${JSON.stringify({ ...run.report, keysOutOfOrder: run.report.keysOutOfOrder.length, keysOnSeveral: run.keysOnSeveral, byDispatcher: run.byDispatcher, atJoin: run.atJoin, atLeave: run.atLeave })}`,
    );
    assert.equal(run.ids.size, run.total, 'every message id delivered');
    assert.equal(run.report.delivered, run.total, 'every key/number delivered');
  });

  test('ordering strict subscribes Failover: standbys are ready, one delivers, the topic order holds when it leaves', async (t) => {
    const fn = await FunctionServer.start();
    fn.reply = () => ({ status: 200, delayMs: Math.floor(Math.random() * 3) });
    const topic = `persistent://public/default/${uniqueName('failover-order')}`;
    const trigger = uniqueName('trig');
    const subscription = `${trigger}-default`;
    await ensureSubscription(pulsar.serviceUrl, topic, subscription);
    const extra = { DISPATCH_ORDERING: 'strict' };
    const all: Dispatcher[] = [];
    try {
      for (const name of ['a', 'b', 'c']) all.push(await startDispatcher(name, trigger, topic, fn, extra));
      await until(
        async () => (await Promise.all(all.map((d) => ready(d.port)))).every(Boolean),
        'a, b, c ready (two of them standing by)',
      );
      const stats = await subscriptionStats(topic, subscription);
      assert.equal(stats?.type, 'Failover');
      assert.equal(stats?.consumers?.length, 3);

      const total = 1500;
      const delivered = () => new Set(arrivals(fn, topic).map((a) => a.id)).size;
      // One key: the order is the topic's, whichever dispatcher delivers.
      const producing = stream(topic, ['all'], total, true, delivered, 300);
      await until(() => delivered() >= total / 3, 'a third delivered', 120_000);
      const active = arrivals(fn, topic).at(-1)!.by;
      const leaving = all.find((d) => d.name === active)!;
      leaving.child.proc.kill('SIGTERM');
      assert.equal((await leaving.child.exited).code, 0);
      // Still ready, the others: a standby is subscribed too.
      for (const d of all.filter((x) => x !== leaving)) assert.equal(await ready(d.port), true, d.name);
      assert.equal(await producing, total);
      await until(() => delivered() >= total, 'every message delivered', 120_000);
      const seen = arrivals(fn, topic);
      const report = orderReport(seen);
      const by = new Set(seen.map((s) => s.by));
      t.diagnostic(`failover: ${JSON.stringify({ ...report, dispatchers: [...by] })}`);
      assert.equal(report.delivered, total);
      assert.equal(report.late, 0);
      assert.ok(by.size >= 2, `a standby took over: ${[...by]}`);
    } finally {
      for (const d of all) d.child.proc.kill('SIGKILL');
      await fn.close();
    }
  });
});
