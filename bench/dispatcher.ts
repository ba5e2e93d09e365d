// Dispatcher benchmark against the real Pulsar (make env-up; eval "$(make -s env)"). Not a test: it prints figures.
//  1. raw consume limit: our Pulsar client reads the N pre-produced messages and acks each at once, no HTTP.
//  2. raw HTTP limit: the dispatcher's HTTP client (undici pool) posts the same N bodies at the same concurrency
//     to the same function, no Pulsar.
//  3. dispatcher: `kubeless-pulsar-trigger dispatcher` (a child process, as in a pod) delivers the N messages.
//     Printed with its ratio to the smaller of the two limits (goal ≥ 0.7).
//  4. latency from publish to the function at a steady rate (goal p99 < 5 ms on loopback).
//  5. dispatcher RSS idle and at full load (goals < 64 MiB and < 128 MiB).
// The function is a minimal HTTP server answering 200, in a worker thread (its own event loop).
// Options: --messages N (200000), --size BYTES (1024), --concurrency C (32), --rate R (1000), --seconds S (10).

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { createFunctionClient } from '../src/dispatcher/http.ts';
import { PulsarClient } from '../src/pulsar/index.ts';
import { pulsarPlain } from '../test/support/env.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const N = arg('messages', 200_000);
const SIZE = arg('size', 1024);
const C = arg('concurrency', 32);
const RATE = arg('rate', 1000);
const SECONDS = arg('seconds', 10);
const root = join(import.meta.dirname, '..');
const pulsar = pulsarPlain();
const suffix = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
const now = () => performance.timeOrigin + performance.now();

// --- the function: a worker thread answering 200, counting requests, measuring latency from a stamp in the body

const FUNCTION_SOURCE = `
const { parentPort } = require('node:worker_threads');
const http = require('node:http');
let count = 0;
let latencies = [];
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    count++;
    const body = Buffer.concat(chunks);
    // Latency probes start with "T" and a timestamp (ms since the epoch, fractional).
    if (body[0] === 0x54) latencies.push(performance.timeOrigin + performance.now() - Number(body.subarray(1, 24).toString()));
    res.writeHead(200, { 'content-length': '0' });
    res.end();
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
parentPort.on('message', (m) => {
  if (m === 'count') parentPort.postMessage({ count });
  if (m === 'latencies') { parentPort.postMessage({ latencies }); latencies = []; }
});
`;

class FunctionWorker {
  readonly worker = new Worker(FUNCTION_SOURCE, { eval: true });
  port = 0;
  async start(): Promise<void> {
    this.port = await new Promise<number>((resolve) =>
      this.worker.once('message', (m: { port: number }) => resolve(m.port)),
    );
  }
  ask<T>(what: 'count' | 'latencies'): Promise<T> {
    return new Promise((resolve) => {
      this.worker.once('message', (m: T) => resolve(m));
      this.worker.postMessage(what);
    });
  }
  async count(): Promise<number> {
    return (await this.ask<{ count: number }>('count')).count;
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}/`;
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => Promise<boolean>, limitMs: number, what: string): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > limitMs) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(20);
  }
}

function dispatcherChild(topic: string, subscription: string, fnUrl: string, port: number) {
  const proc = spawn(process.execPath, [join(root, 'bin/kubeless-pulsar-trigger.js'), 'dispatcher'], {
    env: {
      PATH: process.env.PATH ?? '',
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
      // To compare V8 heap settings: KPT_DISPATCHER_NODE_OPTIONS="--max-semi-space-size=1".
      ...(process.env.KPT_DISPATCHER_NODE_OPTIONS ? { NODE_OPTIONS: process.env.KPT_DISPATCHER_NODE_OPTIONS } : {}),
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  return { proc, exited };
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

async function main(): Promise<void> {
  const fn = new FunctionWorker();
  await fn.start();
  const client = new PulsarClient({ serviceUrl: pulsar.serviceUrl });
  const topic = `persistent://public/default/bench-dispatcher-${suffix}`;

