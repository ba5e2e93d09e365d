// Autoscaling with the real KEDA (testenv/keda.ts: its operator and metrics adapter, the HPA in the
// kube-controller-manager reading KEDA's external metric through the aggregation layer), on the real node: a trigger
// with spec.autoscaling and minReplicas 0 has no dispatcher pod while idle; a backlog brings it to one (KEDA) and,
// above backlogPerReplica × 2, to more (the HPA); every message reaches the function, counted by message id; once
// the backlog is drained and the cooldown passed it is back at 0; what is published while at 0 is delivered.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FunctionServer } from '../../../examples/function.ts';
import { node } from '../../support/env.ts';
import { bodies, type E2E, publish, readmeTrigger, startE2E, waitUntil } from './fixture.ts';

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

  const replicas = async () => (await fx.deployment(name))?.spec?.replicas;
  const runningPods = async () =>
    (await fx.dispatcherPods(name)).filter((p) => !p.terminating && p.phase === 'Running').length;

  test('idle at 0, scaled out on a backlog, every message delivered, back at 0, and from 0 again', async () => {
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
    let so: { spec: { triggers: { type: string; metadata: Record<string, string> }[] } } | undefined;
    await waitUntil(
      'the controller wrote the ScaledObject',
      async () => {
        so = JSON.parse(await fx.kubectl(['get', 'scaledobject', name, '-n', fx.ns, '-o', 'json']));
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

    // 40 messages while nothing runs: the subscription (the controller's) keeps them.
    const first = await publish(topic, 40, 'burst');
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
    const second = await publish(topic, 5, 'from-zero');
    await waitUntil('delivered from 0', () => second.every((p) => bodies(fn).includes(p)), TIMEOUT, fx);
    const delivered = new Set(bodies(fn));
    for (const p of [...first, ...second]) assert.ok(delivered.has(p), `${p} delivered`);
    const ready = JSON.parse(await fx.kubectl(['get', 'pulsartrigger', name, '-n', fx.ns, '-o', 'json'])) as {
      status?: { conditions?: { type: string; reason?: string }[] };
    };
    assert.notEqual(
      ready.status?.conditions?.find((c) => c.type === 'Ready')?.reason,
      'AutoscalerNotInstalled',
    );
  });
});
