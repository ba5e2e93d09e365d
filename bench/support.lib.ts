// Small helpers the client benchmarks share: required environment and running a peer (Java CLIs) to completion.

import { execFile } from 'node:child_process';
import { basename } from 'node:path';

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
