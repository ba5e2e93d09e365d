// The direct side of bench/controller.ts, in a process of its own: a fresh Node process like the controller's, with
// the controller's V8 settings (cli/controller-tiering.ts), its HTTP client (src/controller/kubeapi.ts, a fresh pool
// with no open connections) and the Deployments the controller renders. So the two sides differ only in what the
// controller does besides sending the creates. (Run in the benchmark's own process, the client's code was already
// compiled and optimized by the requests that set the run up, while the controller's was not.)
//
// Protocol, over the IPC channel: the parent sends {kubeconfig, namespace, n, workers, image}; the child renders the
// bodies and answers {ready: true}; the parent waits for a quiet machine and sends {go: true}; the child creates the
// n Deployments, `workers` in flight (with `adminUrl`, each beside its subscription made through the Pulsar admin
// API, as the controller with --pulsar-admin does), and answers {seconds, replies, cpuSeconds} (the time of each reply from the first
// request, in ms; its own CPU over that time), then exits.

import '../src/cli/controller-tiering.ts';
import { paths } from '../src/controller/kube.ts';
import { KubeApi, loadKubeconfigFile } from '../src/controller/kubeapi.ts';
import { PulsarAdmin } from '../src/pulsar/admin.ts';
import { DEFAULT_RESOURCES, type JsonObject, renderTrigger } from '../src/trigger/render.ts';
import type { PulsarTrigger } from '../src/trigger/spec.ts';

export interface DirectOrder {
  kubeconfig: string;
  namespace: string;
  n: number;
  workers: number;
  image: string;
  /** The trigger each Deployment is rendered from, as the controller would get it. */
  triggers: PulsarTrigger[];
  /** Also make each trigger's subscription there (its topic, Latest) and read its partitions. */
  adminUrl?: string;
}

export interface DirectResult {
  seconds: number;
  replies: number[];
  /** CPU seconds (user + system, all threads) this process used from the first request to the last reply. */
  cpuSeconds: number;
}

function next(): Promise<unknown> {
  return new Promise((resolve) => process.once('message', resolve));
}

async function child(): Promise<void> {
  const order = (await next()) as DirectOrder;
  const bodies = order.triggers.map((t) => {
    const r = renderTrigger(t, {
      dispatcherImage: order.image,
      timezone: 'UTC',
      resources: DEFAULT_RESOURCES,
    });
    if (!r.ok) throw r.error;
    const d = r.value.deployment;
    // Its trigger does not exist in this namespace: the garbage collector would delete the Deployment.
    delete (d.metadata as JsonObject).ownerReferences;
    return { deployment: d, settings: r.value.settings };
  });
  const admin = order.adminUrl ? new PulsarAdmin({ adminUrl: order.adminUrl }) : undefined;
  const api = new KubeApi(loadKubeconfigFile(order.kubeconfig), { connections: order.workers + 4 });
  process.send!({ ready: true });
  await next();
  const replies: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let i = 0;
  await Promise.all(
    Array.from({ length: order.workers }, async () => {
      while (i < order.n) {
        const { deployment, settings } = bodies[i++]!;
        await Promise.all([
          api.request('POST', paths.deployments(order.namespace), {
            body: deployment,
            query: { fieldManager: 'kubeless-pulsar-trigger' },
            discard: true,
          }),
          admin
            ?.createSubscription(settings.topic, settings.subscription, settings.initialPosition)
            .then(() => admin.partitions(settings.topic)),
        ]);
        replies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const result: DirectResult = { seconds, replies, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  await api.close();
  admin?.close();
  process.send!(result, () => process.exit(0));
}

if (process.send && process.argv[1] === import.meta.filename) {
  child().catch((e) => {
    process.stderr.write(`bench/controller-direct.lib.ts: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  });
}
