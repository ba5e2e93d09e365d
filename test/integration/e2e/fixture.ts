// The end-to-end fixture: the whole chain on the test servers. Each fixture has its own namespace, the chart's RBAC
// identity for it (test/support/chart-identity.ts), its own controller process watching only that namespace, its
// own node agent (testenv/node-agent.ts) serving only that namespace, and function servers (examples/function.ts)
// on free ports. Everything is stopped by close().

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type V1Deployment,
} from '@kubernetes/client-node';
import { type FunctionServer, startFunction } from '../../../examples/function.ts';
import { PulsarClient } from '../../../src/pulsar/index.ts';
import { tokenAuth } from '../../../src/pulsar/token.ts';
import { freePort, type ServiceProcess, sleep, spawnService, tail } from '../../../testenv/lib/proc.ts';
import { type NodeAgent, startNodeAgent } from '../../../testenv/node-agent.ts';
import { type ChartIdentity, installChartIdentity } from '../../support/chart-identity.ts';
import { kube, pulsarPlain, pulsarSecure } from '../../support/env.ts';
import { randomSuffix, repoRoot } from '../../support/packaging.ts';

export const GROUP = 'kubeless.io';
export const VERSION = 'v1';
export const PLURAL = 'pulsartriggers';

export interface Controller {
  readonly svc: ServiceProcess;
  readonly port: number;
}

export interface E2E {
  readonly ns: string;
  readonly suffix: string;
  readonly identity: ChartIdentity;
  readonly agent: NodeAgent;
  readonly workDir: string;
  readonly apps: AppsV1Api;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  controller: Controller | undefined;
  startController(): Promise<Controller>;
  stopController(): Promise<void>;
  /** A function server on a free port; stopped by close(). */
  startFunction(name: string): Promise<FunctionServer>;
  kubectl(args: string[], input?: string): Promise<string>;
  /** `kubectl apply -f -` of one object (server-side, as a user would apply a manifest). */
  apply(obj: object): Promise<void>;
  deployment(name: string): Promise<V1Deployment | undefined>;
  /** What the failing wait should explain: the controller's and the agent's last log lines. */
  diagnostics(): string;
  close(): Promise<void>;
}

/** The CRD from deploy/, applied once per API server (idempotent). */
export async function applyCrd(kubectl: (args: string[], input?: string) => Promise<string>): Promise<void> {
  await kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(repoRoot, 'deploy', 'crd.yaml')]);
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', `crd/${PLURAL}.${GROUP}`]);
}

export function runKubectl(kubeconfig: string, args: string[], input?: string): Promise<string> {
  const kubectl = join(kube().binDir, 'kubectl');
  return new Promise((resolve, reject) => {
    const child = spawn(kubectl, ['--kubeconfig', kubeconfig, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`kubectl ${args.join(' ')}: exit ${code}\n${err}${out}`)),
    );
    child.stdin.end(input ?? '');
  });
}

