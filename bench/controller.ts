// Controller benchmark against a real API server: the shared one (make env-up; eval "$(make -s env)") or, with
// --private-kube, a control plane of its own (testenv/kube.ts), which keeps other users' load out of the figures.
//  1. direct: the controller's own HTTP client (src/controller/kubeapi.ts, same pool size, a fresh one with no open
//     connections, as a fresh controller has none) creates the N Deployments the controller would render, W in
//     flight (W = the controller's --workers): the API server's rate for exactly this work. Timed from the first
//     request to the last reply.
//  2. controller: N PulsarTriggers exist (created while no controller runs, so that they reach it all at once and
//     their own creation is not timed); the controller process is spawned and timed from the moment its /readyz
//     says it leads with its caches synced (polled every 20 ms) to the reply to its N-th Deployment create (its
//     /metrics, as the direct phase is timed to its last reply; a count of the namespace checks it): from then on
//     it is doing what a running controller does when 1000 triggers are applied at once. The rate from the spawn
//     (adding Node's start, module loading, the Lease and the initial lists) is printed too, for information.
//  The phases run in pairs, direct then controller, controller then direct, and so on (D C C D D C C D D C for five
//  tries; each in a namespace of its own, each controller a fresh process): the same phase differs by 10-30% from one
//  run to the next on a 2-core machine, so each side gets T tries (--tries, 5) spread over the run, and the fastest
//  of each is compared (the goal: controller rate / direct rate >= 0.8). Every try is printed. After each phase its
//  namespace is deleted and the deletion waited out, so the next phase neither pays for the kube-controller-manager's
//  work on the phase's Deployments (ReplicaSets, Pods) nor runs against more objects than the phase before it.
//  3. resync: with everything settled, the writes the controller makes while resyncing all N triggers (goal 0).
//  4. RSS of the controller process holding N triggers and N Deployments in its caches (goal < 150 MiB).
// Prints a table and one `BENCH {json}` line per figure (format: testenv/bench.ts).
// The controller runs as the image runs it: the bundle scripts/build.ts makes (into a scratch folder under tmp/,
// not dist/, which the launcher would pick up for everyone), so Node loads no type stripper. --typescript runs the
// sources with type stripping instead, as a checkout does.
// Options: --triggers N (1000), --workers W (16), --tries T (5 per side), --private-kube, --typescript, --diagnose
// (where the time goes in each phase, on stderr: bench/controller-diag.lib.ts), --pulsar-admin: the triggers name
// the real broker (PULSAR_SERVICE_URL, PULSAR_ADMIN_URL) and the controller owns their subscriptions (creates each
// through the admin API and reads its backlog), as it does by default in a cluster; the direct side then makes each
// subscription beside its Deployment (PulsarAdmin, same broker), so both sides do the same work.
// bench-servers: kube (make bench starts only these for it: testenv/bench.ts)

import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { httpStatus } from '../src/controller/errors.ts';
import { paths } from '../src/controller/kube.ts';
import { KubeApi, loadKubeconfigFile } from '../src/controller/kubeapi.ts';
import type { PulsarTrigger } from '../src/trigger/spec.ts';
import { kube } from '../test/support/env.ts';
import { runOk } from '../test/support/packaging.ts';
import { BENCH_PREFIX, type BenchFigure } from '../testenv/bench.ts';
import { type KubeHandle, startKube } from '../testenv/kube.ts';
import { Diagnosis } from './controller-diag.lib.ts';
import type { DirectOrder, DirectResult } from './controller-direct.lib.ts';

const root = join(import.meta.dirname, '..');
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const N = arg('triggers', 1000);
const W = arg('workers', 16);
const TRIES = arg('tries', 5);
const privateKube = process.argv.includes('--private-kube');
const pulsarAdmin = process.argv.includes('--pulsar-admin');
if (pulsarAdmin && (!process.env.PULSAR_SERVICE_URL || !process.env.PULSAR_ADMIN_URL))
  throw new Error('--pulsar-admin needs PULSAR_SERVICE_URL and PULSAR_ADMIN_URL (eval "$(make -s env)")');
const typescript = process.argv.includes('--typescript');
// Node flags for the controller process (to compare V8 heap settings); by default none beyond what it sets itself.
const nodeOptions = (process.env.KPT_CONTROLLER_NODE_OPTIONS ?? '').split(' ').filter(Boolean);
// --diagnose: CPU per process and the API server's work per phase, and the controller's event-loop delay (stderr).
const diagnose = process.argv.includes('--diagnose');
if (diagnose) nodeOptions.push('--import', join(import.meta.dirname, 'controller-diag.preload.lib.mjs'));
const suffix = Math.random().toString(36).slice(2, 7);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(`${s}\n`);

