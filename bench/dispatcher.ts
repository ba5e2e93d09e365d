// Dispatcher benchmark against the real Pulsar (make env-up; eval "$(make -s env)"). Not a test: it prints figures,
// as a table and as BENCH lines (testenv/bench.ts).
// The two limits run as the dispatcher does, in a child process with the same NODE_OPTIONS (bench/dispatcher/limit.ts),
// the broker up, the same function, timed after warming up as the dispatcher is timed after its first delivery:
//  1. raw consume limit: our Pulsar client reads the N pre-produced messages and acks each at once, no HTTP, with
//     the dispatcher's receiver queue.
//  2. raw HTTP limit: the dispatcher's HTTP client (src/dispatcher/http.ts) posts the same N bodies with the headers
//     the dispatcher builds for them, at the same concurrency, to the same function, no Pulsar.
//  3. dispatcher: `kubeless-pulsar-trigger dispatcher` as it runs in the image (the bundle scripts/build.ts makes,
//     in a temporary dist/, the rendered Deployment's NODE_OPTIONS), a child process, delivers the N messages.
//     Printed with its ratio to the smaller of the two limits (goal ≥ 0.7).
//  4. latency from publish to the function at a steady rate (goal p99 < 5 ms on loopback), next to the raw client's
//     publish → receive latency at the same rate on the same broker: the difference is what the dispatcher adds.
//  5. dispatcher RSS idle and at full load (goals < 64 MiB and < 128 MiB), next to a bare Node process with the
//     same flags (the floor no JavaScript of ours can go under).
// The function is a minimal HTTP server answering 200, in a worker thread (its own event loop) of this process, for
// both the raw HTTP limit and the dispatcher.
// Options: --messages N (200000), --size BYTES (1024), --concurrency C (32), --rate R (1000), --seconds S (10),
// --source (run the TypeScript through Node's type stripping instead of the bundle), --launcher PATH (run that
// launcher, e.g. another build's bin/kubeless-pulsar-trigger.js, instead of building one).
// KPT_DISPATCHER_NODE_OPTIONS replaces the Deployment's NODE_OPTIONS (to compare V8 settings; "" for none).
// bench-servers: pulsar (make bench starts only these for it: testenv/bench.ts)

import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tuningFor } from '../src/dispatcher/app.ts';
import { createFunctionClient } from '../src/dispatcher/http.ts';
import { PulsarClient } from '../src/pulsar/index.ts';
import { DEFAULT_RESOURCES, renderTrigger } from '../src/trigger/render.ts';
import { pulsarPlain } from '../test/support/env.ts';
import { FunctionWorker } from './dispatcher/function-worker.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const N = arg('messages', 200_000);
const SIZE = arg('size', 1024);
const C = arg('concurrency', 32);
const RATE = arg('rate', 1000);
const SECONDS = arg('seconds', 10);
const FROM_SOURCE = process.argv.includes('--source');
// --launcher PATH: run this launcher (another build of the dispatcher) instead of building one, to compare builds.
const LAUNCHER = process.argv.includes('--launcher')
  ? process.argv[process.argv.indexOf('--launcher') + 1]
  : undefined;
const root = join(import.meta.dirname, '..');
const pulsar = pulsarPlain();
const suffix = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
const now = () => performance.timeOrigin + performance.now();

// --- the dispatcher as the image runs it

/**
 * The image's application: bin/ next to dist/ built by scripts/build.ts (the bundles the image runs; the launcher
 * prefers dist/), in a temporary folder so a developer's checkout never gets a stale dist/. Returns the launcher.
 */
