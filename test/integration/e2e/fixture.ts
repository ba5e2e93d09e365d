// The end-to-end fixture: the whole chain on the test servers and the real node (testenv/node.ts). Each fixture
// has its own namespace for triggers and its own Helm release of the chart in a namespace of its own: the
// controller runs as a pod from the project's image (`make image`, imported into the node's containerd) under the
// chart's ServiceAccount, whose token the kubelet mounts; it watches only the fixture's namespace, and the
// dispatcher pods it creates run as containers from the dispatcher image. Function servers (examples/function.ts)
// listen on the node's address, where pods reach this machine. Everything is removed by close().

import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type V1Deployment,
  type V1Pod,
} from '@kubernetes/client-node';
import { type FunctionServer, startFunction } from '../../../examples/function.ts';
import { PulsarClient } from '../../../src/pulsar/index.ts';
import { tokenAuth } from '../../../src/pulsar/token.ts';
import { mergeValues, nodeChartValues } from '../../../testenv/chart.ts';
import { sleep } from '../../../testenv/lib/proc.ts';
import { kube, node, pulsarPlain, pulsarSecure } from '../../support/env.ts';
import { chartDir, randomSuffix, repoRoot } from '../../support/packaging.ts';

export const GROUP = 'kubeless.io';
export const VERSION = 'v1';
export const PLURAL = 'pulsartriggers';
/** The label every dispatcher pod carries (src/trigger/render.ts). */
export const DISPATCHER_SELECTOR = 'created-by=kubeless-pulsar-trigger';
/** The dispatcher's memory limit in the end-to-end tests: what a small cluster would give it. */
export const DISPATCHER_MEMORY_LIMIT = '128Mi';

/** A dispatcher pod as the kubelet reports it. */
export interface PodInfo {
  name: string;
  uid: string;
  ip: string | undefined;
  phase: string | undefined;
  ready: boolean;
  terminating: boolean;
  restarts: number;
  /** The dispatcher container's runtime id (without the containerd:// prefix), once it started. */
  containerId: string | undefined;
  pod: V1Pod;
}

export interface E2E {
  readonly ns: string;
  readonly suffix: string;
  /** The Helm release of the chart and its namespace (the controller's Deployment, ServiceAccount, Lease). */
  readonly release: string;
  readonly releaseNs: string;
  readonly workDir: string;
  readonly apps: AppsV1Api;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  /** `helm upgrade --install` of the chart with the project's images; waits until the controller leads. */
  installController(values?: Record<string, unknown>): Promise<void>;
  /** The controller's Deployment scaled to 0, waited until its pods are gone. */
  stopController(): Promise<void>;
  /** The controller's Deployment scaled to 1, waited until its pod is ready (and so leads). */
  startController(): Promise<void>;
  /** The ready controller pod. */
  controllerPod(): Promise<V1Pod | undefined>;
  /** GET on the ready controller pod's HTTP port (/metrics, /readyz), at its pod IP. */
  controllerHttp(path: string): Promise<string>;
  /** Every pod of the trigger's dispatcher Deployment, terminating ones included. */
  dispatcherPods(trigger: string): Promise<PodInfo[]>;
  /** A function server on the node's address (where pods reach it); stopped by close(). */
  startFunction(name: string, opts?: { status?: () => number }): Promise<FunctionServer>;
  kubectl(args: string[], input?: string): Promise<string>;
  /** `kubectl apply -f -` of one object (server-side, as a user would apply a manifest). */
  apply(obj: object): Promise<void>;
  deployment(name: string): Promise<V1Deployment | undefined>;
  /** What a failing wait should explain: the controller's log, the pods and the namespace's events. */
  diagnostics(): Promise<string>;
  close(): Promise<void>;
}

/** The CRD from deploy/, applied once per API server (idempotent). */
export async function applyCrd(kubectl: (args: string[], input?: string) => Promise<string>): Promise<void> {
  await kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(repoRoot, 'deploy', 'crd.yaml')]);
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', `crd/${PLURAL}.${GROUP}`]);
}

export function runTool(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  input?: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
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
      code === 0 ? resolve(out) : reject(new Error(`${file} ${args.join(' ')}: exit ${code}\n${err}${out}`)),
    );
    child.stdin.end(input ?? '');
  });
}

export function runKubectl(kubeconfig: string, args: string[], input?: string): Promise<string> {
  return runTool(join(kube().binDir, 'kubectl'), ['--kubeconfig', kubeconfig, ...args], process.env, input);
}

