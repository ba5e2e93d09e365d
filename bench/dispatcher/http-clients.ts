// Compares HTTP clients for the dispatcher's function requests (run by hand, not by `make bench`):
//   node bench/dispatcher/http-clients.ts [--messages N] [--concurrency C] [--size B] [--runs R]
// Each client runs in its own child process (with KPT_DISPATCHER_NODE_OPTIONS, default the Deployment's heap
// flags, as NODE_OPTIONS), posts the same N bodies with the same ~12 headers at concurrency C over C keep-alive
// connections to the same function (a worker thread of this process), and reports msg/s, CPU per request
// (user + system of the child), GC (count and time, from perf_hooks) and peak RSS. Clients:
//   undici-request  Pool (pipelining 1) .request() + body.dump(): what http.ts did before
//   undici-dispatch Pool (pipelining 1) .dispatch() with one small handler object per request
//   http.ts         src/dispatcher/http.ts as it is now
//   node-http       node:http request() with a keep-alive Agent, maxSockets = C

import { spawn } from 'node:child_process';
import http from 'node:http';
import { PerformanceObserver } from 'node:perf_hooks';
import { Pool } from 'undici';
import { createFunctionClient } from '../../src/dispatcher/http.ts';
import { FunctionWorker } from './function-worker.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const N = arg('messages', 100_000);
const C = arg('concurrency', 32);
const SIZE = arg('size', 1024);
const RUNS = arg('runs', 3);
const CLIENTS = ['undici-request', 'undici-dispatch', 'http.ts', 'node-http'] as const;
type ClientName = (typeof CLIENTS)[number];

const HEADERS: Record<string, string> = {
  'content-type': 'application/x-www-form-urlencoded',
  'event-id': '12345:678:-1:-1',
  'event-time': '2025-01-01T00:00:00.000Z',
  'event-namespace': 'default',
  'event-name': 'bench',
  'event-type': 'application/x-www-form-urlencoded',
  'event-topic': 'persistent://public/default/bench-dispatcher',
  'pulsar-message-id': '12345:678:-1:-1',
  'pulsar-redelivery-count': '0',
  'pulsar-publish-time': '2025-01-01T00:00:00.000Z',
};

type Post = () => Promise<number>;

function client(name: ClientName, url: URL, body: Buffer): { post: Post; close(): Promise<void> } {
  switch (name) {
    case 'undici-request': {
      const pool = new Pool(url.origin, { connections: C, pipelining: 1 });
      return {
        post: async () => {
          const res = await pool.request({ path: '/', method: 'POST', headers: HEADERS, body });
          await res.body.dump();
          return res.statusCode;
        },
        close: () => pool.close(),
      };
    }
    case 'undici-dispatch': {
      const pool = new Pool(url.origin, { connections: C, pipelining: 1 });
      return {
        post: () =>
          new Promise<number>((resolve, reject) => {
            let status = 0;
            pool.dispatch(
              { path: '/', method: 'POST', headers: HEADERS, body },
              {
                onConnect() {},
                onHeaders(s: number) {
                  status = s;
                  return true;
                },
                onData() {
                  return true;
                },
                onComplete() {
                  resolve(status);
                },
                onError: reject,
              },
            );
          }),
        close: () => pool.close(),
      };
    }
    case 'http.ts': {
      const fn = createFunctionClient({ url: url.href, connections: C, timeoutMs: 180_000 });
      return {
        post: async () => {
          const r = await fn.post(body, HEADERS);
          return r.outcome.kind === 'status' ? r.outcome.status : 0;
        },
        close: () => fn.close(),
      };
    }
    case 'node-http': {
      const agent = new http.Agent({ keepAlive: true, maxSockets: C });
      const headers = { ...HEADERS, 'content-length': String(body.byteLength) };
      return {
        post: () =>
          new Promise<number>((resolve, reject) => {
            const req = http.request(
              { host: url.hostname, port: url.port, path: '/', method: 'POST', headers, agent },
              (res) => {
                res.on('end', () => resolve(res.statusCode ?? 0));
                res.on('error', reject);
                res.resume();
              },
            );
            req.on('error', reject);
            req.end(body);
          }),
        close: async () => agent.destroy(),
      };
    }
  }
}

async function drive(post: Post, n: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next < n) {
        next++;
        if ((await post()) !== 200) throw new Error('http-clients: the function did not answer 200');
      }
    }),
  );
}

async function child(name: ClientName, url: string): Promise<void> {
  const c = client(name, new URL(url), Buffer.alloc(SIZE, 0x61));
  await drive(c.post, Math.min(N, 5000));
  let gcCount = 0;
  let gcMs = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcCount++;
      gcMs += e.duration;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 50);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await drive(c.post, N);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage.rss());
  obs.disconnect();
  await c.close();
  process.stdout.write(
    `${JSON.stringify({
      rate: N / seconds,
      cpuUsPerReq: (cpu.user + cpu.system) / N,
      gcCount,
      gcMs,
      peakRssMiB: peak / 2 ** 20,
    })}\n`,
  );
}

async function parent(): Promise<void> {
  const nodeOptions =
    process.env.KPT_DISPATCHER_NODE_OPTIONS ?? '--max-semi-space-size=4 --max-old-space-size=128';
  const fn = new FunctionWorker();
  await fn.start();
  const results = new Map<
    ClientName,
    { rate: number; cpuUsPerReq: number; gcCount: number; gcMs: number; peakRssMiB: number }[]
  >();
  for (let run = 0; run < RUNS; run++) {
    for (const name of CLIENTS) {
      const p = spawn(
        process.execPath,
        [import.meta.filename, '--child', name, fn.url, ...process.argv.slice(2)],
        {
          env: { ...process.env, NODE_OPTIONS: nodeOptions },
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let out = '';
      p.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      const code = await new Promise<number | null>((resolve) => p.on('close', resolve));
      if (code !== 0) throw new Error(`http-clients: ${name} exited ${code}`);
      const r = JSON.parse(out.trim().split('\n').pop()!);
      results.set(name, [...(results.get(name) ?? []), r]);
      console.log(
        `run ${run + 1} ${name.padEnd(16)} ${Math.round(r.rate)} msg/s  ${r.cpuUsPerReq.toFixed(1)} µs CPU/req  ` +
          `GC ${r.gcCount} × (${Math.round(r.gcMs)} ms)  peak RSS ${r.peakRssMiB.toFixed(1)} MiB`,
      );
    }
  }
  await fn.stop();
  console.log(
    `\n${N} × ${SIZE} B, concurrency ${C}, NODE_OPTIONS=${JSON.stringify(nodeOptions)}: ranges over ${RUNS} runs`,
  );
  const range = (xs: number[], d = 0) => `${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)}`;
  for (const [name, rs] of results) {
    console.log(
      `  ${name.padEnd(16)} ${range(rs.map((r) => r.rate)).padEnd(14)} msg/s  ${range(
        rs.map((r) => r.cpuUsPerReq),
        1,
      ).padEnd(11)} µs CPU/req  ` +
        `GC ${range(rs.map((r) => r.gcCount))}  peak RSS ${range(
          rs.map((r) => r.peakRssMiB),
          1,
        )} MiB`,
    );
  }
}

const ci = process.argv.indexOf('--child');
if (ci > 0) await child(process.argv[ci + 1] as ClientName, process.argv[ci + 2]!);
else await parent();