async function pool(n: number, width: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await fn(next++);
    }),
  );
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

/** Busy and total CPU time of the whole machine so far, from /proc/stat (clock ticks). */
function machineTicks(): { busy: number; total: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

/**
 * Waits (up to 2 min) until the machine has been quiet for a second: under 15% of its CPU busy. Before each timed
 * phase, so that none starts while something else still works: the kube-controller-manager after the previous
 * phase, or a broker after the benchmarks before this one (a `make bench` run saw one controller run at 0.58 of the
 * other, started right after the previous phase's wait for the kube-controller-manager).
 */
async function quiet(what: string): Promise<void> {
  const started = performance.now();
  for (;;) {
    const a = machineTicks();
    await sleep(1000);
    const b = machineTicks();
    const busy = (b.busy - a.busy) / Math.max(1, b.total - a.total);
    if (busy < 0.15 || performance.now() - started > 120_000) {
      const waited = (performance.now() - started) / 1000;
      if (waited > 1.5)
        log(
          `${what}: waited ${waited.toFixed(0)} s for a quiet machine (last second ${(busy * 100).toFixed(0)}% busy)`,
        );
      return;
    }
  }
}

/** CPU seconds per thread name (main thread, V8 workers, libuv pool...) of a process, from /proc/<pid>/task. */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(name, (out.get(name) ?? 0) + (Number(fields[11]) + Number(fields[12])) / 100);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100 per second)
}

function triggerBody(namespace: string, i: number): PulsarTrigger {
  return {
    apiVersion: 'kubeless.io/v1',
    kind: 'PulsarTrigger',
    metadata: { name: `t-${i}`, namespace },
    spec: {
      pulsar: pulsarAdmin
        ? {
            topic: `persistent://public/default/bench-${namespace}-t-${i}`,
            broker: process.env.PULSAR_SERVICE_URL,
            adminUrl: process.env.PULSAR_ADMIN_URL,
          }
        : { topic: `persistent://public/default/t-${i}`, broker: 'pulsar://pulsar:6650' },
      kubeless: { function: 'http://fn.default:8080' },
    },
  } as unknown as PulsarTrigger;
}

const IMAGE = 'kpt/dispatcher:bench';

/** Items in a collection, from one small page (remainingItemCount), without listing them all. */
async function count(api: KubeApi, path: string, labelSelector?: string): Promise<number> {
  const page = await api.request<{ items: unknown[]; metadata?: { remainingItemCount?: number } }>(
    'GET',
    path,
    {
      query: { limit: 1, labelSelector },
    },
  );
  return page.items.length + (page.metadata?.remainingItemCount ?? 0);
}

