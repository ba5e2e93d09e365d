// The dispatcher pod as a cluster runs it, on the real node: the container runs as 65532 with a read-only root and
// no capabilities; Ready follows the dispatcher's /readyz (a dispatcher that cannot subscribe is Running but not
// Ready, and its trigger is not Ready); a dispatcher whose event loop stops answering is restarted by the liveness
// probe; at full load it stays inside its memory limit (no OOM kill). Everything is read from the kubelet's own
// reports and from the container's process on this machine (/proc, its memory cgroup).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { FunctionServer } from '../../../examples/function.ts';
import { PulsarClient } from '../../../src/pulsar/index.ts';
import { freePort } from '../../../testenv/lib/proc.ts';
import { node, pulsarPlain } from '../../support/env.ts';
import {
  bodies,
  containerPid,
  DISPATCHER_MEMORY_LIMIT,
  type E2E,
  readmeTrigger,
  startE2E,
  waitUntil,
} from './fixture.ts';

const TIMEOUT = 180_000;

/** The memory cgroup (v1) folder of a process, from /proc/<pid>/cgroup. */
function memoryCgroup(pid: number): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .find((l) => /^\d+:memory:/.test(l));
  assert.ok(line, `process ${pid} has a memory cgroup`);
  return `/sys/fs/cgroup/memory${line.split(':')[2]}`;
}

