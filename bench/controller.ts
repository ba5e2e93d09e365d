// Controller benchmark against the real API server (make env-up; eval "$(make -s env)"):
//  1. direct: the same client (client-node) creates N Deployments, W in flight: the API server's rate here.
//  2. controller: N PulsarTriggers exist (created while no controller runs); the controller starts and the clock
//     runs until all N Deployments exist (list, reconcile, create, status): the controller's rate.
//  3. resync: with everything settled, the writes the controller makes while resyncing all N triggers (goal 0).
//  4. RSS of the controller process holding N triggers and N Deployments in its caches (goal < 150 MiB).
// Prints figure, limit and ratio for each. Options: --triggers N (1000), --workers W (8).

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { kube } from '../test/support/env.ts';
import { runOk } from '../test/support/packaging.ts';

const root = join(import.meta.dirname, '..');
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const N = arg('triggers', 1000);
const W = arg('workers', 8);

const k = kube();
const kc = new KubeConfig();
kc.loadFromFile(k.kubeconfig);
const apps = kc.makeApiClient(AppsV1Api);
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
const suffix = Math.random().toString(36).slice(2, 7);

async function pool(n: number, width: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

async function countDeployments(namespace: string): Promise<number> {
  const list = await apps.listNamespacedDeployment({
    namespace,
    labelSelector: 'created-by=kubeless-pulsar-trigger',
  });
  return list.items.length;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function rssMiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const kubectl = join(k.binDir, 'kubectl');
  await runOk(kubectl, [
    'apply',
    '--server-side',
    '--force-conflicts',
    '-f',
    join(root, 'deploy', 'crd.yaml'),
    '--kubeconfig',
    k.kubeconfig,
  ]);
  const directNs = `bench-direct-${suffix}`;
  const ctlNs = `bench-ctl-${suffix}`;
  for (const ns of [directNs, ctlNs]) await core.createNamespace({ body: { metadata: { name: ns } } });

  // 1. Direct creation, the same Deployment shape the controller writes (labels, selector, one container).
  const t0 = performance.now();
  await pool(N, W, (i) =>
    apps.createNamespacedDeployment({
      namespace: directNs,
      body: {
        metadata: { name: `d-${i}`, labels: { 'created-by': 'bench' } },
        spec: {
          replicas: 1,
          selector: { matchLabels: { 'kubeless.io/trigger-name': `d-${i}` } },
          template: {
            metadata: { labels: { 'kubeless.io/trigger-name': `d-${i}` } },
            spec: { containers: [{ name: 'dispatcher', image: 'kpt/dispatcher:bench' }] },
          },
        },
      },
    }),
  );
  const directS = (performance.now() - t0) / 1000;
  process.stderr.write(`direct: ${N} Deployments in ${directS.toFixed(1)} s\n`);

  // 2. Triggers first, then the controller.
  await pool(N, 16, (i) =>
    custom.createNamespacedCustomObject({
      group: 'kubeless.io',
      version: 'v1',
      namespace: ctlNs,
      plural: 'pulsartriggers',
      body: {
        apiVersion: 'kubeless.io/v1',
        kind: 'PulsarTrigger',
        metadata: { name: `t-${i}` },
        spec: {
          pulsar: { topic: `persistent://public/default/t-${i}`, broker: 'pulsar://pulsar:6650' },
          kubeless: { function: 'http://fn.default:8080' },
        },
      },
    }),
  );
  const port = await freePort();
  const resyncSeconds = 20;
  const t1 = performance.now();
  const child = spawn(
    process.execPath,
    [
      join(root, 'src', 'cli', 'controller.ts'),
      '--kubeconfig',
      k.kubeconfig,
      '--namespaces',
      ctlNs,
      '--leader-election-namespace',
      ctlNs,
      '--http-port',
      String(port),
      '--http-host',
      '127.0.0.1',
      '--workers',
      String(W),
      '--resync-period',
      String(resyncSeconds),
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  try {
    while ((await countDeployments(ctlNs)) < N) await sleep(200);
    const ctlS = (performance.now() - t1) / 1000;
    process.stderr.write(`controller: ${N} Deployments in ${ctlS.toFixed(1)} s\n`);

    // 3. Settle (statuses written), then one full resync.
    const metric = async (re: RegExp) => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      let sum = 0;
      for (const line of text.split('\n')) if (re.test(line)) sum += Number(line.split(' ').pop());
      return sum;
    };
    const writes = () => metric(/^kpt_controller_writes_total\{/);
    const reconciles = () => metric(/^kpt_controller_reconciles_total\{/);
    let last = -1;
    for (;;) {
      const w = await writes();
      if (w === last) break;
      last = w;
      await sleep(3000);
    }
    const before = await writes();
    const r0 = await reconciles();
    while ((await reconciles()) < r0 + N) await sleep(500);
    const resyncWrites = (await writes()) - before;
    const mem = rssMiB(child.pid!);

    const directRate = N / directS;
    const ctlRate = N / ctlS;
    const rows = [
      ['Deployments/s, direct (same client, same API server)', directRate.toFixed(1), '-', '-'],
      [
        `Deployments/s, controller (${N} triggers)`,
        ctlRate.toFixed(1),
        `>= ${(0.8 * directRate).toFixed(1)}`,
        (ctlRate / directRate).toFixed(2),
      ],
      [
        `writes during a resync of ${N} unchanged triggers`,
        String(resyncWrites),
        '0',
        resyncWrites === 0 ? '0 (met)' : 'not met',
      ],
      [
        `controller RSS with ${N} triggers, MiB (peak ${mem.hwm.toFixed(0)})`,
        mem.rss.toFixed(0),
        '< 150',
        (mem.rss / 150).toFixed(2),
      ],
    ];
    process.stdout.write(
      `${'figure'.padEnd(62)} ${'value'.padStart(9)} ${'limit'.padStart(10)} ${'ratio'.padStart(9)}\n`,
    );
    for (const [a, b, c, d] of rows)
      process.stdout.write(`${a!.padEnd(62)} ${b!.padStart(9)} ${c!.padStart(10)} ${d!.padStart(9)}\n`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    for (const ns of [directNs, ctlNs]) await core.deleteNamespace({ name: ns }).catch(() => undefined);
  }
}

main().catch((e) => {
  process.stderr.write(`bench/controller.ts: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
