// `make bench`: runs every benchmark (bench/*.ts, one after the other, so they do not compete for the CPU) against
// the servers testenv/cli.ts started or was pointed at, streams their output as progress, and prints one table.
//
// The line format every benchmark prints on stdout, besides its own human output (one line per figure):
//
//   BENCH {"name":"produce 1 KiB, batched","value":51234,"unit":"msg/s","limit":60211,
//          "limitName":"Java client (pulsar-perf), same broker","ratio":0.85,"goal":"ratio >= 0.8","ok":true}
//
//   name       what was measured (unique within the benchmark)
//   value      the figure (a number)
//   unit       its unit: msg/s, MiB/s, ms, MiB, writes, ...
//   limit      optional: the limit or peer figure it is compared with, measured in the same run (a Java client,
//              the function's own capacity, the API server's raw rate...), in the same unit
//   limitName  optional: what `limit` is
//   ratio      optional: value / limit as the benchmark defines it (for "lower is better" figures, say so in goal)
//   goal       optional: the target, in words ("ratio >= 0.8", "<= 50 ms p99", "0 writes")
//   ok         optional: whether the goal was met in this run
//
// The prefix is exactly "BENCH " followed by one JSON object on the same line. Anything else is progress.

import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const BENCH_PREFIX = 'BENCH ';

export interface BenchFigure {
  name: string;
  value: number;
  unit: string;
  limit?: number | undefined;
  limitName?: string | undefined;
  ratio?: number | undefined;
  goal?: string | undefined;
  ok?: boolean | undefined;
}

export interface BenchRun {
  file: string;
  code: number;
  seconds: number;
  figures: BenchFigure[];
  /** Lines that started with the prefix but did not parse. */
  malformed: string[];
}

/** Parses one output line; undefined when it is not a BENCH line. */
export function parseBenchLine(line: string): BenchFigure | { malformed: string } | undefined {
  if (!line.startsWith(BENCH_PREFIX)) return undefined;
  try {
    const o = JSON.parse(line.slice(BENCH_PREFIX.length)) as Partial<BenchFigure>;
    if (typeof o.name !== 'string' || typeof o.value !== 'number' || typeof o.unit !== 'string')
      return { malformed: line };
    const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    return {
      name: o.name,
      value: o.value,
      unit: o.unit,
      limit: num(o.limit),
      limitName: str(o.limitName),
      ratio: num(o.ratio) ?? (num(o.limit) ? o.value / o.limit! : undefined),
      goal: str(o.goal),
      ok: typeof o.ok === 'boolean' ? o.ok : undefined,
    };
  } catch {
    return { malformed: line };
  }
}

/** The benchmarks: bench/*.ts files (helpers live in sub-folders or end in .lib.ts). */
export function benchFiles(dir = join(root, 'bench')): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.lib.ts') && !f.endsWith('.d.ts'))
    .sort()
    .map((f) => join('bench', f));
}

function fmtNum(n: number | undefined): string {
  if (n === undefined) return '';
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(3).replace(/\.?0+$/, '') || '0';
}