describe('the dispatcher pod on a real node', { timeout: 900_000 }, () => {
  let fx: E2E;
  let fn: FunctionServer;
  before(async () => {
    fx = await startE2E('pod');
    await fx.installController();
    fn = await fx.startFunction('pod');
  });
  after(async () => {
    await fx?.close();
  });

  const triggerCondition = async (name: string) => {
    const out = await fx.kubectl(['get', 'pulsartriggers', name, '-n', fx.ns, '-o', 'json']);
    const t = JSON.parse(out) as {
      status?: { conditions?: { type: string; status: string; reason?: string }[] };
    };
    return t.status?.conditions?.find((c) => c.type === 'Ready');
  };
  const unhealthy = async (pod: string, probe: 'Readiness' | 'Liveness') => {
    const events = await fx.core.listNamespacedEvent({
      namespace: fx.ns,
      fieldSelector: `involvedObject.name=${pod},reason=Unhealthy`,
    });
    return events.items.some((e) => e.message?.startsWith(`${probe} probe failed`));
  };

  test('runs as 65532 with a read-only root filesystem and no capabilities', async () => {
    const name = 'identity';
    const topic = `persistent://public/default/e2e-pod-identity-${fx.suffix}`;
    await fx.apply(readmeTrigger(fx.ns, name, topic, fn.url));
    await waitUntil(
      'the dispatcher pod is ready',
      async () => (await fx.dispatcherPods(name))[0]?.ready === true,
      TIMEOUT,
      fx,
    );
    const [p] = await fx.dispatcherPods(name);
    const pid = containerPid(p!.containerId!);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, /^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
    assert.match(status, /^Gid:\s+65532\s+65532\s+65532\s+65532$/m);
    assert.match(status, /^CapEff:\s+0+$/m, 'no effective capabilities');
    assert.match(status, /^NoNewPrivs:\s+1$/m, 'allowPrivilegeEscalation: false');
    assert.match(status, /^Seccomp:\s+2$/m, 'a seccomp filter (RuntimeDefault)');
    // The container's root mount, as its own process sees it: mounted read-only.
    const root = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === '/');
    assert.ok(root, 'the container has a root mount');
    assert.match(root.split(' ')[5]!, /(^|,)ro(,|$)/, `read-only root: ${root}`);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    assert.deepEqual(cmdline.slice(0, 3), [
      '/nodejs/bin/node',
      '/app/bin/kubeless-pulsar-trigger.js',
      'dispatcher',
    ]);
    assert.equal(p!.pod.spec?.containers[0]?.image, node().dispatcherImage);
    await fx.kubectl(['delete', 'pulsartrigger', name, '-n', fx.ns]);
  });

  test('Ready follows /readyz: a dispatcher that cannot subscribe is Running, not Ready, and so is its trigger', async () => {
    const name = 'no-broker';
    // A port on the node's address where nothing listens: the dispatcher runs and keeps retrying the broker.
    const closed = `pulsar://${node().ip}:${await freePort()}`;
    const topic = `persistent://public/default/e2e-pod-nobroker-${fx.suffix}`;
    await fx.apply(readmeTrigger(fx.ns, name, topic, fn.url, closed));
    await waitUntil(
      'the kubelet reports a failed readiness probe for the running dispatcher',
      async () => {
        const [p] = await fx.dispatcherPods(name);
        return p?.phase === 'Running' && (await unhealthy(p.name, 'Readiness'));
      },
      TIMEOUT,
      fx,
    );
    const [p] = await fx.dispatcherPods(name);
    assert.equal(p!.ready, false);
    assert.equal(p!.restarts, 0, 'not restarted: liveness holds while the broker is away');
    await waitUntil(
      'the trigger reports Ready=False',
      async () => (await triggerCondition(name))?.status === 'False',
      TIMEOUT,
      fx,
    );
    // The broker comes back (the trigger now names the real one): ready, and the trigger with it.
    await fx.apply(readmeTrigger(fx.ns, name, topic, fn.url));
    await waitUntil(
      'the trigger reports Ready=True once its pod is ready',
      async () => (await triggerCondition(name))?.status === 'True',
      TIMEOUT,
      fx,
    );
    const pods = (await fx.dispatcherPods(name)).filter((x) => !x.terminating);
    assert.ok(pods.length >= 1 && pods.every((x) => x.ready));
    await fx.kubectl(['delete', 'pulsartrigger', name, '-n', fx.ns]);
  });

  test('a dispatcher whose event loop stops answering is restarted by the liveness probe', async () => {
    const name = 'hang';
    const topic = `persistent://public/default/e2e-pod-hang-${fx.suffix}`;
    const trigger = readmeTrigger(fx.ns, name, topic, fn.url) as { spec: Record<string, unknown> };
    // The probe's timing is the trigger's to tune, as any field of the pod: quicker here than the default.
    trigger.spec.deployment = {
      spec: {
        template: { spec: { containers: [{ livenessProbe: { periodSeconds: 2, failureThreshold: 2 } }] } },
      },
    };
    await fx.apply(trigger);
    await waitUntil(
      'the dispatcher pod is ready',
      async () => (await fx.dispatcherPods(name))[0]?.ready === true,
      TIMEOUT,
      fx,
    );
    const [p0] = await fx.dispatcherPods(name);
    const probe = p0!.pod.spec?.containers[0]?.livenessProbe;
    assert.deepEqual(
      [probe?.httpGet?.path, probe?.periodSeconds, probe?.failureThreshold],
      ['/healthz', 2, 2],
      "the default probe, with the trigger's timing",
    );
    // SIGSTOP: the process stays, its event loop answers nothing (as a hung loop would).
    process.kill(containerPid(p0!.containerId!), 'SIGSTOP');
    await waitUntil(
      'the kubelet restarted the container after failed liveness probes',
      async () => {
        const [p] = await fx.dispatcherPods(name);
        return p?.uid === p0!.uid && p.restarts >= 1 && p.ready;
      },
      TIMEOUT,
      fx,
    );
    assert.ok(await unhealthy(p0!.name, 'Liveness'), 'the restart followed failed liveness probes');
    await fx.kubectl(['delete', 'pulsartrigger', name, '-n', fx.ns]);
  });

  test(`at full load the dispatcher stays inside its ${DISPATCHER_MEMORY_LIMIT} memory limit`, async () => {
    const name = 'load';
    const topic = `persistent://public/default/e2e-pod-load-${fx.suffix}`;
    const trigger = readmeTrigger(fx.ns, name, topic, fn.url) as { spec: Record<string, unknown> };
    trigger.spec.delivery = { concurrency: 32 };
    await fx.apply(trigger);
    await waitUntil(
      'the dispatcher pod is ready',
      async () => (await fx.dispatcherPods(name))[0]?.ready === true,
      TIMEOUT,
      fx,
    );
    const [p0] = await fx.dispatcherPods(name);
    assert.equal(p0!.pod.spec?.containers[0]?.resources?.limits?.memory, DISPATCHER_MEMORY_LIMIT);
    const cgroup = memoryCgroup(containerPid(p0!.containerId!));
    const limit = Number(readFileSync(`${cgroup}/memory.limit_in_bytes`, 'utf8'));
    assert.equal(limit, 128 * 1024 * 1024, 'the kubelet set the limit on the container cgroup');
    // As fast as one producer publishes: 20,000 messages of 4 KiB, batched.
    const count = 20_000;
    const payload = Buffer.alloc(4096, 'x');
    const client = new PulsarClient({ serviceUrl: pulsarPlain().serviceUrl });
    try {
      const producer = await client.createProducer({ topic, batchingMaxMessages: 100 });
      const sends: Promise<unknown>[] = [];
      for (let i = 0; i < count; i++) {
        sends.push(producer.send({ payload: Buffer.concat([Buffer.from(`${i}:`), payload]) }));
      }
      await Promise.all(sends);
      await producer.close();
    } finally {
      await client.close();
    }
    await waitUntil('every message reached the function', () => fn.events.length >= count, 600_000, fx);
    const distinct = new Set(bodies(fn).map((b) => b.slice(0, b.indexOf(':'))));
    assert.equal(distinct.size, count, 'every message id delivered');
    const [p1] = await fx.dispatcherPods(name);
    assert.equal(p1!.uid, p0!.uid);
    assert.equal(
      p1!.restarts,
      0,
      `no restart (OOM kill): ${JSON.stringify(p1!.pod.status?.containerStatuses)}`,
    );
    const peak = Number(readFileSync(`${cgroup}/memory.max_usage_in_bytes`, 'utf8'));
    const failcnt = Number(readFileSync(`${cgroup}/memory.failcnt`, 'utf8'));
    process.stderr.write(
      `# dispatcher container at full load: peak ${(peak / 1024 / 1024).toFixed(1)} MiB (limit ${DISPATCHER_MEMORY_LIMIT}), limit hits ${failcnt}\n`,
    );
    assert.ok(peak < limit, `peak ${peak} under the limit ${limit}`);
  });
});
