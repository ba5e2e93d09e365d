// Helpers for controller integration tests: kubectl as admin, the CRD applied, and the controller run as a child
// process (node src/cli/controller.ts), exactly as it runs in a pod, with its /metrics and /readyz reachable.

import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { kube } from '../../support/env.ts';
import { randomSuffix, repoRoot, runOk } from '../../support/packaging.ts';

export function kubectlPath(): string {
  return join(kube().binDir, 'kubectl');
}

export async function kubectl(
  args: string[],
  input?: string,
  kubeconfig = kube().kubeconfig,
): Promise<string> {
  const r = await runOk(
    kubectlPath(),
    [...args, '--kubeconfig', kubeconfig],
    input === undefined ? {} : { input },
  );
  return r.stdout;
}

/** kubectl that may fail: the exit code and stderr are the result (for manifests the API server must refuse). */
export async function kubectlTry(args: string[], input?: string): Promise<{ code: number; stderr: string }> {
  try {
    await kubectl(args, input);
    return { code: 0, stderr: '' };
  } catch (e) {
    const err = e as { result?: { code?: number; stderr?: string }; message?: string };
    return { code: err.result?.code ?? 1, stderr: err.result?.stderr ?? String(err.message) };
  }
}

export async function getJson<T = Record<string, unknown>>(args: string[]): Promise<T | undefined> {
  const out = await kubectl([...args, '-o', 'json', '--ignore-not-found']);
  return out.trim() === '' ? undefined : (JSON.parse(out) as T);
}

export async function applyCrd(): Promise<void> {
  await kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(repoRoot, 'deploy', 'crd.yaml')]);
  await kubectl(['wait', '--for=condition=Established', 'crd/pulsartriggers.kubeless.io', '--timeout=60s']);
}

export async function namespace(prefix: string): Promise<string> {
  const ns = `${prefix}-${randomSuffix()}`;
  await kubectl(['create', 'namespace', ns]);
  return ns;
}

/** Polls until `check` returns a value (not undefined/false); the timeout only guards against a hang. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
) {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface ControllerProcess {
  child: ChildProcess;
  port: number;
  identity: string;
  logs(): string;
  metrics(): Promise<string>;
  /** Sum of kpt_controller_writes_total over all kinds and verbs. */
  writes(): Promise<number>;
  readyz(): Promise<{ status: number; body: string }>;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

export interface ControllerOptions {
  namespaces: string[];
  leaseNamespace: string;
  leaseName?: string;
  kubeconfig?: string;
  identity?: string;
  extraArgs?: string[];
  image?: string;
}

export async function startControllerProcess(o: ControllerOptions): Promise<ControllerProcess> {
  const port = await freePort();
  const identity = o.identity ?? `test-${randomSuffix()}`;
  const args = [
    join(repoRoot, 'src', 'cli', 'controller.ts'),
    '--kubeconfig',
    o.kubeconfig ?? kube().kubeconfig,
    '--http-port',
    String(port),
    '--http-host',
    '127.0.0.1',
    '--namespaces',
    o.namespaces.join(','),
    '--leader-election-namespace',
    o.leaseNamespace,
    '--leader-election-id',
    o.leaseName ?? 'kubeless-pulsar-trigger',
    '--identity',
    identity,
    '--dispatcher-image',
    o.image ?? 'kpt/dispatcher:test',
    '--lease-duration',
    '4',
    '--renew-deadline',
    '3',
    '--retry-period',
    '0.5',
    '--workers',
    '4',
    // These tests' brokers are names that resolve nowhere (the admin API is tested on its own and end to end).
    '--pulsar-admin=false',
    ...(o.extraArgs ?? []),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const base = `http://127.0.0.1:${port}`;
  const metrics = async () => (await fetch(`${base}/metrics`)).text();
  const proc: ControllerProcess = {
    child,
    port,
    identity,
    logs: () => out,
    metrics,
    writes: async () => {
      let sum = 0;
      for (const line of (await metrics()).split('\n')) {
        if (line.startsWith('kpt_controller_writes_total{')) sum += Number(line.split(' ').pop());
      }
      return sum;
    },
    readyz: async () => {
      const r = await fetch(`${base}/readyz`);
      return { status: r.status, body: await r.text() };
    },
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  await eventually(`controller ${identity} to listen`, async () => {
    if (child.exitCode !== null) throw new Error(`controller exited ${child.exitCode}:\n${out}`);
    return (await fetch(`${base}/healthz`)).ok;
  });
  return proc;
}

export function trigger(
  name: string,
  ns: string,
  extra: Record<string, unknown> = {},
  pulsar: Record<string, unknown> = { 'auth-token': 'nnn' },
): string {
  return JSON.stringify({
    apiVersion: 'kubeless.io/v1',
    kind: 'PulsarTrigger',
    metadata: { name, namespace: ns },
    spec: {
      pulsar: {
        topic: 'persistent://public/default/mytopic',
        broker: 'pulsar://pulsar.addr:6650',
        ...pulsar,
      },
      kubeless: { function: 'http://myfunction.default:8080' },
      ...extra,
    },
  });
}

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes JSON in assertions
export type Any = any;

export function envOf(dep: Any): Record<string, Any> {
  return Object.fromEntries(
    (dep.spec.template.spec.containers[0].env as Any[]).map((e) => [e.name, e.value ?? e.valueFrom]),
  );
}