/** One table for every figure of every benchmark. */
export function formatTable(runs: readonly BenchRun[]): string {
  const header = ['benchmark', 'figure', 'value', 'limit / peer', 'ratio', 'goal', 'met'];
  const rows: string[][] = [];
  for (const r of runs) {
    const bench = r.file.replace(/^bench\//, '').replace(/\.ts$/, '');
    if (r.figures.length === 0)
      rows.push([bench, r.code === 0 ? '(no BENCH lines)' : `FAILED (exit ${r.code})`, '', '', '', '', '']);
    for (const f of r.figures) {
      rows.push([
        bench,
        f.name,
        `${fmtNum(f.value)} ${f.unit}`,
        f.limit === undefined ? '' : `${fmtNum(f.limit)} ${f.unit}${f.limitName ? ` (${f.limitName})` : ''}`,
        f.ratio === undefined ? '' : f.ratio.toFixed(2),
        f.goal ?? '',
        f.ok === undefined ? '' : f.ok ? 'yes' : 'NO',
      ]);
    }
    if (r.code !== 0 && r.figures.length > 0) rows.push([bench, `exited with ${r.code}`, '', '', '', '', '']);
    for (const m of r.malformed) rows.push([bench, `malformed: ${m.slice(0, 60)}`, '', '', '', '', '']);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function runOne(file: string, env: Record<string, string>): Promise<BenchRun> {
  const t0 = Date.now();
  const run: BenchRun = { file, code: 0, seconds: 0, figures: [], malformed: [] };
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const prefix = `[${file}] `;
    const onLines = (buf: { rest: string }, chunk: Buffer, out: NodeJS.WriteStream) => {
      buf.rest += chunk.toString();
      // \r too: progress counters that rewrite their line show up as they go.
      const lines = buf.rest.split(/\r\n|\n|\r/);
      buf.rest = lines.pop() ?? '';
      for (const l of lines) {
        const parsed = parseBenchLine(l);
        if (parsed && 'malformed' in parsed) run.malformed.push(parsed.malformed);
        else if (parsed) run.figures.push(parsed);
        out.write(`${prefix}${l}\n`);
      }
    };
    const so = { rest: '' };
    const se = { rest: '' };
    child.stdout.on('data', (c: Buffer) => onLines(so, c, process.stdout));
    child.stderr.on('data', (c: Buffer) => onLines(se, c, process.stderr));
    // Long benchmarks: say they are still running.
    const ticker = setInterval(() => {
      process.stderr.write(`${prefix}... still running (${Math.round((Date.now() - t0) / 1000)} s)\n`);
    }, 30_000);
    child.on('error', () => {
      run.code = 127;
    });
    child.on('close', (code, signal) => {
      clearInterval(ticker);
      for (const [b, out] of [
        [so, process.stdout],
        [se, process.stderr],
      ] as const) {
        if (b.rest) onLines(b, Buffer.from('\n'), out);
      }
      run.code = run.code || (code ?? (signal ? 128 : 1));
      run.seconds = (Date.now() - t0) / 1000;
      resolve(run);
    });
  });
}

/** The servers a benchmark uses ('node': the kubelet node with the project's images, and KEDA; needs 'kube'). */
export type BenchServer = 'pulsar' | 'kube' | 'node';

/**
 * The servers a benchmark declares on a line `// bench-servers: kube` (or `pulsar`, or both, comma-separated) among
 * its first lines; a benchmark that declares none gets them all.
 */
export function benchServers(file: string): BenchServer[] {
  const head = readFileSync(join(root, file), 'utf8').split('\n', 40).join('\n');
  const m = /^\/\/ bench-servers: ([a-z, ]+?)(?: \(.*\))?$/m.exec(head);
  if (!m) return ['pulsar', 'kube'];
  const named = m[1]!.split(',').map((s) => s.trim());
  return (['pulsar', 'kube', 'node'] as const).filter((s) => named.includes(s));
}

/** Servers started for a group of benchmarks: their variables, and how to stop them. */
export interface BenchServers {
  env: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * Runs every benchmark in turn, grouped by the servers they use: each group gets only its servers, started for it
 * and stopped after it, so that an idle broker (or an API server) does not take CPU from a benchmark that does not
 * use it (the machine has 2 cores). Prints one table; resolves with 0 when every benchmark exited cleanly.
 */
export async function runBenches(
  start: (servers: BenchServer[]) => Promise<BenchServers>,
  only: string[] = [],
): Promise<number> {
  const files = benchFiles().filter((f) => only.length === 0 || only.some((o) => f.includes(o)));
  if (files.length === 0) {
    process.stderr.write('no benchmarks found in bench/\n');
    return 1;
  }
  const groups = new Map<string, string[]>();
  for (const f of files) {
    const key = benchServers(f).join(',');
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  const runs: BenchRun[] = [];
  let n = 0;
  for (const [key, group] of groups) {
    const servers = await start(key.split(',') as BenchServer[]);
    try {
      for (const f of group) {
        process.stderr.write(`\n==> benchmark ${++n}/${files.length}: ${f} (servers: ${key})\n`);
        const r = await runOne(f, servers.env);
        process.stderr.write(
          `<== ${f}: ${r.code === 0 ? 'ok' : `FAILED (exit ${r.code})`} (${r.seconds.toFixed(0)} s, ${r.figures.length} figures)\n`,
        );
        runs.push(r);
      }
    } finally {
      await servers.stop();
    }
  }
  process.stdout.write(`\n${formatTable(runs)}\n`);
  return runs.every((r) => r.code === 0) ? 0 : 1;
}
