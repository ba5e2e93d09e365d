// Cold start of an autoscaled trigger (issue #20): a trigger with spec.autoscaling (minReplicas 0, pollingInterval
// 5 s) idles at 0 dispatcher pods; one message is published, and the delay until the function receives it is
// measured: KEDA's next poll sees the backlog, scales the Deployment to 1, the kubelet starts the dispatcher's
// container from the project's image, it subscribes and delivers. Ten tries, each from 0 (KEDA brings it back to 0
// after the cooldown). Goal: median under pollingInterval + 3 s. Real servers only: the broker, the API server with
// kube-controller-manager (the HPA), the node (kubelet, containerd) and KEDA; the controller runs as a local process.
//
//   node bench/autoscaling.ts [--tries 10]
// Prints a table and one `BENCH {json}` line per figure (format: testenv/bench.ts).
// bench-servers: pulsar, kube, node (make bench starts only these for it: testenv/bench.ts)

import { join } from 'node:path';
import { startFunction } from '../examples/function.ts';
import { paths } from '../src/controller/kube.ts';
import { KubeApi, loadKubeconfigFile } from '../src/controller/kubeapi.ts';
import { PulsarClient } from '../src/pulsar/index.ts';
import { kube, node, pulsarPlain } from '../test/support/env.ts';
import { runOk } from '../test/support/packaging.ts';
import { BENCH_PREFIX, type BenchFigure } from '../testenv/bench.ts';
import { freePort } from '../testenv/lib/proc.ts';
import { spawnController } from './support.lib.ts';

const root = join(import.meta.dirname, '..');
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const TRIES = arg('tries', 10);
const POLLING_S = 5;
const suffix = Math.random().toString(36).slice(2, 7);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(`[autoscaling] ${s}\n`);

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function main(): Promise<void> {
  if (!process.env.KPT_KEDA)
    throw new Error('KPT_KEDA is not set: this benchmark needs KEDA (testenv/cli.ts bench)');
  const env = kube();
  const n = node();
  const pulsar = pulsarPlain();
  const api = new KubeApi(loadKubeconfigFile(env.kubeconfig), { connections: 4 });
  const kubectl = (args: string[]) =>
    runOk(join(env.binDir, 'kubectl'), ['--kubeconfig', env.kubeconfig, ...args]);
  const ns = `bench-autoscaling-${suffix}`;
  const topic = `persistent://public/default/bench-autoscaling-${suffix}`;
  await kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(root, 'deploy', 'crd.yaml')]);
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/pulsartriggers.kubeless.io']);
  await kubectl(['create', 'namespace', ns]);
  const port = await freePort();
  const controller = spawnController({
    kubeconfig: env.kubeconfig,
    namespace: ns,
    port,
    extra: [
      '--dispatcher-image',
      n.dispatcherImage,
      '--dispatcher-cpu-request',
      '50m',
      '--dispatcher-memory-request',
      '64Mi',
    ],
  });
  let received: ((at: number) => void) | undefined;
  const fn = await startFunction({
    port: 0,
    host: n.ip,
    name: 'cold',
    onEvent: () => received?.(performance.now()),
  });
  const client = new PulsarClient({ serviceUrl: pulsar.serviceUrl });
  const delays: number[] = [];
  try {
    await api.request('POST', paths.triggers(ns), {
      body: {
        apiVersion: 'kubeless.io/v1',
        kind: 'PulsarTrigger',
        metadata: { name: 'cold', namespace: ns },
        spec: {
          pulsar: { topic, broker: n.pulsarServiceUrl, adminUrl: n.pulsarAdminUrl },
          kubeless: { function: fn.url },
          autoscaling: {
            minReplicas: 0,
            maxReplicas: 1,
            backlogPerReplica: 1,
            pollingInterval: `${POLLING_S}s`,
            cooldownPeriod: '5s',
          },
        },
      },
      discard: true,
    });
    const producer = await client.createProducer({ topic });
    const deployment = () =>
      api
        .request<{ spec?: { replicas?: number } }>('GET', `${paths.deployments(ns)}/cold`)
        .catch(() => undefined);
    const pods = async () =>
      (await api.request<{ items: unknown[] }>('GET', `/api/v1/namespaces/${ns}/pods`)).items.length;
    for (let i = 0; i < TRIES; i++) {
      await waitFor('the trigger at 0 replicas, no pod left', async () => {
        const d = await deployment();
        return d?.spec?.replicas === 0 && (await pods()) === 0;
      });
      // A moment past the scale-down, so that the publish does not land right on a KEDA poll every time.
      await sleep(1000 + Math.random() * POLLING_S * 1000);
      const got = new Promise<number>((r) => {
        received = r;
      });
      const t0 = performance.now();
      await producer.send({ payload: Buffer.from(`cold-${i}`) });
      // The deadline is cleared once the message arrived: a pending 300 s timer would hold the process open.
      let deadline: NodeJS.Timeout | undefined;
      const t1 = await Promise.race([
        got,
        new Promise<never>((_, reject) => {
          deadline = setTimeout(() => reject(new Error(`try ${i}: the message did not arrive`)), 300_000);
        }),
      ]).finally(() => clearTimeout(deadline));
      delays.push((t1 - t0) / 1000);
      log(`try ${i + 1}/${TRIES}: ${((t1 - t0) / 1000).toFixed(2)} s from publish to the function`);
    }
    await producer.close();
  } finally {
    controller.kill('SIGTERM');
    await client.close();
    await fn.close();
    await kubectl(['delete', 'namespace', ns, '--wait=false']).catch(() => undefined);
    await api.close();
  }
  const sorted = [...delays].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const max = sorted[sorted.length - 1]!;
  const limit = POLLING_S + 3;
  const figures: BenchFigure[] = [
    {
      name: `cold start from 0 replicas, median of ${TRIES} (pollingInterval ${POLLING_S} s)`,
      value: Number(median.toFixed(2)),
      unit: 's',
      limit,
      limitName: 'pollingInterval + 3 s',
      goal: 'value < limit (lower is better)',
      ok: median < limit,
    },
    {
      name: `cold start from 0 replicas, max of ${TRIES}`,
      value: Number(max.toFixed(2)),
      unit: 's',
    },
  ];
  process.stdout.write(`\ncold start (s): ${delays.map((d) => d.toFixed(2)).join(', ')}\n`);
  for (const f of figures) process.stdout.write(`${BENCH_PREFIX}${JSON.stringify(f)}\n`);
}

await main();
