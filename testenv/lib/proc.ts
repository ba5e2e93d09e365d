// Child processes for real servers. Each service runs in its own process group (detached), so stopping it kills
// the whole tree (bin/pulsar's java, etcd, kube-apiserver), also when a test fails or the runner is interrupted.

import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

export interface ServiceProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code (or signal name) when the process leader exits. */
  readonly exited: Promise<number | string>;
  /** SIGTERM the group, SIGKILL after `graceMs`, resolve when the leader is gone. */
  stop(graceMs?: number): Promise<void>;
  /** Peak resident memory (VmHWM) in MiB of the largest process in the group, read now; undefined if gone. */
  peakRssMiB(): number | undefined;
}

const live = new Set<ServiceProcess>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // Last resort: whatever is still running when this process exits is killed with it.
  process.on('exit', () => {
    for (const svc of live) killGroup(svc.pid, 'SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      void stopAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

export function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((svc) => svc.stop()));
}

/** Services started here outlive this process (env-up): forget them so the exit hook leaves them running. */
export function release(svc: ServiceProcess): void {
  live.delete(svc);
}

function groupPids(pgid: number): number[] {
  try {
    const out: number[] = [];
    for (const line of listProc()) {
      const stat = safeRead(`/proc/${line}/stat`);
      if (!stat) continue;
      // Fields after the ")" of the command name: state ppid pgrp ...
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[2]) === pgid) out.push(Number(line));
    }
    return out;
  } catch {
    return [pgid];
  }
}

function listProc(): string[] {
  try {
    return readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return [];
  }
}

function safeRead(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export function vmHwmMiB(pid: number): number | undefined {
  const status = safeRead(`/proc/${pid}/status`);
  const m = status?.match(/^VmHWM:\s+(\d+) kB/m);
  return m ? Number(m[1]) / 1024 : undefined;
}

export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  logFile: string;
}

export function spawnService(
  name: string,
  command: string,
  args: string[],
  opts: SpawnOptions,
): ServiceProcess {
  installExitHooks();
  const fd = openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(command, args, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      detached: true,
      stdio: ['ignore', fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`testenv: could not start ${name} (${command})`);
  const pid = child.pid;
  child.unref();
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    child.once('error', (err) => resolve(`spawn error: ${err.message}`));
  });
  let lastPeak: number | undefined;
  const svc: ServiceProcess = {
    name,
    pid,
    logFile: opts.logFile,
    exited,
    peakRssMiB() {
      let peak: number | undefined;
      for (const p of groupPids(pid)) {
        const v = vmHwmMiB(p);
        if (v !== undefined && (peak === undefined || v > peak)) peak = v;
      }
      if (peak !== undefined) lastPeak = peak;
      return peak ?? lastPeak;
    },
    async stop(graceMs = 10_000) {
      svc.peakRssMiB();
      live.delete(svc);
      if (!groupAlive(pid)) return;
      killGroup(pid, 'SIGTERM');
      const deadline = Date.now() + graceMs;
      while (groupAlive(pid) && Date.now() < deadline) await sleep(100);
      if (groupAlive(pid)) {
        killGroup(pid, 'SIGKILL');
        while (groupAlive(pid)) await sleep(50);
      }
    },
  };
  live.add(svc);
  return svc;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export function tail(file: string, lines = 40): string {
  const text = safeRead(file) ?? '';
  return text.split('\n').slice(-lines).join('\n');
}

/** Poll `check` until it returns a value; fail with the service log's tail, so a broken start explains itself. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  opts: { timeoutMs: number; svc?: ServiceProcess; intervalMs?: number },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  let exitedWith: number | string | undefined;
  void opts.svc?.exited.then((code) => {
    exitedWith = code;
  });
  while (Date.now() < deadline) {
    if (exitedWith !== undefined) break;
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    await sleep(opts.intervalMs ?? 500);
  }
  const reason =
    exitedWith !== undefined ? `process exited (${exitedWith})` : `not ready after ${opts.timeoutMs} ms`;
  const last = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
  const log = opts.svc ? `\n--- ${opts.svc.logFile} (tail) ---\n${tail(opts.svc.logFile)}` : '';
  throw new Error(`testenv: ${what}: ${reason}${last}${log}`);
}
