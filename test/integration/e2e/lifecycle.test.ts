// End to end, on the real servers and the real node: helm install of the chart (the controller runs as a pod from
// the project's image) → kubectl apply → Deployment → ReplicaSet → Pods scheduled onto the node, run by the kubelet
// as containers of the dispatcher image → the function. One trigger's life, step by step: the seed README's first
// example delivers, a function URL change rolls the dispatchers with nothing lost, scaling splits the work, a
// container killed with SIGKILL is restarted by the kubelet with nothing lost, a controller restart changes
// nothing that runs, deleting the trigger stops everything.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FunctionServer } from '../../../examples/function.ts';
import { node, pulsarPlain } from '../../support/env.ts';
import { bodies, containerPid, type E2E, publish, readmeTrigger, startE2E, waitUntil } from './fixture.ts';

const TIMEOUT = 120_000;

describe('a PulsarTrigger from kubectl apply to the function', { timeout: 600_000 }, () => {
  let fx: E2E;
  let fnA: FunctionServer;
  let fnB: FunctionServer;
  let topic: string;
  const name = 'mytrigger';

  before(async () => {
    fx = await startE2E('life');
    await fx.installController();
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
    const pods = await fx.dispatcherPods(name);
    assert.equal(pods.length, 1);
    assert.equal(pods[0]!.ready, true);
    assert.equal(pods[0]!.pod.spec?.nodeName, node().name, 'scheduled onto the test node');
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
    const before = (await fx.dispatcherPods(name)).map((p) => p.uid);
    // Messages in flight while the dispatcher rolls: each must reach one function or the other.
    const during = publish(topic, 20, 'during');
    await fx.apply(readmeTrigger(fx.ns, name, topic, fnB.url));
    const sentDuring = await during;
    await waitUntil(
      'the rollout replaced the dispatcher pod',
      async () => {
        const pods = await fx.dispatcherPods(name);
        return (
          (await readyReplicas(1)) && pods.length === 1 && !before.includes(pods[0]!.uid) && pods[0]!.ready
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
    assert.equal((await fx.dispatcherPods(name)).length, 2);
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
      'back to 1 replica and 1 pod',
      async () => (await readyReplicas(1)) && (await fx.dispatcherPods(name)).length === 1,
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

  test('a dispatcher container killed with SIGKILL is restarted by the kubelet; nothing is lost', async () => {
    const [p0] = await fx.dispatcherPods(name);
    assert.ok(p0?.containerId);
    const pid = containerPid(p0.containerId);
    // Messages published around the kill: whatever the dead process had received but not acked is redelivered.
    const before = publish(topic, 30, 'before-kill');
    process.kill(pid, 'SIGKILL');
    const sentBefore = await before;
    await waitUntil(
      'the kubelet restarted the container and it is ready again',
      async () => {
        const [p] = await fx.dispatcherPods(name);
        return p?.uid === p0.uid && p.restarts === 1 && p.ready && (await readyReplicas(1));
      },
      TIMEOUT,
      fx,
    );
    const [p1] = await fx.dispatcherPods(name);
    assert.notEqual(p1!.containerId, p0.containerId, 'a new container');
    const sent = await publish(topic, 3, 'after-kill');
    await waitUntil(
      'every message published around the kill reached the function',
      () => [...sentBefore, ...sent].every((p) => bodies(fnB).includes(p)),
      TIMEOUT,
      fx,
    );
  });

  test('restarting the controller changes nothing that runs', async () => {
    const d0 = await fx.deployment(name);
    const pods0 = (await fx.dispatcherPods(name)).map((p) => `${p.uid}/${p.containerId}`);
    const controller0 = (await fx.controllerPod())?.metadata?.uid;
    await fx.stopController();
    await fx.startController();
    assert.notEqual((await fx.controllerPod())?.metadata?.uid, controller0, 'a new controller pod');
    // Let the new leader resync everything, then compare.
    await waitUntil(
      'the new controller reconciled the trigger',
      async () =>
        /kpt_controller_reconciles_total\{result="success"\} [1-9]/.test(await fx.controllerHttp('/metrics')),
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
      (await fx.dispatcherPods(name)).map((p) => `${p.uid}/${p.containerId}`),
      pods0,
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
      'the Deployment and its pods are gone',
      async () => (await fx.deployment(name)) === undefined && (await fx.dispatcherPods(name)).length === 0,
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
