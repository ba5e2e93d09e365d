// Where the time goes in bench/controller.ts (its --diagnose option): per phase, the CPU each process of the
// control plane used (etcd, kube-apiserver, kube-controller-manager, found by the folder of the kubeconfig in their
// command line), the controller's and this process's, and what the API server did meanwhile from its /metrics:
// requests by verb and resource (with their mean server-side latency), watch events sent by kind (count and
// bytes), etcd requests by operation and type. Printed on stderr; the figures of the benchmark do not change.

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { basename, dirname, join } from 'node:path';
import type { KubeConnection } from '../src/controller/kubeapi.ts';

function cpuSeconds(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** The control plane's processes: those whose command line names the folder the kubeconfig is in. */
export function controlPlanePids(kubeconfig: string): Map<string, number> {
  const dir = dirname(kubeconfig);
  const out = new Map<string, number>();
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      const name = basename(argv[0] ?? '');
      if (!['etcd', 'kube-apiserver', 'kube-controller-manager'].includes(name)) continue;
      if (argv.some((a) => a.includes(dir))) out.set(name, Number(p));
    } catch {
      // gone
    }
  }
  return out;
}

function scrape(conn: KubeConnection, path = '/metrics'): Promise<string> {
  return get(conn, path).then((b) => b.toString('utf8'));
}

function get(conn: KubeConnection, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const token = conn.token();
    const req = request(
      `${conn.server}${path}`,
      {
        ...(conn.ca ? { ca: conn.ca } : {}),
        ...(conn.cert ? { cert: conn.cert } : {}),
        ...(conn.key ? { key: conn.key } : {}),
        headers: token ? { authorization: `Bearer ${token}` } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks)));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

type Series = Map<string, number>;

/** The series we compare, summed over the labels we do not care about. */
function pick(text: string): Series {
  const out: Series = new Map();
  const add = (k: string, v: number) => out.set(k, (out.get(k) ?? 0) + v);
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const m = /^([a-z_:]+)(\{([^}]*)\})? (\S+)/.exec(line);
    if (!m) continue;
    const [, name, , labelText, value] = m;
    const labels: Record<string, string> = {};
    for (const l of (labelText ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[l[1]!] = l[2]!;
    const v = Number(value);
    const res = labels.resource
      ? `${labels.resource}${labels.subresource ? `/${labels.subresource}` : ''}`
      : '';
    switch (name) {
      case 'apiserver_request_total':
        add(`req ${labels.verb} ${res}`, v);
        break;
      case 'apiserver_request_duration_seconds_sum':
        add(`reqsec ${labels.verb} ${res}`, v);
        break;
      case 'apiserver_watch_events_total':
        add(`watchev ${labels.kind ?? labels.resource ?? ''}`, v);
        break;
      case 'apiserver_watch_events_sizes_sum':
        add(`watchbytes ${labels.kind ?? labels.resource ?? ''}`, v);
        break;
      case 'etcd_request_duration_seconds_count':
        add(`etcd ${labels.operation} ${labels.type}`, v);
        break;
      case 'etcd_request_duration_seconds_sum':
        add(`etcdsec ${labels.operation} ${labels.type}`, v);
        break;
      case 'apiserver_admission_controller_admission_duration_seconds_sum':
        add(`admsec ${labels.name} ${labels.operation}`, v);
        break;
      case 'apiserver_admission_controller_admission_duration_seconds_count':
        add(`adm ${labels.name} ${labels.operation}`, v);
        break;
    }
  }
  return out;
}

interface Mark {
  at: number;
  mono: bigint;
  cpu: Map<string, number>;
  series: Series;
}

export class Diagnosis {
  private readonly conn: KubeConnection;
  private readonly pids: Map<string, number>;
  private readonly marks = new Map<string, Mark>();

  constructor(conn: KubeConnection, kubeconfig: string) {
    this.conn = conn;
    this.pids = controlPlanePids(kubeconfig);
    process.stderr.write(`diagnose: processes ${JSON.stringify(Object.fromEntries(this.pids))}\n`);
  }

  private cpu(extra: Record<string, number | undefined>): Map<string, number> {
    const out = new Map<string, number>();
    // The whole machine (all processes, others' too): user+nice+system+irq+softirq+steal of /proc/stat.
    const all = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
    out.set('machine', (all[0]! + all[1]! + all[2]! + all[5]! + all[6]! + all[7]!) / 100);
    for (const [n, pid] of this.pids) out.set(n, cpuSeconds(pid) ?? 0);
    for (const [n, pid] of Object.entries(extra)) if (pid !== undefined) out.set(n, cpuSeconds(pid) ?? 0);
    return out;
  }