async function productionBuild(): Promise<{ launcher: string; remove(): void }> {
  if (LAUNCHER) return { launcher: LAUNCHER, remove() {} };
  if (FROM_SOURCE) return { launcher: join(root, 'bin/kubeless-pulsar-trigger.js'), remove() {} };
  const dir = mkdtempSync(join(tmpdir(), 'kpt-bench-build-'));
  mkdirSync(join(dir, 'bin'));
  copyFileSync(join(root, 'bin/kubeless-pulsar-trigger.js'), join(dir, 'bin/kubeless-pulsar-trigger.js'));
  copyFileSync(join(root, 'package.json'), join(dir, 'package.json'));
  const built = spawn(process.execPath, [join(root, 'scripts/build.ts'), '--outdir', join(dir, 'dist')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const code = await new Promise<number | null>((resolve) => built.on('close', resolve));
  if (code !== 0) throw new Error(`bench: scripts/build.ts failed (exit ${code})`);
  return {
    launcher: join(dir, 'bin/kubeless-pulsar-trigger.js'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** NODE_OPTIONS of the dispatcher container in the Deployment the controller renders with its default resources. */
function deploymentNodeOptions(): string {
  const r = renderTrigger(
    {
      apiVersion: 'kubeless.io/v1',
      kind: 'PulsarTrigger',
      metadata: { name: 'bench', namespace: 'default' },
      spec: {
        pulsar: { topic: 'bench', broker: 'pulsar://127.0.0.1:6650' },
        kubeless: { function: 'http://bench.default:8080' },
      },
    } as Parameters<typeof renderTrigger>[0],
    { dispatcherImage: 'bench', timezone: 'UTC', resources: DEFAULT_RESOURCES },
  );
  if (!r.ok) throw new Error(`bench: rendering a trigger failed: ${r.error.message}`);
  const pod = (r.value.deployment.spec as { template: { spec: { containers: { env?: unknown[] }[] } } })
    .template.spec;
  const env = (pod.containers[0]?.env ?? []) as { name: string; value?: string }[];
  return env.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '';
}

const NODE_OPTIONS = process.env.KPT_DISPATCHER_NODE_OPTIONS ?? deploymentNodeOptions();

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

interface Rss {
  total: number;
  anon: number;
  file: number;
}

function rss(pid: number): Rss {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024;
  return { total: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') + kb('RssShmem') };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => Promise<boolean>, limitMs: number, what: string): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > limitMs) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(20);
  }
}

function dispatcherChild(launcher: string, topic: string, subscription: string, fnUrl: string, port: number) {
  const proc = spawn(process.execPath, [launcher, 'dispatcher'], {
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'production',
      TRIGGER_NAME: 'bench',
      TRIGGER_NAMESPACE: 'default',
      PULSAR_SUBSCRIPTION: subscription,
      PULSAR_BROKER: pulsar.serviceUrl,
      PULSAR_TOPIC: topic,
      PULSAR_INITIAL_POSITION: 'Earliest',
      KUBELESS_FUNCTION: fnUrl,
      DISPATCH_CONCURRENCY: String(C),
      DISPATCHER_PORT: String(port),
      LOG_LEVEL: 'warn',
      ...(NODE_OPTIONS ? { NODE_OPTIONS } : {}),
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  return { proc, exited };
}

/** Runs bench/dispatcher/limit.ts in a child process with the dispatcher's NODE_OPTIONS; its rate in msg/s. */
async function limitChild(args: string[]): Promise<number> {
  const proc = spawn(process.execPath, [join(import.meta.dirname, 'dispatcher/limit.ts'), ...args], {
    env: { PATH: process.env.PATH ?? '', ...(NODE_OPTIONS ? { NODE_OPTIONS } : {}) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
  if (code !== 0) throw new Error(`bench: limit ${args[0]} exited ${code}`);
  return (JSON.parse(out.trim().split('\n').pop()!) as { rate: number }).rate;
}

/** A bare Node process with the same flags, idle: the floor under the dispatcher's own RSS. */
async function bareNodeRss(): Promise<Rss> {
  const proc = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {
    env: { PATH: process.env.PATH ?? '', ...(NODE_OPTIONS ? { NODE_OPTIONS } : {}) },
    stdio: 'ignore',
  });
  await sleep(1500);
  const r = rss(proc.pid!);
  proc.kill('SIGKILL');
  return r;
}

async function ready(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200;
  } catch {
    return false;
  }
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const round = (n: number, digits = 2) => Number(n.toFixed(digits));

/** Publishes RATE probes a second for SECONDS, each stamped with its send time, from a producer without batching. */
async function publishProbes(client: PulsarClient, topic: string): Promise<void> {
  const producer = await client.createProducer({ topic, batchingMaxMessages: 1 });
  const encoder = new TextEncoder();
  const total = RATE * SECONDS;
  const started = now();
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / RATE;
    const wait = due - now();
    if (wait > 1) await sleep(wait);
    const stamp = now().toFixed(3).padStart(23, '0');
    sends.push(producer.send({ payload: encoder.encode(`T${stamp}`) }));
  }
  await Promise.all(sends);
  await producer.close();
}

/** The first second warms connections and JIT up; it is not the steady state. */
const steadyState = (latencies: number[]) => latencies.slice(RATE).sort((a, b) => a - b);

interface Figure {
  name: string;
  value: number;
  unit: string;
  limit?: number;
  limitName?: string;
  ratio?: number;
  goal?: string;
  ok?: boolean;
}

async function main(): Promise<void> {
  const build = await productionBuild();
  const fn = new FunctionWorker();
  await fn.start();
  const client = new PulsarClient({ serviceUrl: pulsar.serviceUrl });
  const topic = `persistent://public/default/bench-dispatcher-${suffix}`;

  // Subscriptions first, at the start, so both runs read the same pre-produced messages.
  for (const sub of ['raw', 'pipeline', 'dispatcher']) {
    const c = await client.subscribe({
      topic,
      subscription: sub,
      subscriptionType: 'Shared',
      initialPosition: 'Earliest',
    });
    await c.close();
  }
  const payload = new Uint8Array(SIZE).fill(0x61);
  process.stdout.write(`producing ${fmt(N)} messages of ${SIZE} B... `);
  const producer = await client.createProducer({ topic, maxPendingMessages: 5000 });
  let t0 = now();
  for (let i = 0; i < N; i += 5000) {
    const sends = [];
    for (let j = i; j < Math.min(N, i + 5000); j++) sends.push(producer.send({ payload }));
    await Promise.all(sends);
  }
  await producer.close();
  process.stdout.write(`${fmt(N / ((now() - t0) / 1000))} msg/s\n`);

  // 1. raw consume limit, 2. raw HTTP limit: child processes with the dispatcher's NODE_OPTIONS
  const consumeRate = await limitChild([
    'consume',
    pulsar.serviceUrl,
    topic,
    'raw',
    String(N),
    String(tuningFor(C).receiverQueueSize),
  ]);
  process.stdout.write(`raw consume: ${fmt(consumeRate)} msg/s\n`);
  const httpRate = await limitChild(['http', fn.url, String(N), String(C), String(SIZE)]);
  process.stdout.write(`raw HTTP: ${fmt(httpRate)} msg/s\n`);
  const headers = { 'content-type': 'application/x-www-form-urlencoded', 'event-id': '1:2:-1:-1' };

  // 2b. reference: consume → POST → ack after the 2xx in this process with the same two clients, C in flight, and
  // nothing else (no lanes, retries, metrics, logs, headers). What both clients cost together on this machine.
  const pipeClient = createFunctionClient({ url: fn.url, connections: C, timeoutMs: 180_000 });
  const pipeConsumer = await client.subscribe({
    topic,
    subscription: 'pipeline',
    subscriptionType: 'Shared',
    receiverQueueSize: 256,
  });
  let taken = 0;
  t0 = now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (taken < N) {
        taken++;
        const m = await pipeConsumer.receive();
        const r = await pipeClient.post(m.payload, headers);
        if (r.outcome.kind !== 'status' || r.outcome.status !== 200)
          throw new Error('bench: function failed');
        void pipeConsumer.ack(m);
      }
    }),
  );
  const pipelineRate = N / ((now() - t0) / 1000);
  await pipeConsumer.close();
  await pipeClient.close();
  const fnBefore = await fn.count();
  process.stdout.write(`bare pipeline: ${fmt(pipelineRate)} msg/s\n`);

  // 3. the dispatcher, as a process
  const port = await freePort();
  const child = dispatcherChild(build.launcher, topic, 'dispatcher', fn.url, port);
  let peakRss = 0;
  const sampler = setInterval(() => {
    try {
      peakRss = Math.max(peakRss, rss(child.proc.pid!).total);
    } catch {}
  }, 50);
  await until(async () => (await fn.count()) > fnBefore, 60_000, 'first delivery');
  t0 = now();
  const first = (await fn.count()) - fnBefore;
  await until(async () => (await fn.count()) - fnBefore >= N, 600_000, 'all delivered');
  const dispatcherRate = (N - first) / ((now() - t0) / 1000);
  clearInterval(sampler);
  child.proc.kill('SIGTERM');
  await child.exited;
  process.stdout.write(`dispatcher: ${fmt(dispatcherRate)} msg/s\n`);

  // 4a. the raw client's publish → receive latency at the same rate, same broker, same producer settings
  const rawLatTopic = `persistent://public/default/bench-raw-latency-${suffix}`;
  const rawLatConsumer = await client.subscribe({
    topic: rawLatTopic,
    subscription: 'raw-latency',
    subscriptionType: 'Shared',
  });
  const rawLatencies: number[] = [];
  const receiving = (async () => {
    for await (const m of rawLatConsumer) {
      rawLatencies.push(now() - Number(Buffer.from(m.payload.subarray(1, 24)).toString()));
      void rawLatConsumer.ack(m);
    }
  })();
  await publishProbes(client, rawLatTopic);
  await sleep(1000);
  await rawLatConsumer.close();
  await receiving;
  const rawSteady = steadyState(rawLatencies);

  // 4b. the dispatcher's publish → function latency; 5. idle RSS first, on an empty topic
  const latTopic = `persistent://public/default/bench-latency-${suffix}`;
  const latPort = await freePort();
  const latChild = dispatcherChild(build.launcher, latTopic, 'latency', fn.url, latPort);
  await until(() => ready(latPort), 60_000, 'latency dispatcher ready');
  await sleep(3000);
  let idle: Rss = { total: 0, anon: 0, file: 0 };
  for (let i = 0; i < 10; i++) {
    const r = rss(latChild.proc.pid!);
    if (r.total > idle.total) idle = r;
    await sleep(100);
  }
  await fn.ask('latencies');
  await publishProbes(client, latTopic);
  await sleep(1000);
  const { latencies } = await fn.ask<{ latencies: number[] }>('latencies');
  const steady = steadyState(latencies);
  latChild.proc.kill('SIGTERM');
  await latChild.exited;
  await client.close();
  await fn.worker.terminate();
  const bare = await bareNodeRss();
  build.remove();

  const limit = Math.min(consumeRate, httpRate);
  const p50 = pct(steady, 50);
  const p99 = pct(steady, 99);
  const rawP50 = pct(rawSteady, 50);
  const rawP99 = pct(rawSteady, 99);
  const how = `${LAUNCHER ? LAUNCHER : FROM_SOURCE ? 'TypeScript (type stripping)' : 'bundled dist/ (scripts/build.ts)'}, NODE_OPTIONS=${JSON.stringify(NODE_OPTIONS)}`;
  const figures: Figure[] = [
    { name: 'raw consume limit', value: round(consumeRate, 0), unit: 'msg/s' },
    { name: 'raw HTTP limit', value: round(httpRate, 0), unit: 'msg/s' },
    {
      name: 'dispatcher throughput',
      value: round(dispatcherRate, 0),
      unit: 'msg/s',
      limit: round(limit, 0),
      limitName: httpRate <= consumeRate ? 'raw HTTP limit' : 'raw consume limit',
      ratio: round(dispatcherRate / limit),
      goal: 'ratio >= 0.7',
      ok: dispatcherRate / limit >= 0.7,
    },
    {
      name: 'bare pipeline (reference)',
      value: round(pipelineRate, 0),
      unit: 'msg/s',
      goal: 'reference: both clients in one process, nothing else',
    },
    {
      name: 'dispatcher vs bare pipeline',
      value: round(dispatcherRate, 0),
      unit: 'msg/s',
      limit: round(pipelineRate, 0),
      limitName: 'bare pipeline (consume → POST → ack, same clients, one process)',
      ratio: round(dispatcherRate / pipelineRate),
      goal: 'reference (what the dispatcher itself costs)',
    },
    {
      name: 'latency p50',
      value: round(p50),
      unit: 'ms',
      limit: round(rawP50),
      limitName: 'raw client publish → receive p50, same broker and rate',
      goal: 'lower is better',
    },
    {
      name: 'latency p99',
      value: round(p99),
      unit: 'ms',
      limit: round(rawP99),
      limitName: 'raw client publish → receive p99, same broker and rate',
      goal: 'p99 < 5 ms (lower is better)',
      ok: p99 < 5,
    },
    {
      name: 'RSS idle',
      value: round(idle.total, 1),
      unit: 'MiB',
      limit: round(bare.total, 1),
      limitName: 'bare Node process, same flags',
      goal: '< 64 MiB (lower is better)',
      ok: idle.total < 64,
    },
    {
      name: 'RSS full load (peak)',
      value: round(peakRss, 1),
      unit: 'MiB',
      goal: '< 128 MiB (lower is better)',
      ok: peakRss < 128,
    },
  ];

  const rows: [string, string, string][] = [
    [
      'raw consume limit (our client, ack at once, no HTTP)',
      `${fmt(consumeRate)} msg/s`,
      'child process, same NODE_OPTIONS, timed from the first message',
    ],
    [
      `raw HTTP limit (http.ts, ${C} in flight, no Pulsar)`,
      `${fmt(httpRate)} msg/s`,
      "child process, same NODE_OPTIONS, function and bodies, the dispatcher's headers, broker up",
    ],
    [
      'dispatcher (child process, timed from its 1st delivery)',
      `${fmt(dispatcherRate)} msg/s`,
      `ratio ${(dispatcherRate / limit).toFixed(2)} to the smaller limit (goal ≥ 0.70)`,
    ],
    [
      'bare pipeline: consume → POST → ack, same clients',
      `${fmt(pipelineRate)} msg/s`,
      `reference; dispatcher/pipeline ${(dispatcherRate / pipelineRate).toFixed(2)}`,
    ],
    [
      `raw client publish → receive at ${fmt(RATE)} msg/s`,
      `p50 ${rawP50.toFixed(2)} ms, p99 ${rawP99.toFixed(2)} ms (${fmt(rawSteady.length)} samples)`,
      'the broker and client floor',
    ],
    [
      `dispatcher publish → function at ${fmt(RATE)} msg/s`,
      `p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms (${fmt(steady.length)} samples)`,
      `goal p99 < 5 ms; adds p50 ${(p50 - rawP50).toFixed(2)} ms`,
    ],
    [
      'dispatcher RSS idle',
      `${idle.total.toFixed(1)} MiB (anon ${idle.anon.toFixed(1)}, file ${idle.file.toFixed(1)})`,
      `goal < 64 MiB; bare Node ${bare.total.toFixed(1)} MiB (anon ${bare.anon.toFixed(1)}, file ${bare.file.toFixed(1)})`,
    ],
    ['dispatcher RSS at full load (peak)', `${peakRss.toFixed(1)} MiB`, 'goal < 128 MiB'],
  ];
  console.log(
    `\ndispatcher benchmark: ${fmt(N)} × ${SIZE} B, concurrency ${C}, ${process.arch}, Node ${process.version}; dispatcher: ${how}`,
  );
  for (const [what, value, note] of rows) console.log(`  ${what.padEnd(52)} ${value.padEnd(46)} ${note}`);
  for (const f of figures) console.log(`BENCH ${JSON.stringify(f)}`);
}

await main();
process.exit(0);