  // Subscriptions first, at the start, so both runs read the same pre-produced messages.
  for (const sub of ['raw', 'dispatcher']) {
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

  // 1. raw consume limit
  const consumer = await client.subscribe({
    topic,
    subscription: 'raw',
    subscriptionType: 'Shared',
    receiverQueueSize: 1000,
  });
  t0 = now();
  for (let i = 0; i < N; i++) {
    const m = await consumer.receive();
    void consumer.ack(m);
  }
  const consumeRate = N / ((now() - t0) / 1000);
  await consumer.close();

  // 2. raw HTTP limit: same client, same bodies, same concurrency
  const http = createFunctionClient({ url: fn.url, connections: C, timeoutMs: 180_000 });
  const headers = { 'content-type': 'application/x-www-form-urlencoded', 'event-id': '1:2:-1:-1' };
  let next = 0;
  t0 = now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next < N) {
        next++;
        const r = await http.post(payload, headers);
        if (r.outcome.kind !== 'status' || r.outcome.status !== 200)
          throw new Error('bench: function failed');
      }
    }),
  );
  const httpRate = N / ((now() - t0) / 1000);
  await http.close();
  const fnBefore = await fn.count();

  // 3. the dispatcher, as a process
  const port = await freePort();
  const child = dispatcherChild(topic, 'dispatcher', fn.url, port);
  let peakRss = 0;
  const sampler = setInterval(() => {
    try {
      peakRss = Math.max(peakRss, rssMiB(child.proc.pid!));
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

  // 4. latency at a steady rate; 5. idle RSS first, on an empty topic
  const latTopic = `persistent://public/default/bench-latency-${suffix}`;
  const latPort = await freePort();
  const latChild = dispatcherChild(latTopic, 'latency', fn.url, latPort);
  await until(() => ready(latPort), 60_000, 'latency dispatcher ready');
  await sleep(2000);
  let idleRss = 0;
  for (let i = 0; i < 10; i++) {
    idleRss = Math.max(idleRss, rssMiB(latChild.proc.pid!));
    await sleep(100);
  }
  const latProducer = await client.createProducer({ topic: latTopic, batchingMaxMessages: 1 });
  await fn.ask('latencies');
  const total = RATE * SECONDS;
  const started = now();
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / RATE;
    const wait = due - now();
    if (wait > 1) await sleep(wait);
    const stamp = now().toFixed(3).padStart(23, '0');
    sends.push(latProducer.send({ payload: new TextEncoder().encode(`T${stamp}`) }));
  }
  await Promise.all(sends);
  await sleep(1000);
  const { latencies } = await fn.ask<{ latencies: number[] }>('latencies');
  // The first second warms connections and JIT up; it is not the steady state.
  const steady = latencies.slice(RATE).sort((a, b) => a - b);
  await latProducer.close();
  latChild.proc.kill('SIGTERM');
  await latChild.exited;
  await client.close();
  await fn.worker.terminate();

  const limit = Math.min(consumeRate, httpRate);
  const rows: [string, string, string][] = [
    ['raw consume limit (our client, ack at once)', `${fmt(consumeRate)} msg/s`, ''],
    [`raw HTTP limit (undici, ${C} in flight)`, `${fmt(httpRate)} msg/s`, ''],
    [
      'dispatcher',
      `${fmt(dispatcherRate)} msg/s`,
      `ratio ${(dispatcherRate / limit).toFixed(2)} (goal ≥ 0.70)`,
    ],
    [
      `latency publish → function at ${fmt(RATE)} msg/s`,
      `p50 ${pct(steady, 50).toFixed(2)} ms, p99 ${pct(steady, 99).toFixed(2)} ms (${fmt(steady.length)} samples)`,
      'goal p99 < 5 ms',
    ],
    ['dispatcher RSS idle', `${idleRss.toFixed(1)} MiB`, 'goal < 64 MiB'],
    ['dispatcher RSS at full load (peak)', `${peakRss.toFixed(1)} MiB`, 'goal < 128 MiB'],
  ];
  console.log(
    `\ndispatcher benchmark: ${fmt(N)} × ${SIZE} B, concurrency ${C}, ${process.arch}, Node ${process.version}`,
  );
  for (const [what, value, note] of rows) console.log(`  ${what.padEnd(48)} ${value.padEnd(44)} ${note}`);
}

await main();
process.exit(0);
