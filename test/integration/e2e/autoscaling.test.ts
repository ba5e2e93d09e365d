// Autoscaling with the real KEDA (testenv/keda.ts: its operator and metrics adapter, the HPA in the
// kube-controller-manager reading KEDA's external metric through the aggregation layer), on the real node: a trigger
// with spec.autoscaling and minReplicas 0 has no dispatcher pod while idle; a backlog brings it to one (KEDA) and,
// above backlogPerReplica × 2, to more (the HPA); every message reaches the function, counted by message id; once
// the backlog is drained and the cooldown passed it is back at 0; what is published while at 0 is delivered. The
// messages are keyed and batched by key, and each key reaches the function in order through every scaling step
// (Key_Shared, the subscription type of the default ordering). A partitioned topic scales the same way: the
// controller tells KEDA it is partitioned.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FunctionServer } from '../../../examples/function.ts';
import { node, pulsarPlain } from '../../support/env.ts';
import { createPartitionedTopic } from '../pulsar/prod-helpers.ts';
import { bodies, type E2E, readmeTrigger, startE2E, waitUntil } from './fixture.ts';
import { arrivals, orderReport, publishKeyed } from './keys.ts';

const TIMEOUT = 240_000;

describe('autoscaling on the backlog with KEDA', { timeout: 1_200_000 }, () => {
  let fx: E2E;
  let fn: FunctionServer;
  /** The function refuses (503) while this is false: messages stay in the backlog, retried. */
  let accepting = false;
  const name = 'scaled';
  let topic: string;

  before(async () => {
    if (!process.env.KPT_KEDA)
      throw new Error('KPT_KEDA is not set: the tests need the KEDA testenv/cli.ts starts');
    fx = await startE2E('keda');
    await fx.installController();
    fn = await fx.startFunction('scaled', { status: () => (accepting ? 200 : 503) });
    topic = `persistent://public/default/e2e-keda-${fx.suffix}`;
  });
  after(async () => {
    await fx?.close();
  });

  const replicas = async (of = name) => (await fx.deployment(of))?.spec?.replicas;
  const runningPods = async (of = name) =>
    (await fx.dispatcherPods(of)).filter((p) => !p.terminating && p.phase === 'Running').length;
  type ScaledObject = { spec: { triggers: { type: string; metadata: Record<string, string> }[] } };
  const scaledObject = async (of: string): Promise<ScaledObject | undefined> => {
    try {
      return JSON.parse(
        await fx.kubectl(['get', 'scaledobject', of, '-n', fx.ns, '-o', 'json']),
      ) as ScaledObject;
    } catch {
      return undefined;
    }
  };

  test('idle at 0, scaled out on a backlog, every message delivered in order per key, back at 0, and from 0 again', async (ctx) => {
    const t = readmeTrigger(fx.ns, name, topic, fn.url) as { spec: Record<string, unknown> };
    t.spec.autoscaling = {
      minReplicas: 0,
      maxReplicas: 3,
      backlogPerReplica: 5,
      activationBacklog: 0,
      pollingInterval: '5s',
      cooldownPeriod: '10s',
    };
    // A quick retry, so that refused messages come back soon once the function accepts them.
    t.spec.delivery = { retry: { initialBackoff: '1s', maxBackoff: '2s' } };
    await fx.apply(t);
    let so: ScaledObject | undefined;
    await waitUntil(
      'the controller wrote the ScaledObject',
      async () => {
        so = await scaledObject(name);
        return so !== undefined;
      },
      TIMEOUT,
      fx,
    );
    if (!so) throw new Error('no ScaledObject');
    assert.equal(so.spec.triggers[0]?.type, 'pulsar');
    assert.equal(so.spec.triggers[0]?.metadata.adminURL, node().pulsarAdminUrl);
    await waitUntil('KEDA scaled the idle trigger to 0', async () => (await replicas()) === 0, TIMEOUT, fx);
    await waitUntil(
      'no dispatcher pod left',
      async () => (await fx.dispatcherPods(name)).length === 0,
      TIMEOUT,
      fx,
    );

    // 48 messages while nothing runs, 6 for each of 8 keys: the subscription (the controller's) keeps them.
    const keys = Array.from({ length: 8 }, (_, i) => `burst-${i}`);
    const first = await publishKeyed(topic, keys, 6);
    await waitUntil(
      'KEDA started a dispatcher for the backlog',
      async () => (await runningPods()) >= 1,
      TIMEOUT,
      fx,
    );
    await waitUntil(
      'the HPA added dispatchers: the backlog is above backlogPerReplica × 2',
      async () => (await replicas()) !== undefined && (await replicas())! >= 2 && (await runningPods()) >= 2,
      TIMEOUT,
      fx,
    );
    accepting = true;
    await waitUntil(
      'every message reached the function',
      () => first.every((p) => bodies(fn).includes(p)),
      TIMEOUT,
      fx,
    );
    await waitUntil(
      'back at 0 once drained and cooled down',
      async () => (await replicas()) === 0,
      TIMEOUT,
      fx,
    );

    // Published while at 0: delivered once KEDA brings a dispatcher back.
    const second = await publishKeyed(
      topic,
      keys.map((k) => `again-${k}`),
      2,
    );
    const third = await publishKeyed(topic, ['from-zero'], 5);
    const all = [...first, ...second, ...third];
    await waitUntil('delivered from 0', () => all.every((p) => bodies(fn).includes(p)), TIMEOUT, fx);
    const delivered = new Set(bodies(fn));
    for (const p of all) assert.ok(delivered.has(p), `${p} delivered`);
    // Every attempt counts, the refused ones too: a key's next message never went out before the one before it.
    const report = orderReport(arrivals(fn, topic));
    ctx.diagnostic(`0 → N → 0 → 1: ${JSON.stringify({ published: all.length, ...report })}`);
    assert.equal(report.delivered, all.length);
    assert.equal(report.late, 0, 'no key out of order');
    const ready = JSON.parse(await fx.kubectl(['get', 'pulsartrigger', name, '-n', fx.ns, '-o', 'json'])) as {
      status?: { conditions?: { type: string; reason?: string }[] };
    };
    assert.notEqual(
      ready.status?.conditions?.find((c) => c.type === 'Ready')?.reason,
      'AutoscalerNotInstalled',
    );
  });

  test('a partitioned topic: the ScaledObject says so, KEDA starts a dispatcher from 0, every message delivered', async () => {
    accepting = true;
    const part = 'scaled-part';
    const partTopic = await createPartitionedTopic(pulsarPlain().adminUrl, `e2e-keda-part-${fx.suffix}`, 3);
    const t = readmeTrigger(fx.ns, part, partTopic, fn.url) as { spec: Record<string, unknown> };
    t.spec.autoscaling = { minReplicas: 0, maxReplicas: 2, pollingInterval: '5s', cooldownPeriod: '10s' };
    await fx.apply(t);
    await waitUntil(
      'the ScaledObject names the topic partitioned',
      async () => (await scaledObject(part))?.spec.triggers[0]?.metadata.isPartitionedTopic === 'true',
      TIMEOUT,
      fx,
    );
    await waitUntil(
      'KEDA scaled the idle trigger to 0',
      async () => (await replicas(part)) === 0,
      TIMEOUT,
      fx,
    );
    // A pod still draining would take the messages itself, and KEDA would rightly see no backlog.
    await waitUntil(
      'no dispatcher pod left',
      async () => (await fx.dispatcherPods(part)).length === 0,
      TIMEOUT,
      fx,
    );
    // Told the wrong kind, KEDA's scaler would read a stats endpoint that answers 404, and never leave 0.
    const sent = await publishKeyed(
      partTopic,
      Array.from({ length: 6 }, (_, i) => `part-${i}`),
      3,
    );
    await waitUntil('KEDA started a dispatcher', async () => (await runningPods(part)) >= 1, TIMEOUT, fx);
    await waitUntil('every message delivered', () => sent.every((p) => bodies(fn).includes(p)), TIMEOUT, fx);
    const report = orderReport(arrivals(fn, partTopic));
    assert.equal(report.delivered, sent.length);
    assert.equal(report.late, 0, 'no key out of order');
    await waitUntil('back at 0 once drained', async () => (await replicas(part)) === 0, TIMEOUT, fx);
  });
});