export async function startE2E(label: string): Promise<E2E> {
  const k = kube();
  const suffix = randomSuffix();
  const ns = `e2e-${label}-${suffix}`;
  const workDir = mkdtempSync(join(tmpdir(), `kpt-e2e-${label}-`));
  const kubectl = (args: string[], input?: string) => runKubectl(k.kubeconfig, args, input);
  await applyCrd(kubectl);
  const identity = await installChartIdentity({ watchNamespaces: [ns] });
  const kc = new KubeConfig();
  kc.loadFromFile(k.kubeconfig);
  const agentLog: string[] = [];
  const agent = await startNodeAgent({
    kubeconfig: k.kubeconfig,
    namespaces: [ns],
    logsDir: join(workDir, 'logs'),
    log: (line) => {
      agentLog.push(line);
      if (agentLog.length > 200) agentLog.shift();
    },
  });
  const functions: FunctionServer[] = [];

  const fx: E2E = {
    ns,
    suffix,
    identity,
    agent,
    workDir,
    apps: kc.makeApiClient(AppsV1Api),
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    controller: undefined,
    async startController() {
      const port = await freePort();
      const svc = spawnService(
        `controller ${ns}`,
        process.execPath,
        [
          join(repoRoot, 'bin', 'kubeless-pulsar-trigger.js'),
          'controller',
          '--kubeconfig',
          identity.kubeconfig,
          '--namespaces',
          ns,
          '--dispatcher-image',
          'kubeless-pulsar-trigger:e2e',
          '--leader-election-namespace',
          identity.namespace,
          '--leader-election-id',
          identity.leaseName,
          '--http-port',
          String(port),
          '--http-host',
          '127.0.0.1',
          '--log-level',
          'info',
        ],
        { logFile: join(workDir, 'controller.log'), cwd: repoRoot },
      );
      fx.controller = { svc, port };
      await waitUntil(
        'the controller is ready',
        async () => {
          const r = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1000) });
          return r.status === 200 && (await r.text()).includes('leader');
        },
        60_000,
        fx,
      );
      return fx.controller;
    },
    async stopController() {
      await fx.controller?.svc.stop(15_000);
      fx.controller = undefined;
    },
    async startFunction(name) {
      const fn = await startFunction({ port: 0, name, onEvent: () => {} });
      functions.push(fn);
      return fn;
    },
    kubectl,
    async apply(obj) {
      await kubectl(['apply', '--server-side', '--field-manager=e2e-user', '-f', '-'], JSON.stringify(obj));
    },
    async deployment(name) {
      try {
        return await fx.apps.readNamespacedDeployment({ name, namespace: ns });
      } catch (e) {
        if ((e as { code?: number }).code === 404) return undefined;
        throw e;
      }
    },
    diagnostics() {
      const ctl = fx.controller ? tail(fx.controller.svc.logFile, 30) : '(controller not running)';
      const procs = agent.processes();
      const dispatcherLogs = procs.map((p) => `--- ${p.key}\n${tail(p.logFile, 15)}`).join('\n');
      return `\n--- controller log (tail)\n${ctl}\n--- node agent\n${agentLog.slice(-30).join('\n')}\n--- dispatchers\n${dispatcherLogs}`;
    },
    async close() {
      await fx.stopController();
      await agent.stop();
      await Promise.all(functions.map((f) => f.close()));
      await kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=false']).catch(() => undefined);
      await identity.remove().catch(() => undefined);
      if (!process.env.KPT_KEEP_DATA) rmSync(workDir, { recursive: true, force: true });
    },
  };
  return fx;
}

/** Polls until `check` returns true; fails with the fixture's diagnostics. No time is asserted. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  fx?: E2E,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    await sleep(250);
  }
  const why = last instanceof Error ? ` (last error: ${last.message})` : '';
  throw new Error(`e2e: timed out waiting until ${what}${why}${fx ? fx.diagnostics() : ''}`);
}

/** Publishes `count` messages with our client; payloads are `${prefix}-${i}`. */
export async function publish(
  topic: string,
  count: number,
  prefix: string,
  secure = false,
): Promise<string[]> {
  const client = secure
    ? new PulsarClient({
        serviceUrl: pulsarSecure().serviceUrl,
        auth: tokenAuth({ token: pulsarSecure().adminToken }),
        tls: { ca: readFileSync(pulsarSecure().caFile, 'utf8') },
      })
    : new PulsarClient({ serviceUrl: pulsarPlain().serviceUrl });
  try {
    // One entry per message, so a Shared subscription can spread them over several consumers.
    const producer = await client.createProducer({ topic, batchingMaxMessages: 1 });
    const payloads: string[] = [];
    for (let i = 0; i < count; i++) payloads.push(`${prefix}-${i}`);
    await Promise.all(payloads.map((p) => producer.send({ payload: Buffer.from(p), key: p })));
    await producer.close();
    return payloads;
  } finally {
    await client.close();
  }
}

export function bodies(fn: FunctionServer): string[] {
  return fn.events.map((e) => e.body.toString());
}

/** The seed README's first example trigger, pointed at a broker, a topic and a function here. */
export function readmeTrigger(
  ns: string,
  name: string,
  topic: string,
  functionUrl: string,
  broker = pulsarPlain().serviceUrl,
): Record<string, unknown> {
  return {
    apiVersion: 'kubeless.io/v1',
    kind: 'PulsarTrigger',
    metadata: { name, namespace: ns },
    spec: {
      pulsar: { topic, broker, 'auth-token': 'nnn' },
      kubeless: { function: functionUrl },
    },
  };
}
