// End to end, on the real servers: kubectl apply → controller (chart RBAC identity) → Deployment → ReplicaSet →
// Pods run by the node agent as dispatcher processes → the function. One trigger's life, step by step: the seed
// README's first example delivers, a function URL change rolls the dispatchers with nothing lost, scaling splits
// the work, a controller restart changes nothing that runs, deleting the trigger stops everything.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FunctionServer } from '../../../examples/function.ts';
import { pulsarPlain } from '../../support/env.ts';
import { bodies, type E2E, publish, readmeTrigger, startE2E, waitUntil } from './fixture.ts';

const TIMEOUT = 120_000;

describe('a PulsarTrigger from kubectl apply to the function', { timeout: 600_000 }, () => {
  let fx: E2E;
  let fnA: FunctionServer;
  let fnB: FunctionServer;
  let topic: string;
  const name = 'mytrigger';

  before(async () => {
    fx = await startE2E('life');
    await fx.startController();
    fnA = await fx.startFunction('function-a');
    fnB = await fx.startFunction('function-b');
    topic = `persistent://public/default/e2e-life-${fx.suffix}`;
  });
  after(async () => {
    await fx?.close();
  });

  const readyReplicas = async (want: number) => {
    const d = await fx.deployment(name);
    const s = d?.status;
    return (
      d !== undefined &&
      s?.observedGeneration === d.metadata?.generation &&
      (s?.readyReplicas ?? 0) === want &&
      (s?.replicas ?? 0) === want &&
      (s?.updatedReplicas ?? 0) === want
    );
  };
  const triggerReady = async () => {
    const out = await fx.kubectl(['get', 'pulsartriggers', name, '-n', fx.ns, '-o', 'json']);
    const t = JSON.parse(out) as { status?: { conditions?: { type: string; status: string }[] } };
    return t.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
  };

  test("the seed README's first example delivers messages", async () => {
    await fx.apply(readmeTrigger(fx.ns, name, topic, fnA.url));
    await waitUntil('the dispatcher Deployment has 1 ready replica', () => readyReplicas(1), TIMEOUT, fx);
    const procs = fx.agent.processes();
    assert.equal(procs.length, 1);
    assert.equal(procs[0]!.ready, true);
    const sent = await publish(topic, 5, 'first');
    await waitUntil(
      'the function got the 5 messages',
      () => sent.every((p) => bodies(fnA).includes(p)),
      TIMEOUT,
      fx,
    );
    const e = fnA.events.find((ev) => ev.body.toString() === 'first-0')!;
    assert.equal(e.headers['event-namespace'], fx.ns);
    assert.equal(e.headers['event-name'], name);
    assert.equal(typeof e.headers['event-id'], 'string');
    await waitUntil('the trigger reports Ready', triggerReady, TIMEOUT, fx);
    const table = await fx.kubectl(['get', 'pulsartriggers', '-n', fx.ns]);
    assert.match(table, new RegExp(`^${name}\\s`, 'm'));
  });

  test('changing the function URL rolls the dispatcher; new messages reach the new function, none lost', async () => {
    const before = fx.agent.processes().map((p) => p.uid);
    // Messages in flight while the dispatcher rolls: each must reach one function or the other.
    const during = publish(topic, 20, 'during');
    await fx.apply(readmeTrigger(fx.ns, name, topic, fnB.url));
    const sentDuring = await during;
    await waitUntil(
      'the rollout replaced the dispatcher pod',
      async () => {
        const procs = fx.agent.processes();
        return (
          (await readyReplicas(1)) && procs.length === 1 && !before.includes(procs[0]!.uid) && procs[0]!.ready
        );
      },
      TIMEOUT,
      fx,
    );
    const sent = await publish(topic, 5, 'second');
    await waitUntil(
      'every message reached one of the functions',
      () => [...sentDuring, ...sent].every((p) => bodies(fnA).includes(p) || bodies(fnB).includes(p)),
      TIMEOUT,
      fx,
    );
    // Published after the new dispatcher was the only one left: all of them went to the new URL.
    assert.deepEqual(sent.filter((p) => bodies(fnB).includes(p)).sort(), [...sent].sort());
    assert.equal(
      sent.some((p) => bodies(fnA).includes(p)),
      false,
    );
  });

  test('scaling to 2 replicas splits the work; back to 1', async () => {
    const scaled = readmeTrigger(fx.ns, name, topic, fnB.url) as { spec: Record<string, unknown> };
    scaled.spec.deployment = { spec: { replicas: 2 } };
    await fx.apply(scaled);
    await waitUntil('2 ready replicas', () => readyReplicas(2), TIMEOUT, fx);
    assert.equal(fx.agent.processes().length, 2);
    const sent = await publish(topic, 40, 'scaled');
    await waitUntil('every message delivered', () => sent.every((p) => bodies(fnB).includes(p)), TIMEOUT, fx);
    // Both dispatchers took a share: the broker's own counters for the Shared subscription's two consumers.
    const stats = await subscriptionConsumers(topic, `${name}-${fx.ns}`);
    assert.equal(stats.length, 2, `two consumers on the subscription, got ${JSON.stringify(stats)}`);
    assert.ok(
      stats.every((c) => c.msgOutCounter > 0),
      `each consumer received messages: ${JSON.stringify(stats)}`,
    );

    const back = readmeTrigger(fx.ns, name, topic, fnB.url) as { spec: Record<string, unknown> };
    back.spec.deployment = { spec: { replicas: 1 } };
    await fx.apply(back);
    await waitUntil(
      'back to 1 replica and 1 process',
      async () => (await readyReplicas(1)) && fx.agent.processes().length === 1,
      TIMEOUT,
      fx,
    );
    const more = await publish(topic, 5, 'single');
    await waitUntil(
      'delivered after scaling down',
      () => more.every((p) => bodies(fnB).includes(p)),
      TIMEOUT,
      fx,
    );
  });

  test('a dispatcher process that dies is restarted and its pod reports the restart', async () => {
    const [p0] = fx.agent.processes();
    assert.ok(p0?.pid);
    process.kill(-p0.pid, 'SIGKILL');
    await waitUntil(
      'the process is back and ready',
      async () => {
        const p = fx.agent.processes()[0];
        return p?.uid === p0.uid && p.restarts === 1 && p.ready && (await readyReplicas(1));
      },
      TIMEOUT,
      fx,
    );
    const [name0] = p0.key.split('/').slice(1);
    const pod = await fx.core.readNamespacedPod({ name: name0!, namespace: fx.ns });
    assert.equal(pod.status?.containerStatuses?.[0]?.restartCount, 1);
    const sent = await publish(topic, 3, 'after-crash');
    await waitUntil(
      'delivered after the crash',
      () => sent.every((p) => bodies(fnB).includes(p)),
      TIMEOUT,
      fx,
    );
  });

  test('restarting the controller changes nothing that runs', async () => {
    const d0 = await fx.deployment(name);
    const procs0 = fx.agent.processes().map((p) => `${p.uid}/${p.pid}`);
    await fx.stopController();
    await fx.startController();
    const ctl = fx.controller!;
    // Let the new leader resync everything, then compare.
    await waitUntil(
      'the new controller reconciled the trigger',
      async () => {
        const r = await fetch(`http://127.0.0.1:${ctl.port}/metrics`);
        return /kpt_controller_reconciles_total\{result="success"\} [1-9]/.test(await r.text());
      },
      TIMEOUT,
      fx,
    );
    const d1 = await fx.deployment(name);
    assert.equal(d1?.metadata?.uid, d0?.metadata?.uid);
    assert.equal(d1?.metadata?.generation, d0?.metadata?.generation);
    // No write from the controller: its managedFields entry is the same (status written by the
    // kube-controller-manager may change the resourceVersion, which is not ours to compare).
    const ours = (d: typeof d0) =>
      JSON.stringify(d?.metadata?.managedFields?.filter((f) => f.manager === 'kubeless-pulsar-trigger'));
    assert.notEqual(ours(d0), '[]', 'the controller wrote the Deployment with its field manager');
    assert.equal(ours(d1), ours(d0));
    assert.deepEqual(d1?.spec, d0?.spec);
    assert.deepEqual(
      fx.agent.processes().map((p) => `${p.uid}/${p.pid}`),
      procs0,
    );
    const sent = await publish(topic, 3, 'after-restart');
    await waitUntil(
      'delivered after the restart',
      () => sent.every((p) => bodies(fnB).includes(p)),
      TIMEOUT,
      fx,
    );
  });

  test('deleting the trigger stops its dispatchers and removes its Deployment', async () => {
    await fx.kubectl(['delete', 'pulsartrigger', name, '-n', fx.ns, '--wait=true', '--timeout=60s']);
    await waitUntil(
      'the Deployment and the processes are gone',
      async () => (await fx.deployment(name)) === undefined && fx.agent.processes().length === 0,
      TIMEOUT,
      fx,
    );
    await waitUntil(
      'no dispatcher pods remain',
      async () => (await fx.core.listNamespacedPod({ namespace: fx.ns })).items.length === 0,
      TIMEOUT,
      fx,
    );
    await waitUntil(
      'the inline token Secret went with the trigger',
      async () =>
        (await fx.core.listNamespacedSecret({ namespace: fx.ns })).items.every(
          (s) => !s.metadata?.name?.startsWith(name),
        ),
      TIMEOUT,
      fx,
    );
  });
});

interface ConsumerStat {
  consumerName: string;
  msgOutCounter: number;
}

async function subscriptionConsumers(topic: string, subscription: string): Promise<ConsumerStat[]> {
  const path = topic.replace('://', '/');
  const r = await fetch(`${pulsarPlain().adminUrl}/admin/v2/${path}/stats`);
  const stats = (await r.json()) as { subscriptions?: Record<string, { consumers?: ConsumerStat[] }> };
  return stats.subscriptions?.[subscription]?.consumers ?? [];
}
