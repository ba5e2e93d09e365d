// The dispatcher's own cost per message, without Pulsar (run by hand, not by `make bench`): the real runner
// (src/dispatcher/runner.ts) with its real HTTP client posting to the benchmark's function (a worker thread), fed by
// an in-memory source that hands out N messages shaped like pulsar-source.ts's as fast as the runner takes them and
// counts acks. Prints msg/s, CPU µs per message (this process, function thread included: see the baseline) and GC
// (count, time). Flags for V8 go on the command line (node --max-semi-space-size=... bench/dispatcher/hot-path.ts).
//   node bench/dispatcher/hot-path.ts [--messages N] [--concurrency C] [--size B] [--ordering none|key|strict]

import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { PerformanceObserver } from 'node:perf_hooks';
import { tuningFor } from '../../src/dispatcher/app.ts';
import { createFunctionClient } from '../../src/dispatcher/http.ts';
import { createLogger } from '../../src/dispatcher/log.ts';
import { DispatcherMetrics } from '../../src/dispatcher/metrics.ts';
import { DEFAULT_RETRY, DEFAULT_STATUS_ACTIONS, type OrderingMode } from '../../src/dispatcher/policy.ts';
import type { MessageSource } from '../../src/dispatcher/ports.ts';
import { buildHeaders, type RequestContext, type SourceMessage } from '../../src/dispatcher/request.ts';
import { Dispatcher } from '../../src/dispatcher/runner.ts';
import { FunctionWorker } from './function-worker.ts';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const N = Number(arg('messages', '100000'));
const C = Number(arg('concurrency', '32'));
const SIZE = Number(arg('size', '1024'));
const ORDERING = arg('ordering', 'key') as OrderingMode;
/** --raw: the same HTTP client posting the same bodies and headers at the same concurrency, no runner. */
const RAW = process.argv.includes('--raw');

class MemorySource implements MessageSource {
  readonly #frame = Buffer.alloc(SIZE + 64, 0x61);
  next = 0;
  acked = 0;
  #onDone: (() => void) | undefined;
  done = new Promise<void>((resolve) => {
    this.#onDone = resolve;
  });
  #closed: (() => void) | undefined;
  async receive(): Promise<SourceMessage | undefined> {
    const i = this.next++;
    if (i >= N) {
      return new Promise((resolve) => {
        this.#closed = () => resolve(undefined);
      });
    }
    return {
      id: `${1000 + (i >> 10)}:${i & 1023}:-1:-1`,
      payload: this.#frame.subarray(32, 32 + SIZE),
      key: undefined,
      properties: {},
      eventTime: undefined,
      publishTime: Date.now(),
      redeliveryCount: 0,
      topic: 'persistent://public/default/bench',
    };
  }
  async ack(): Promise<void> {
    if (++this.acked === N) this.#onDone?.();
  }
  release(): void {}
  isReady(): boolean {
    return true;
  }
  async close(): Promise<void> {
    this.#closed?.();
  }
}

const REQUEST: RequestContext = {
  triggerName: 'bench',
  triggerNamespace: 'default',
  timezone: 'UTC',
  contentType: { kind: 'auto' },
  eventFormat: 'kubeless',
};

const fnWorker = new FunctionWorker();
await fnWorker.start();
const tuning = tuningFor(C);

async function run(n: number): Promise<{ rate: number; cpuUs: number; gcCount: number; gcMs: number }> {
  const source = new MemorySource();
  const fn = createFunctionClient({ url: fnWorker.url, connections: C, timeoutMs: 180_000 });
  const d = new Dispatcher(
    {
      trigger: 'default/bench',
      topic: 'persistent://public/default/bench',
      subscription: 'bench',
      request: REQUEST,
      statusActions: DEFAULT_STATUS_ACTIONS,
      retry: DEFAULT_RETRY,
      lanes: {
        ordering: ORDERING,
        concurrency: C,
        maxHeld: tuning.maxHeld,
        maxParkedPerKey: tuning.maxParkedPerKey,
        overflowMemoryMs: 60_000,
        maxOverflowMemory: 10_000,
      },
      shutdownGraceMs: 5000,
    },
    {
      source,
      openDeadLetter: () => Promise.reject(new Error('no dead letters in this benchmark')),
      fn,
      metrics: new DispatcherMetrics({ defaultMetrics: false }).forTrigger('default/bench'),
      log: createLogger('warn'),
    },
  );
  let gcCount = 0;
  let gcMs = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcCount++;
      gcMs += e.duration;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  if (RAW) {
    const headers = buildHeaders((await source.receive())!, REQUEST);
    const payload = Buffer.alloc(SIZE, 0x61);
    let next = 0;
    await Promise.all(
      Array.from({ length: C }, async () => {
        while (next < N) {
          next++;
          await fn.post(payload, headers);
        }
      }),
    );
  } else {
    void d.start();
    await source.done;
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  obs.disconnect();
  await d.stop(1000);
  void n;
  return { rate: N / seconds, cpuUs: (cpu.user + cpu.system) / N, gcCount, gcMs };
}

await run(Math.min(N, 10_000)); // warm-up (JIT, connections)
// --alloc FILE: V8's sampling heap profiler over the measured run, counting what the GC collected too (every
// allocation, not only what is still alive); FILE is a .heapprofile for Chrome DevTools.
const allocFile = process.argv.includes('--alloc') ? arg('alloc', 'hot-path.heapprofile') : undefined;
const session = allocFile ? new Session() : undefined;
const post = (method: string, params?: object) =>
  new Promise<unknown>((resolve, reject) =>
    session!.post(method, params, (err, res) => (err ? reject(err) : resolve(res))),
  );
if (session) {
  session.connect();
  await post('HeapProfiler.startSampling', {
    samplingInterval: 1024,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
}
const r = await run(N);
if (session && allocFile) {
  const { profile } = (await post('HeapProfiler.stopSampling')) as { profile: unknown };
  writeFileSync(allocFile, JSON.stringify(profile));
}
console.log(
  `${RAW ? 'raw HTTP' : 'hot path'}: ${N} × ${SIZE} B, concurrency ${C}, ordering ${ORDERING}, flags ${JSON.stringify(process.execArgv.join(' '))}: ` +
    `${Math.round(r.rate)} msg/s, ${r.cpuUs.toFixed(1)} µs CPU/msg (process), GC ${r.gcCount} × (${Math.round(r.gcMs)} ms), ` +
    `peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(1)} MiB`,
);
await fnWorker.stop();
process.exit(0);