/** The chart's values for a release on the test node: the fixture's namespace, small requests, debug logs. */
export function chartValues(watchNamespaces: string[]): Record<string, unknown> {
  return mergeValues(nodeChartValues({ env: process.env, watchNamespaces }), {
    dispatcher: {
      deployment: {
        resources: {
          requests: { cpu: '50m', memory: '64Mi' },
          limits: { cpu: '1', memory: DISPATCHER_MEMORY_LIMIT },
        },
      },
    },
    // Backlog figures every 2 s instead of 30 s: the tests wait for them.
    controller: { logLevel: 'debug', backlogInterval: 2 },
    resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '1', memory: '256Mi' } },
  });
}

function podInfo(p: V1Pod): PodInfo {
  const status = p.status?.containerStatuses?.find((c) => c.name === 'dispatcher');
  return {
    name: p.metadata?.name ?? '',
    uid: p.metadata?.uid ?? '',
    ip: p.status?.podIP,
    phase: p.status?.phase,
    ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true,
    terminating: p.metadata?.deletionTimestamp !== undefined,
    restarts: status?.restartCount ?? 0,
    containerId: status?.containerID?.replace(/^containerd:\/\//, ''),
    pod: p,
  };
}

export async function startE2E(label: string): Promise<E2E> {
  const k = kube();
  const n = node();
  const suffix = randomSuffix();
  const ns = `e2e-${label}-${suffix}`;
  const release = `kpt-${label}-${suffix}`;
  const releaseNs = `e2e-${label}-${suffix}-system`;
  const workDir = mkdtempSync(join(tmpdir(), `kpt-e2e-${label}-`));
  const helmEnv = {
    ...process.env,
    KUBECONFIG: k.kubeconfig,
    HELM_CONFIG_HOME: join(workDir, 'helm-config'),
    HELM_CACHE_HOME: join(workDir, 'helm-cache'),
    HELM_DATA_HOME: join(workDir, 'helm-data'),
  };
  const kubectl = (args: string[], input?: string) => runKubectl(k.kubeconfig, args, input);
  const helm = (args: string[]) => runTool(join(k.binDir, 'helm'), args, helmEnv);
  await applyCrd(kubectl);
  await kubectl(['create', 'namespace', ns]);
  const kc = new KubeConfig();
  kc.loadFromFile(k.kubeconfig);
  const functions: FunctionServer[] = [];
  const controllerSelector = `app.kubernetes.io/instance=${release},app.kubernetes.io/component=controller`;

  const fx: E2E = {
    ns,
    suffix,
    release,
    releaseNs,
    workDir,
    apps: kc.makeApiClient(AppsV1Api),
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    async installController(values = {}) {
      const file = join(workDir, 'values.json');
      writeFileSync(file, JSON.stringify(chartValues([ns])));
      const extra = join(workDir, 'values-extra.json');
      writeFileSync(extra, JSON.stringify(values));
      await helm([
        'upgrade',
        '--install',
        release,
        chartDir,
        '--namespace',
        releaseNs,
        '--create-namespace',
        '--values',
        file,
        '--values',
        extra,
      ]);
      await fx.startController();
    },
    async stopController() {
      await kubectl(['scale', 'deployment', '-n', releaseNs, '-l', controllerSelector, '--replicas=0']);
      await waitUntil(
        'the controller pods are gone',
        async () =>
          (await fx.core.listNamespacedPod({ namespace: releaseNs, labelSelector: controllerSelector })).items
            .length === 0,
        120_000,
        fx,
      );
    },
    async startController() {
      await kubectl(['scale', 'deployment', '-n', releaseNs, '-l', controllerSelector, '--replicas=1']);
      await waitUntil(
        'the controller pod is ready and leads',
        async () => (await fx.controllerHttp('/readyz')).includes('leader'),
        180_000,
        fx,
      );
    },
    async controllerPod() {
      const pods = await fx.core.listNamespacedPod({
        namespace: releaseNs,
        labelSelector: controllerSelector,
      });
      return pods.items.find(
        (p) =>
          !p.metadata?.deletionTimestamp &&
          p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      );
    },
    async controllerHttp(path) {
      const pod = await fx.controllerPod();
      if (!pod?.status?.podIP) throw new Error('no ready controller pod');
      const r = await fetch(`http://${pod.status.podIP}:8080${path}`, { signal: AbortSignal.timeout(3000) });
      return r.text();
    },
    async dispatcherPods(trigger) {
      const pods = await fx.core.listNamespacedPod({
        namespace: ns,
        labelSelector: `${DISPATCHER_SELECTOR},kubeless.io/trigger-name=${trigger}`,
      });
      return pods.items.map(podInfo);
    },
    async startFunction(name, opts = {}) {
      const fn = await startFunction({
        port: 0,
        host: n.ip,
        name,
        onEvent: () => {},
        ...(opts.status ? { status: opts.status } : {}),
      });
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
    async diagnostics() {
      const parts: string[] = [];
      const grab = async (what: string, args: string[]) => {
        try {
          parts.push(`--- ${what}\n${(await kubectl(args)).split('\n').slice(-40).join('\n')}`);
        } catch (e) {
          parts.push(`--- ${what}: ${(e as Error).message.split('\n')[0]}`);
        }
      };
      await grab('controller log (tail)', ['logs', '-n', releaseNs, '-l', controllerSelector, '--tail=30']);
      await grab('pods', ['get', 'pods', '-n', ns, '-o', 'wide']);
      await grab('events', ['get', 'events', '-n', ns, '--sort-by=.lastTimestamp']);
      await grab('dispatcher logs (tail)', [
        'logs',
        '-n',
        ns,
        '-l',
        DISPATCHER_SELECTOR,
        '--tail=15',
        '--prefix',
      ]);
      return `\n${parts.join('\n')}`;
    },
    async close() {
      await Promise.all(functions.map((f) => f.close()));
      await helm(['uninstall', release, '--namespace', releaseNs, '--ignore-not-found']).catch(
        () => undefined,
      );
      for (const namespace of [ns, releaseNs]) {
        await kubectl(['delete', 'namespace', namespace, '--ignore-not-found', '--wait=false']).catch(
          () => undefined,
        );
      }
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
  throw new Error(`e2e: timed out waiting until ${what}${why}${fx ? await fx.diagnostics() : ''}`);
}

/** The host pid of a running container's process, from the node's runtime (ctr tasks). */
export function containerPid(containerId: string): number {
  const out = execFileSync(
    'ctr',
    ['--address', node().containerdAddress, '--namespace', 'k8s.io', 'tasks', 'ls'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  ).toString();
  for (const line of out.split('\n').slice(1)) {
    const [task, pid, status] = line.trim().split(/\s+/);
    if (task === containerId && status === 'RUNNING') return Number(pid);
  }
  throw new Error(`container ${containerId} has no running task:\n${out}`);
}

/**
 * A container's log as the kubelet keeps it on the node, which is what `kubectl logs` serves: the file the runtime
 * names for it (`crictl inspect`), its CRI lines (`<time> <stream> <P|F> <text>`, P for a partial line) turned
 * back into the container's own lines. `kubectl logs` itself cannot be used here: the API server reaches a kubelet
 * by the node's host name first, and this machine does not resolve the test node's.
 */
export function containerLog(containerId: string): string {
  const crictl = (args: string[]) =>
    execFileSync(
      join(kube().binDir, 'crictl'),
      ['--runtime-endpoint', `unix://${node().containerdAddress}`, ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ).toString();
  const info = JSON.parse(crictl(['inspect', containerId])) as { status?: { logPath?: string } };
  const logPath = info.status?.logPath;
  if (!logPath) throw new Error(`crictl inspect ${containerId}: no logPath`);
  const out: string[] = [];
  let partial = '';
  for (const line of readFileSync(logPath, 'utf8').split('\n')) {
    const m = /^\S+ (?:stdout|stderr) ([PF]) ?(.*)$/.exec(line);
    if (!m) continue;
    partial += m[2];
    if (m[1] === 'F') {
      out.push(partial);
      partial = '';
    }
  }
  if (partial) out.push(partial);
  return out.join('\n');
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

/**
 * The seed README's first example trigger, pointed at a broker (as pods reach it), a topic and a function. The test
 * broker's admin API is not on the usual port the controller would derive from the broker URL, so it is named.
 */
export function readmeTrigger(
  ns: string,
  name: string,
  topic: string,
  functionUrl: string,
  broker = node().pulsarServiceUrl,
  adminUrl = node().pulsarAdminUrl,
): Record<string, unknown> {
  return {
    apiVersion: 'kubeless.io/v1',
    kind: 'PulsarTrigger',
    metadata: { name, namespace: ns },
    spec: {
      pulsar: { topic, broker, adminUrl, 'auth-token': 'nnn' },
      kubeless: { function: functionUrl },
    },
  };
}
