// `make fuzz`: the Pulsar frame decoder on KPT_FUZZ_FRAMES (default 1,000,000) random and mutated frames
// (test/support/frame-fuzz.ts, shared with the shorter CI run in test/unit/pulsar/fuzz.test.ts). Reports how many
// ran, how each ended (decoded, flagged corrupt, refused with which code, incomplete), the time, and the decoder's
// heap; exits 1 on any other exception, on a hang, or on heap growth, printing the input (seed, index, recipe,
// bytes) that reproduces it. KPT_FUZZ_SEED repeats a run.
//
// The inputs run in a worker thread; the main thread is the watchdog: the worker stores the index of the input it
// is on in shared memory before each one, so an input that never returns is caught and named. The heap is
// measured after a full GC (node --expose-gc) at checkpoints: the first after a tenth of the run is the
// baseline, the last must not exceed it by more than HEAP_GROWTH_LIMIT.

import { getHeapStatistics } from 'node:v8';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { describeFinding, type Finding, type FuzzStats, runFuzz } from '../test/support/frame-fuzz.ts';

const MiB = 2 ** 20;
/** Inputs between two heap measurements and progress reports. */
const CHECKPOINT = 50_000;
/** No progress on one input for this long is a hang. */
const STALL_MS = Number(process.env.KPT_FUZZ_STALL_SECONDS ?? 10) * 1000;
const HEAP_GROWTH_LIMIT = 16 * MiB;

interface Checkpoint {
  type: 'checkpoint';
  done: number;
  stats: FuzzStats;
  /** Heap used plus external memory after a full GC, bytes. */
  heap: number;
}

type FromWorker = Checkpoint | { type: 'finding'; finding: Finding; stats: FuzzStats };

interface Job {
  seed: number;
  frames: number;
  progress: SharedArrayBuffer;
}

function heapAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc (make fuzz does)');
  gc();
  const h = getHeapStatistics();
  return h.used_heap_size + h.external_memory;
}

function work(job: Job): void {
  const progress = new Int32Array(job.progress);
  const onProgress = (i: number) => Atomics.store(progress, 0, i);
  const stats: FuzzStats = { ran: 0, results: {} };
  for (let from = 0; from < job.frames; from += CHECKPOINT) {
    const to = Math.min(job.frames, from + CHECKPOINT);
    const finding = runFuzz(job.seed, from, to, stats, onProgress);
    if (finding) {
      parentPort!.postMessage({ type: 'finding', finding, stats } satisfies FromWorker);
      return;
    }
    parentPort!.postMessage({
      type: 'checkpoint',
      done: to,
      stats,
      heap: heapAfterGc(),
    } satisfies FromWorker);
  }
}

function printFinding(kind: string, f: Finding): void {
  process.stderr.write(
    `\nFINDING (${kind}) at input ${f.index} of seed ${f.seed}\n` +
      `  recipe: ${f.recipe}\n  bytes:  ${f.hex}\n  error:  ${f.error}\n` +
      `  reproduce: fuzzInput(${f.seed}, ${f.index}) from test/support/frame-fuzz.ts, then runInput()\n`,
  );
}

function summary(stats: FuzzStats, seconds: number): string {
  const r = stats.results;
  const refused = Object.entries(r)
    .filter(([k]) => k.startsWith('refused '))
    .map(([k, v]) => `${v} ${k.slice('refused '.length)}`);
  const total = Object.entries(r)
    .filter(([k]) => k.startsWith('refused '))
    .reduce((n, [, v]) => n + v, 0);
  return [
    `frames:         ${stats.ran}`,
    `decoded:        ${r.decoded ?? 0} (every frame parsed, batches walked)`,
    `flagged:        ${r.corrupt ?? 0} corrupt (checksum or metadata; the frame's command kept), ${r['batch refused'] ?? 0} with an unreadable batch`,
    `refused:        ${total} with an expected code (${refused.join(', ') || 'none'})`,
    `incomplete:     ${r.incomplete ?? 0} (the decoder waits for more bytes)`,
    `time:           ${seconds.toFixed(1)} s (${Math.round(stats.ran / seconds)} frames/s)`,
  ].join('\n');
}

async function main(): Promise<number> {
  const frames = Number(process.env.KPT_FUZZ_FRAMES ?? 1_000_000);
  const seed = Number(process.env.KPT_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));
  if (!Number.isInteger(frames) || frames <= 0 || frames >= 2 ** 31)
    throw new Error(`bad KPT_FUZZ_FRAMES ${frames}`);
  process.stdout.write(
    `fuzzing the frame decoder: ${frames} frames, seed ${seed} (KPT_FUZZ_SEED=${seed} repeats it)\n`,
  );
  const progress = new SharedArrayBuffer(4);
  const seen = new Int32Array(progress);
  const started = performance.now();
  const worker = new Worker(new URL(import.meta.url), {
    workerData: { seed, frames, progress } satisfies Job,
  });
  let last: Checkpoint | undefined;
  let baseline: Checkpoint | undefined;

  const outcome = await new Promise<number>((resolve) => {
    let lastIndex = -1;
    let lastMove = performance.now();
    const watchdog = setInterval(() => {
      const i = Atomics.load(seen, 0);
      if (i !== lastIndex) {
        lastIndex = i;
        lastMove = performance.now();
        return;
      }
      if (performance.now() - lastMove < STALL_MS) return;
      clearInterval(watchdog);
      void worker.terminate();
      printFinding('hang', describeFinding(seed, i, new Error(`no progress for ${STALL_MS / 1000} s`)));
      resolve(1);
    }, 500);
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'finding') {
        clearInterval(watchdog);
        printFinding('exception', m.finding);
        process.stdout.write(`${summary(m.stats, (performance.now() - started) / 1000)}\n`);
        resolve(1);
        return;
      }
      last = m;
      if (!baseline && m.done >= frames / 10) baseline = m;
      if (m.done % (CHECKPOINT * 4) === 0 || m.done === frames) {
        process.stdout.write(
          `  ${m.done} frames, heap after GC ${(m.heap / MiB).toFixed(1)} MiB, ${((performance.now() - started) / 1000).toFixed(0)} s\n`,
        );
      }
      if (m.done === frames) {
        clearInterval(watchdog);
        resolve(0);
      }
    });
    worker.on('error', (error) => {
      clearInterval(watchdog);
      printFinding('worker died', describeFinding(seed, Atomics.load(seen, 0), error));
      resolve(1);
    });
  });
  await worker.terminate();
  if (outcome !== 0 || !last) return 1;
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`${summary(last.stats, seconds)}\n`);
  const base = baseline ?? last;
  const growth = last.heap - base.heap;
  process.stdout.write(
    `heap:           ${(base.heap / MiB).toFixed(1)} MiB after ${base.done} frames, ${(last.heap / MiB).toFixed(1)} MiB at the end (limit +${HEAP_GROWTH_LIMIT / MiB} MiB)\n`,
  );
  if (growth > HEAP_GROWTH_LIMIT) {
    process.stderr.write(`FINDING (memory): the heap grew by ${(growth / MiB).toFixed(1)} MiB\n`);
    return 1;
  }
  process.stdout.write('no findings\n');
  return 0;
}

if (isMainThread) {
  process.exitCode = await main();
} else {
  work(workerData as Job);
}