  /**
   * The API server's metrics before a phase (scraping costs the API server and this process CPU, so it is done
   * before the phase's CPU is read: call cpuStart when the phase starts; start does both).
   */
  async scrapeBefore(phase: string): Promise<void> {
    const series = pick(await scrape(this.conn));
    this.marks.set(phase, { at: performance.now(), mono: 0n, cpu: new Map(), series });
  }

  /** The CPU counters at the start of a phase, synchronously: the moment matters. */
  cpuStart(phase: string, extra: Record<string, number | undefined> = {}): void {
    const m = this.marks.get(phase);
    if (!m) return;
    m.at = performance.now();
    m.mono = process.hrtime.bigint() / 1000n;
    m.cpu = this.cpu({ bench: process.pid, ...extra });
  }

  async start(phase: string, extra: Record<string, number | undefined> = {}): Promise<void> {
    await this.scrapeBefore(phase);
    this.cpuStart(phase, extra);
  }

  /**
   * With KPT_DIAG_PPROF_DIR set (and the API server started with KPT_KUBE_APISERVER_ARGS=--profiling=true): a CPU
   * profile of the API server over the next `seconds`, written to <dir>/<phase>.pprof (go tool pprof reads it).
   */
  profile(phase: string, seconds: number): void {
    const dir = process.env.KPT_DIAG_PPROF_DIR;
    if (!dir) return;
    get(this.conn, `/debug/pprof/profile?seconds=${seconds}`)
      .then((b) => writeFileSync(join(dir, `${phase.replace(/[^\w-]+/g, '_')}.pprof`), b))
      .catch((e) => process.stderr.write(`diagnose: profile ${phase}: ${String(e)}\n`));
  }

  /** CPU read first (synchronously), the metrics scraped after. */
  async end(phase: string, extra: Record<string, number | undefined> = {}): Promise<void> {
    const at = performance.now();
    const cpu = this.cpu({ bench: process.pid, ...extra });
    const s = this.marks.get(phase);
    if (!s) return;
    const series = pick(await scrape(this.conn));
    const seconds = (at - s.at) / 1000;
    // Monotonic microseconds (CLOCK_MONOTONIC, as in a V8 .cpuprofile's timestamps): a profile taken with
    // KPT_CONTROLLER_NODE_OPTIONS=--cpu-prof can be cut to the phase.
    const mono = `${s.mono}..${process.hrtime.bigint() / 1000n} µs`;
    const lines = [`diagnose: ${phase}: ${seconds.toFixed(2)} s (${mono})`];
    const cores = [...cpu]
      .map(([n, v]) => `${n} ${((v - (s.cpu.get(n) ?? v)) / seconds).toFixed(2)}`)
      .join(', ');
    lines.push(`  CPU (cores): ${cores}`);
    const d = (k: string) => (series.get(k) ?? 0) - (s.series.get(k) ?? 0);
    const keys = [...series.keys()].filter((k) => d(k) > 0).sort();
    for (const k of keys) {
      const [kind, ...rest] = k.split(' ');
      const tail = rest.join(' ');
      if (kind === 'req') {
        const n = d(k);
        if (n < 5) continue;
        lines.push(`  request ${tail}: ${n} (mean ${((d(`reqsec ${tail}`) / n) * 1000).toFixed(1)} ms)`);
      } else if (kind === 'watchev') {
        const n = d(k);
        lines.push(`  watch events ${tail}: ${n} (${(d(`watchbytes ${tail}`) / 1024).toFixed(0)} KiB)`);
      } else if (kind === 'etcd') {
        const n = d(k);
        if (n < 5) continue;
        lines.push(`  etcd ${tail}: ${n} (mean ${((d(`etcdsec ${tail}`) / n) * 1000).toFixed(2)} ms)`);
      } else if (kind === 'adm') {
        const n = d(k);
        if (n < 5) continue;
        const ms = (d(`admsec ${tail}`) / n) * 1000;
        if (ms >= 0.05) lines.push(`  admission ${tail}: ${n} (mean ${ms.toFixed(2)} ms)`);
      }
    }
    process.stderr.write(`${lines.join('\n')}\n`);
  }
}
