// Small helpers the benchmarks share: required environment, running a peer (Java CLIs) to completion, and the
// controller as a local process.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { basename, join } from 'node:path';

/** An environment variable the benchmark cannot run without; exits 2 naming it. */
export function need(name: string): string {
  const v = process.env[name];
  if (!v) {
    console.error(
      `bench/${basename(process.argv[1] ?? 'bench')}: ${name} is not set (see the header of this file)`,
    );
    process.exit(2);
  }
  return v;
}

/** Runs a command to completion; resolves with stdout + stderr, rejects with the tail of stderr. */
export function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { maxBuffer: 64 * 1024 * 1024, timeout: 600_000, env: { ...process.env, ...env } },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`${cmd} failed: ${err.message}\n${stderr.slice(-3000)}`))
          : resolve(stdout + stderr),
    );
  });
}

/**
 * Runs the Java peer's timed consumer (KptJava bench-consume, compiled into `classes`, on the Pulsar distribution's
 * classpath) to completion; resolves with its output, which each benchmark reads its own way.
 */
export function javaBenchConsume(o: {
  classes: string;
  home: string;
  serviceUrl: string;
  topic: string;
  sub: string;
  count: number;
  queue?: number;
}): Promise<string> {
  return run('java', [
    '-Xmx512m',
    '-cp',
    `${o.classes}:${o.home}/lib/*`,
    'KptJava',
    'bench-consume',
    '--url',
    o.serviceUrl,
    '--topic',
    o.topic,
    '--sub',
    o.sub,
    '--count',
    String(o.count),
    ...(o.queue === undefined ? [] : ['--queue', String(o.queue)]),
  ]);
}

/**
 * The controller as a local process (the TypeScript sources) for a benchmark: watching one namespace, no leader
 * election, its HTTP port on 127.0.0.1, warnings only; `extra` adds or overrides flags (the last of a flag wins).
 */
export function spawnController(o: {
  kubeconfig: string;
  namespace: string;
  port: number;
  extra?: string[];
}): ChildProcess {
  return spawn(
    process.execPath,
    [
      join(import.meta.dirname, '..', 'src', 'cli', 'controller.ts'),
      '--kubeconfig',
      o.kubeconfig,
      '--namespaces',
      o.namespace,
      '--leader-elect=false',
      '--http-port',
      String(o.port),
      '--http-host',
      '127.0.0.1',
      '--log-level',
      'warn',
      ...(o.extra ?? []),
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
}
