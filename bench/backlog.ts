// The cost of reporting how far behind 1000 triggers are (issue #20): a controller with the Pulsar admin API on
// (its default) owns 1000 triggers on 1000 topics of the real broker; every topic gets one new message every 10 s, so
// every backlog moves between two reads. Over one minute, after a first full interval: the admin API calls the
// backlog reads make (kpt_controller_pulsar_admin_calls_total{call="figures"}; goal: one per trigger per interval,
// 2000 a minute at the default 30 s), and the status writes they cause (kpt_controller_writes_total for the
// PulsarTrigger status; at most one per trigger per interval, since an unchanged backlog writes nothing). No node:
// the Deployments are created and never run, so the backlogs only grow.
//
//   node bench/backlog.ts [--triggers 1000] [--interval 30]
// Prints a table and one `BENCH {json}` line per figure (format: testenv/bench.ts).
// bench-servers: pulsar, kube (make bench starts only these for it: testenv/bench.ts)

import { createServer } from 'node:net';
import { join } from 'node:path';
import { paths } from '../src/controller/kube.ts';
import { KubeApi, loadKubeconfigFile } from '../src/controller/kubeapi.ts';
import { PulsarClient } from '../src/pulsar/index.ts';
import { kube, pulsarPlain } from '../test/support/env.ts';
import { runOk } from '../test/support/packaging.ts';
import { BENCH_PREFIX, type BenchFigure } from '../testenv/bench.ts';
import { spawnController } from './support.lib.ts';

const root = join(import.meta.dirname, '..');
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const N = arg('triggers', 1000);
const INTERVAL_S = arg('interval', 30);
const PUBLISH_EVERY_MS = 10_000;
const WINDOW_MS = 60_000;
const suffix = Math.random().toString(36).slice(2, 7);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(`[backlog] ${s}\n`);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function metric(port: number, re: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (re.test(line)) sum += Number(line.split(' ').pop());
  return sum;
}

async function main(): Promise<void> {
  const env = kube();
  const pulsar = pulsarPlain();
  const api = new KubeApi(loadKubeconfigFile(env.kubeconfig), { connections: 20 });
  const kubectl = join(env.binDir, 'kubectl');
  const ns = `bench-backlog-${suffix}`;
  const topics = Array.from(
    { length: N },
    (_, i) => `persistent://public/default/bench-backlog-${suffix}-${i}`,
  );
  await runOk(kubectl, [
    '--kubeconfig',
    env.kubeconfig,
    'apply',
    '--server-side',
    '--force-conflicts',
    '-f',
    join(root, 'deploy', 'crd.yaml'),
  ]);
  await runOk(kubectl, [
    '--kubeconfig',
    env.kubeconfig,
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    'crd/pulsartriggers.kubeless.io',
  ]);
  await runOk(kubectl, ['--kubeconfig', env.kubeconfig, 'create', 'namespace', ns]);
  const port = await freePort();
  const controller = spawnController({
    kubeconfig: env.kubeconfig,
    namespace: ns,
    port,
    extra: ['--dispatcher-image', 'kpt/dispatcher:bench', '--backlog-interval', String(INTERVAL_S)],
  });
  const client = new PulsarClient({ serviceUrl: pulsar.serviceUrl });
  const figures: BenchFigure[] = [];
  try {
    for (;;) {
      const up = await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (up) break;
      await sleep(200);
    }
    log(`creating ${N} triggers in ${ns}`);
    const queue = [...topics.keys()];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
          await api.request('POST', paths.triggers(ns), {
            body: {
              apiVersion: 'kubeless.io/v1',
              kind: 'PulsarTrigger',
              metadata: { name: `t-${i}`, namespace: ns },
              spec: {
                pulsar: { topic: topics[i], broker: pulsar.serviceUrl, adminUrl: pulsar.adminUrl },
                kubeless: { function: 'http://fn.default:8080' },
              },
            },
            discard: true,
          });
        }
      }),
    );
    const ensured = () =>
      metric(port, /^kpt_controller_pulsar_admin_calls_total\{call="ensure",result="ok"\}/);
    for (let n = await ensured(); n < N; n = await ensured()) {
      log(`subscriptions made: ${n}/${N}`);
      await sleep(2000);
    }
    log(`all ${N} subscriptions made; opening ${N} producers`);
    const producers = await Promise.all(topics.map((topic) => client.createProducer({ topic })));
    let publishing = true;
    const publisher = (async () => {
      for (let round = 0; publishing; round++) {
        const t0 = performance.now();
        await Promise.all(producers.map((p) => p.send({ payload: Buffer.from(`m-${round}`) })));
        await sleep(Math.max(0, PUBLISH_EVERY_MS - (performance.now() - t0)));
      }
    })();
    log(`publishing to every topic every ${PUBLISH_EVERY_MS / 1000} s; one interval (${INTERVAL_S} s) first`);
    await sleep(INTERVAL_S * 1000);
    const reads = () => metric(port, /^kpt_controller_pulsar_admin_calls_total\{call="figures"/);
    const statusWrites = () =>
      metric(port, /^kpt_controller_writes_total\{kind="PulsarTrigger",verb="status"/);
    const r0 = await reads();
    const w0 = await statusWrites();
    const t0 = performance.now();
    await sleep(WINDOW_MS);
    const minutes = (performance.now() - t0) / 60_000;
    const readsPerMin = ((await reads()) - r0) / minutes;
    const writesPerMin = ((await statusWrites()) - w0) / minutes;
    publishing = false;
    await publisher;
    const perInterval = (N * 60) / INTERVAL_S;
    figures.push(
      {
        name: `admin API calls for ${N} triggers' backlogs (interval ${INTERVAL_S} s)`,
        value: Math.round(readsPerMin),
        unit: 'calls/min',
        limit: perInterval,
        limitName: 'one call per trigger per interval',
        goal: 'ratio <= 1.05',
        ok: readsPerMin <= perInterval * 1.05,
      },
      {
        name: `status writes for ${N} triggers whose backlogs all move`,
        value: Math.round(writesPerMin),
        unit: 'writes/min',
        limit: perInterval,
        limitName: 'one write per trigger per interval',
        goal: 'ratio <= 1.05',
        ok: writesPerMin <= perInterval * 1.05,
      },
    );
    await Promise.all(producers.map((p) => p.close()));
  } finally {
    controller.kill('SIGTERM');
    await client.close();
    await runOk(kubectl, ['--kubeconfig', env.kubeconfig, 'delete', 'namespace', ns, '--wait=false']).catch(
      () => undefined,
    );
    await api.close();
  }
  process.stdout.write('\nbenchmark                                         value        limit\n');
  for (const f of figures) {
    process.stdout.write(
      `${f.name.padEnd(50)} ${String(f.value).padStart(8)} ${f.unit}  ${f.limit} (${f.limitName})\n`,
    );
  }
  for (const f of figures) process.stdout.write(`${BENCH_PREFIX}${JSON.stringify(f)}\n`);
}

await main();