async function main(): Promise<void> {
  let k: KubeHandle | undefined;
  let env: { kubeconfig: string; binDir: string };
  if (privateKube) {
    log('starting a private control plane');
    k = await startKube();
    env = { kubeconfig: k.kubeconfig, binDir: k.binDir };
  } else env = kube();
  const api = new KubeApi(loadKubeconfigFile(env.kubeconfig), { connections: W + 4 });
  const diag = diagnose ? new Diagnosis(api.conn, env.kubeconfig) : undefined;
  // Each try's namespace, for clean-up on a shared API server.
  const namespaces: string[] = [];
  const children: ReturnType<typeof spawn>[] = [];
  // The image's bundle (scripts/build.ts) in a scratch folder under tmp/, not dist/ (which the launcher would pick
  // up for everyone).
  const compiled = join(root, 'tmp', `bench-controller-${suffix}`);
  let controllerEntry = join(root, 'src', 'cli', 'controller.ts');
  if (!typescript) {
    await runOk(process.execPath, [join(root, 'scripts', 'build.ts'), '--outdir', compiled]);
    controllerEntry = join(compiled, 'cli', 'controller.js');
  }
  const figures: BenchFigure[] = [];
  try {
    const kubectl = join(env.binDir, 'kubectl');
    const crd = ['--kubeconfig', env.kubeconfig];
    await runOk(kubectl, [
      'apply',
      '--server-side',
      '--force-conflicts',
      '-f',
      join(root, 'deploy', 'crd.yaml'),
      ...crd,
    ]);
    // Established: the CRD's status may not even exist right after the apply, so poll rather than kubectl wait.
    for (;;) {
      const c = await api.request<{ status?: { conditions?: { type: string; status: string }[] } }>(
        'GET',
        '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/pulsartriggers.kubeless.io',
      );
      if (c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True')) break;
      await sleep(100);
    }

    // Direct: the Deployments the controller renders for these triggers, created in a namespace of their own, by a
    // fresh process with the controller's HTTP client and V8 settings (bench/controller-direct.lib.ts).
    const direct = async (namespace: string, what: string): Promise<DirectResult> => {
      const c = spawn(process.execPath, [join(import.meta.dirname, 'controller-direct.lib.ts')], {
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      });
      children.push(c);
      const failed = new Promise<never>((_, reject) =>
        c.once('exit', (code) => reject(new Error(`${what}: the direct client exited with ${code}`))),
      );
      const reply = <T>() =>
        Promise.race([new Promise<T>((r) => c.once('message', (m) => r(m as T))), failed]);
      const triggers = Array.from({ length: N }, (_, i) => {
        const t = triggerBody(namespace, i);
        t.metadata.uid = `bench-${i}`;
        return t;
      });
      const order: DirectOrder = {
        kubeconfig: env.kubeconfig,
        namespace,
        n: N,
        workers: W,
        image: IMAGE,
        triggers,
        ...(pulsarAdmin ? { adminUrl: process.env.PULSAR_ADMIN_URL } : {}),
      };
      c.send(order);
      await reply<{ ready: true }>();
      await quiet(what);
      await diag?.start(what);
      diag?.profile(what, 1);
      c.send({ go: true });
      const result = await reply<DirectResult>();
      const { seconds, replies } = result;
      failed.catch(() => undefined); // it exits now, as it should
      if (diag) {
        // Creates per second in each 100 ms, to compare with the controller's curve (same format).
        const perSlot = new Map<number, number>();
        for (const t of replies) {
          const slot = Math.floor(t / 100);
          perSlot.set(slot, (perSlot.get(slot) ?? 0) + 1);
        }
        const parts = [...perSlot].map(([slot, n]) => `${((slot + 1) / 10).toFixed(1)}s:${n * 10}/s`);
        log(`diagnose: ${what}: creates per second along the window: ${parts.join(' ')}`);
      }
      await diag?.end(what);
      log(`${what}: ${N} Deployments in ${seconds.toFixed(2)} s`);
      await retire(namespace, what);
      return result;
    };

    // After each phase its namespace is deleted and its deletion waited out, so that the next phase neither pays for
    // the kube-controller-manager's work on the phase's Deployments nor runs against an API server holding more
    // objects than the phase before it. (Waiting for the kube-controller-manager to give each of the N Deployments
    // its ReplicaSet and Pod took ~3 minutes a phase on 2 cores: it writes at 20 requests/s, its default; the
    // namespace's content goes in a few collection deletes. And the objects of earlier phases, kept, kept the API
    // server busier at idle with each phase: 36% of the machine before the fourth phase of one run.)
    async function retire(namespace: string, what: string): Promise<void> {
      await diag?.start(`${what}, namespace deleted`);
      await api.request('DELETE', `/api/v1/namespaces/${namespace}`, { discard: true });
      const started = performance.now();
      for (;;) {
        const gone = await api.request('GET', `/api/v1/namespaces/${namespace}`, { discard: true }).then(
          () => false,
          (e: unknown) => {
            if (httpStatus(e) === 404) return true;
            throw e;
          },
        );
        if (gone || performance.now() - started > 300_000) break;
        await sleep(1000);
      }
      await diag?.end(`${what}, namespace deleted`);
      log(`${what}: namespace deleted in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    }

    /** Sums a counter of a controller's /metrics. */
    const metric = async (port: number, re: RegExp) => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      let sum = 0;
      for (const line of text.split('\n')) if (re.test(line)) sum += Number(line.split(' ').pop());
      return sum;
    };
    const writesOf = (port: number) => metric(port, /^kpt_controller_writes_total\{/);

    /** Waits until a controller's write count stops moving (statuses written); returns it. */
    async function settle(port: number): Promise<number> {
      for (let last = -1; ; ) {
        const w = await writesOf(port);
        if (w === last) return w;
        last = w;
        await sleep(3000);
      }
    }

    async function stop(c: ReturnType<typeof spawn>): Promise<void> {
      if (c.exitCode !== null) return;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await exited;
    }

    const resyncSeconds = 20;
    interface ControllerRun {
      child: ReturnType<typeof spawn>;
      port: number;
      /** From the moment its /readyz said its caches are synced to the last Deployment; undefined if never seen. */
      fromReadyS: number | undefined;
      fromSpawnS: number;
      /** CPU seconds the controller used in that window. */
      windowCpu: number;
    }

    /**
     * N triggers in `namespace` (created while no controller runs, so that they reach it all at once and their own
     * creation is not timed), then a controller process for that namespace, timed until the namespace holds N
     * Deployments. It is left running; the caller stops it.
     */
    async function controllerPhase(namespace: string, what: string): Promise<ControllerRun> {
      await pool(N, W, (i) =>
        api.request('POST', paths.triggers(namespace), { body: triggerBody(namespace, i) }),
      );
      await quiet(what);
      // Done when the controller has had N creates answered, as the direct phase is done at its last reply: read
      // from its /metrics (kpt_controller_writes_total, kind Deployment, verb create, result ok), then checked
      // with a count of the namespace. (Counting the namespace all along, with one-item pages, cost the API
      // server a list each time (an API server CPU profile: ~3% of its CPU at one every 50 ms) and added a list's
      // latency at the end: load the direct phase did not carry. A watch here parsed every Deployment event in this
      // process.) Reads are spaced by half the time the last rate says is left, between 5 and 250 ms (the
      // end is seen within a few ms of the last reply, as the direct side sees its last reply at once).
      const port = await freePort();
      const createdOk =
        /^kpt_controller_writes_total\{(?=.*kind="Deployment")(?=.*verb="create")(?=.*result="ok")/;
      let created = 0;
      const readings: [number, number][] = [];
      const done = (async () => {
        let prev = { at: performance.now(), n: 0 }; // the reading before the last one
        let lastAt = prev.at;
        while (created < N) {
          const rate = created > prev.n ? (created - prev.n) / (lastAt - prev.at) : 0; // per ms
          // (--diagnose: every 100 ms, to see the rate along the window.)
          await sleep(diag ? 100 : rate > 0 ? Math.min(250, Math.max(5, (N - created) / rate / 2)) : 50);
          const n = await metric(port, createdOk).catch(() => 0); // not listening yet
          prev = { at: lastAt, n: created };
          lastAt = performance.now();
          created = n;
          if (diag && n > 0) readings.push([lastAt, n]);
        }
      })();

      await diag?.scrapeBefore(what);
      const t1 = performance.now();
      const c = spawn(
        process.execPath,
        [
          ...nodeOptions,
          controllerEntry,
          '--kubeconfig',
          env.kubeconfig,
          '--namespaces',
          namespace,
          '--leader-election-namespace',
          namespace,
          '--http-port',
          String(port),
          '--http-host',
          '127.0.0.1',
          '--workers',
          String(W),
          '--resync-period',
          String(resyncSeconds),
          // By default the benchmark's triggers name a broker that does not exist (it measures Kubernetes writes).
          `--pulsar-admin=${pulsarAdmin}`,
          '--dispatcher-image',
          IMAGE,
          '--log-level',
          'warn',
        ],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      children.push(c);
      let readyAt: number | undefined;
      let cpuAtReady = 0;
      let threadsAtReady: Map<string, number> | undefined;
      const pollReady = (async () => {
        while (readyAt === undefined && created < N) {
          // The time the successful poll was sent: the caches synced at or after it, so the window is not shortened.
          const sent = performance.now();
          try {
            // "ok leader": leading, caches synced. (A standby, which it is until it holds the Lease, is ready too:
            // "ok standby". Counting from that took the Lease and the initial lists into the window.)
            const res = await fetch(`http://127.0.0.1:${port}/readyz`);
            const body = await res.text();
            if (res.ok && body.trim() === 'ok leader') {
              readyAt = sent;
              cpuAtReady = cpuSeconds(c.pid!);
              threadsAtReady = diag ? threadCpu(c.pid!) : undefined;
              if (diag) {
                c.kill('SIGUSR2'); // resets the event-loop histogram
                diag.cpuStart(what, { controller: c.pid });
                diag.profile(what, 1);
              }
            }
          } catch {
            // not listening yet
          }
          await sleep(20);
        }
      })();
      await done;
      const end = performance.now();
      const windowCpu = cpuSeconds(c.pid!) - cpuAtReady;
      if (threadsAtReady) {
        // Where the controller's CPU went, by thread: JavaScript runs on the main thread; V8's workers compile and
        // collect garbage.
        const parts = [...threadCpu(c.pid!)].map(
          ([name, s]) => `${name} ${(s - (threadsAtReady!.get(name) ?? 0)).toFixed(2)}`,
        );
        log(`diagnose: ${what}: controller CPU seconds by thread: ${parts.join(', ')}`);
      }
      if (diag) {
        c.kill('SIGUSR2');
        await diag.end(what, { controller: c.pid });
      }
      await pollReady;
      if (diag && readyAt !== undefined) {
        // Creates per second in each reading interval, from ready: a slow start would be warm-up (cold code).
        let [at, n] = [readyAt, 0];
        const parts = readings.map(([t, m]) => {
          const part = `${((t - readyAt!) / 1000).toFixed(1)}s:${Math.round(((m - n) * 1000) / (t - at))}/s`;
          [at, n] = [t, m];
          return part;
        });
        log(`diagnose: ${what}: creates per second along the window: ${parts.join(' ')}`);
      }
      const listed = await count(api, paths.deployments(namespace));
      if (listed !== N)
        throw new Error(`${what}: the controller reports ${N} creates, the namespace holds ${listed}`);
      const fromSpawnS = (end - t1) / 1000;
      const fromReadyS = readyAt === undefined ? undefined : (end - readyAt) / 1000;
      log(
        `${what}: ${N} Deployments in ${fromSpawnS.toFixed(1)} s from spawn, ${fromReadyS?.toFixed(2) ?? '?'} s from ready`,
      );
      return { child: c, port, fromReadyS, fromSpawnS, windowCpu };
    }

    // The tries, in the order D C C D D C ...: a 2-core machine is noisy (the same phase differs by 10-30% from one run
    // to the next, in dips that last a few hundred ms), so each side gets T tries spread over the run, and the
    // fastest of each is compared. (Three tries each while a phase took ~3 minutes; five since the namespace of a
    // phase is deleted after it, which takes ~30 s.) Each try is a fresh process in a namespace of its own: a controller on fresh
    // triggers, or the direct client (bench/controller-direct.lib.ts).
    const directS: number[] = [];
    const directCpuS: number[] = [];
    const runs: ControllerRun[] = [];
    let settledWrites = 0;
    let resyncWrites = 0;
    let mem = { rss: 0, hwm: 0 };
    const order = Array.from({ length: TRIES }, (_, i) =>
      i % 2 === 0 ? (['direct', 'controller'] as const) : (['controller', 'direct'] as const),
    ).flat();
    for (const [i, side] of order.entries()) {
      const ns = `bench-${i + 1}-${side}-${suffix}`;
      namespaces.push(ns);
      await api.request('POST', '/api/v1/namespaces', { body: { metadata: { name: ns } } });
      if (side === 'direct') {
        const d = await direct(ns, `direct, try ${directS.length + 1}`);
        directS.push(d.seconds);
        directCpuS.push(d.cpuSeconds);
        continue;
      }
      const what = `controller, try ${runs.length + 1}`;
      const run = await controllerPhase(ns, what);
      runs.push(run);
      if (runs.length === 1) {
        // The first controller: settle (statuses written), then one full resync, then the RSS holding N triggers
        // and N Deployments.
        const reconciles = () => metric(run.port, /^kpt_controller_reconciles_total\{/);
        await diag?.start(`${what}, settling`, { controller: run.child.pid });
        settledWrites = await settle(run.port);
        await diag?.end(`${what}, settling`, { controller: run.child.pid });
        const before = await writesOf(run.port);
        const r0 = await reconciles();
        while ((await reconciles()) < r0 + N) await sleep(500);
        resyncWrites = (await writesOf(run.port)) - before;
        mem = rssMiB(run.child.pid!);
        log(`resync: ${resyncWrites} writes`);
      } else await settle(run.port);
      await stop(run.child);
      await retire(ns, what);
    }
    const directRate = N / Math.min(...directS);
    const fromReady = runs.map((r) => r.fromReadyS).filter((x): x is number => x !== undefined);
    const best = runs.reduce((a, b) => (b.fromSpawnS < a.fromSpawnS ? b : a));
    const ctlRate = N / best.fromSpawnS;
    const ratio = ctlRate / directRate;
    for (const [i, seconds] of directS.entries())
      figures.push({
        name: `Deployments/s, direct try ${i + 1} (kubeapi.ts, ${W} in flight)`,
        value: N / seconds,
        unit: 'Deployments/s',
      });
    runs.forEach((r, i) => {
      if (r.fromReadyS !== undefined)
        figures.push({
          name: `Deployments/s, controller try ${i + 1}, caches synced to last Deployment (${W} workers)`,
          value: N / r.fromReadyS,
          unit: 'Deployments/s',
        });
    });
    if (fromReady.length === runs.length) {
      const rate = N / Math.min(...fromReady);
      figures.push({
        name: `Deployments/s, controller, ${N} triggers, caches synced to last Deployment (${W} workers, fastest of ${runs.length} tries)`,
        value: rate,
        unit: 'Deployments/s',
        limit: directRate,
        limitName: `direct creation${pulsarAdmin ? ' with each subscription beside it' : ''}, same client, ${W} in flight, same API server, same run (fastest of ${directS.length} tries)`,
        ratio: rate / directRate,
        goal: 'ratio >= 0.8',
        ok: rate / directRate >= 0.8,
      });
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const cpu = runs.map((r) => r.windowCpu / r.fromReadyS!);
      figures.push({
        name: 'controller CPU while creating (information: share of one core, caches synced to last Deployment, mean of runs)',
        value: mean(cpu),
        unit: 'cores',
      });
      // CPU per Deployment created, the controller's next to the direct client's (same HTTP client, same bodies): the
      // difference is what the controller does besides sending the creates (render, reconcile, its watch), and it is
      // taken from the same 2 cores as the API server's.
      const ctlMs = mean(runs.map((r) => r.windowCpu)) * (1000 / N);
      const directMs = mean(directCpuS) * (1000 / N);
      figures.push({
        name: 'CPU per Deployment created (information: controller, mean of runs)',
        value: ctlMs,
        unit: 'ms',
        limit: directMs,
        limitName: 'direct client, same HTTP client and bodies (mean of runs)',
        ratio: ctlMs / directMs,
      });
    }
    figures.push({
      name: `Deployments/s, controller, from the process spawn (information: + start-up and lists)`,
      value: ctlRate,
      unit: 'Deployments/s',
      limit: directRate,
      ratio,
    });
    figures.push(
      {
        name: `writes to settle ${N} new triggers (Deployment + status each)`,
        value: settledWrites,
        unit: 'writes',
      },
      {
        name: `writes during a resync of ${N} unchanged triggers`,
        value: resyncWrites,
        unit: 'writes',
        limit: 0,
        goal: '0 writes',
        ok: resyncWrites === 0,
      },
      {
        name: `controller RSS with ${N} triggers and ${N} Deployments cached (${typescript ? 'TypeScript sources' : 'bundled, as the image'})`,
        value: Math.round(mem.rss),
        unit: 'MiB',
        limit: 150,
        limitName: 'budget',
        ratio: mem.rss / 150,
        goal: '< 150 MiB',
        ok: mem.rss < 150,
      },
      {
        name: 'controller peak RSS (VmHWM) over the run',
        value: Math.round(mem.hwm),
        unit: 'MiB',
        limit: 150,
        limitName: 'budget',
        ratio: mem.hwm / 150,
        goal: '< 150 MiB',
        ok: mem.hwm < 150,
      },
    );
    process.stdout.write(
      `${'figure'.padEnd(78)} ${'value'.padStart(9)} ${'limit'.padStart(9)} ${'ratio'.padStart(6)}  goal\n`,
    );
    for (const f of figures) {
      const v = f.value >= 100 ? f.value.toFixed(0) : f.value.toFixed(1);
      const l = f.limit === undefined ? '-' : f.limit >= 100 ? f.limit.toFixed(0) : f.limit.toFixed(1);
      process.stdout.write(
        `${f.name.padEnd(78)} ${v.padStart(9)} ${l.padStart(9)} ${(f.ratio === undefined ? '-' : f.ratio.toFixed(2)).padStart(6)}  ${f.goal ?? ''}${f.ok === undefined ? '' : f.ok ? ' (met)' : ' (NOT met)'}\n`,
      );
    }
    for (const f of figures) process.stdout.write(`${BENCH_PREFIX}${JSON.stringify(f)}\n`);
  } finally {
    for (const c of children)
      if (c.exitCode === null) {
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        await exited;
      }
    rmSync(compiled, { recursive: true, force: true });
    if (k) await k.stop();
    else
      for (const ns of namespaces)
        await api.request('DELETE', `/api/v1/namespaces/${ns}`).catch(() => undefined);
    await api.close();
  }
}

main().catch((e) => {
  process.stderr.write(`bench/controller.ts: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
