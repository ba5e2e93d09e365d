// The local node agent: the kubelet's job for dispatcher pods, on a machine with no container runtime. It is a
// test and demo tool (testenv/, never shipped in an image).
//
// How it avoids fighting the kube-controller-manager: it does not write Deployment status at all. The real
// Deployment and ReplicaSet controllers run (testenv/kube.ts), so a Deployment labelled
// created-by=kubeless-pulsar-trigger gets real ReplicaSets and real Pods, which stay Pending because there is no
// scheduler and no kubelet. The agent plays the kubelet for those Pods: it watches Pods carrying the label, runs
// one local process per Pod, and reports the process on the Pod through the pods/status subresource (Running,
// Ready/ContainersReady from the process's /readyz, restartCount, last exit). The ReplicaSet and Deployment
// controllers then compute replicas, readyReplicas, availableReplicas, updatedReplicas and observedGeneration
// themselves, exactly as in a cluster. Rollouts, scaling and deletion follow for free: a template change makes
// the Deployment controller create new Pods (the agent starts them) and delete old ones once the new are ready
// (the agent stops those), scaling adds or removes Pods, and deleting the Deployment garbage-collects its Pods.
// Pods are never bound to a node, so deleting one is immediate: the agent learns it from the watch and stops
// the process with SIGTERM (the dispatcher drains) and SIGKILL after the Pod's grace period.
//
// What runs: the container's image is ignored; every Pod runs `node bin/kubeless-pulsar-trigger.js dispatcher`
// (what the project's dispatcher image runs) with the environment of the Pod's first container (values,
// secretKeyRef, configMapKeyRef, fieldRef, envFrom; see testenv/pod-plan.ts), Secret and ConfigMap volumes
// written to a local folder with env values that point into their mountPath rewritten to it, and DISPATCHER_PORT
// set to a free port per process (it serves /readyz there). A process that exits is restarted with a doubling
// backoff. Each Pod's output goes to <logsDir>/<namespace>_<pod>.log.
//
//   node testenv/node-agent.ts --kubeconfig admin.kubeconfig [--namespaces a,b] [--logs-dir dir]

import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CoreV1Api,
  type Informer,
  KubeConfig,
  makeInformer,
  type ObjectCache,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { freePort, type ServiceProcess, sleep, spawnService } from './lib/proc.ts';
import {
  type ObjectData,
  type PodLike,
  type ProcessPlan,
  type ProcessState,
  planPod,
  podStatus,
  referencedObjects,
  resolveEnv,
  restartDelayMs,
  volumeFiles,
} from './pod-plan.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DISPATCHER_BIN = join(root, 'bin', 'kubeless-pulsar-trigger.js');
export const POD_SELECTOR = 'created-by=kubeless-pulsar-trigger';
/** The dispatcher's port variable (src/trigger/settings.ts ENV.port). */
const PORT_ENV = 'DISPATCHER_PORT';
const LOCAL_IP = '127.0.0.1';
/** Host variables a process keeps; everything else of the agent's environment is removed, as in a container. */
const KEEP_ENV = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'LC_ALL'];

export interface NodeAgentOptions {
  /** Kubeconfig with rights to watch Pods, read Secrets/ConfigMaps and patch pods/status (the admin one). */
  kubeconfig: string;
  /** Namespaces to serve; empty or absent: all. */
  namespaces?: string[] | undefined;
  /** Where each Pod's process log goes. Default: a new temporary folder. */
  logsDir?: string | undefined;
  /** The node name shown to fieldRef spec.nodeName. */
  nodeName?: string | undefined;
  /** The agent's own log lines (default: stderr with a prefix). */
  log?: ((line: string) => void) | undefined;
  /** Command run for each Pod. Default: [node, bin/kubeless-pulsar-trigger.js, dispatcher]. */
  command?: string[] | undefined;
  /** How often a process's /readyz is asked. Default 1 s. */
  probeIntervalMs?: number | undefined;
}

export interface AgentProcess {
  /** namespace/pod */
  key: string;
  uid: string;
  /** The Pod's pod-template-hash label (which ReplicaSet it belongs to). */
  templateHash: string | undefined;
  /** Labels of the Pod. */
  labels: Record<string, string>;
  pid: number | undefined;
  port: number | undefined;
  ready: boolean;
  restarts: number;
  logFile: string;
}

export interface NodeAgent {
  readonly logsDir: string;
  /** The processes the agent runs now, one per Pod. */
  processes(): AgentProcess[];
  stop(): Promise<void>;
}

export async function startNodeAgent(opts: NodeAgentOptions): Promise<NodeAgent> {
  const kc = new KubeConfig();
  kc.loadFromFile(opts.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const log = opts.log ?? ((line: string) => process.stderr.write(`[node-agent] ${line}\n`));
  const logsDir = opts.logsDir ?? mkdtempSync(join(tmpdir(), 'kpt-agent-logs-'));
  mkdirSync(logsDir, { recursive: true });
  const workDir = mkdtempSync(join(tmpdir(), 'kpt-agent-volumes-'));
  const command = opts.command ?? [process.execPath, DISPATCHER_BIN, 'dispatcher'];
  const nodeName = opts.nodeName ?? 'kpt-local-node';
  const probeIntervalMs = opts.probeIntervalMs ?? 1000;
  const namespaces = opts.namespaces?.filter(Boolean) ?? [];
  const runners = new Map<string, PodRunner>();
  let stopped = false;

  type PodInformer = Informer<V1Pod> & ObjectCache<V1Pod>;
  const informers: PodInformer[] = [];
  const targets: { path: string; list: () => ReturnType<CoreV1Api['listPodForAllNamespaces']> }[] =
    namespaces.length === 0
      ? [{ path: '/api/v1/pods', list: () => core.listPodForAllNamespaces({ labelSelector: POD_SELECTOR }) }]
      : namespaces.map((namespace) => ({
          path: `/api/v1/namespaces/${namespace}/pods`,
          list: () => core.listNamespacedPod({ namespace, labelSelector: POD_SELECTOR }),
        }));

  const deps: RunnerDeps = { core, log, logsDir, workDir, command, nodeName, probeIntervalMs };

  function sync(): void {
    if (stopped) return;
    const desired = new Map<string, { pod: V1Pod; plan: ProcessPlan }>();
    for (const inf of informers) {
      for (const pod of inf.list()) {
        const r = planPod(pod as PodLike);
        if (r.ok) desired.set(r.plan.uid, { pod, plan: r.plan });
      }
    }
    for (const [uid, runner] of runners) {
      if (desired.has(uid)) continue;
      runners.delete(uid);
      log(`pod ${runner.plan.key} is gone: stopping its process`);
      void runner.stop();
    }
    for (const [uid, d] of desired) {
      if (runners.has(uid)) continue;
      for (const note of d.plan.ignored) log(`pod ${d.plan.key}: ignored: ${note}`);
      const runner = new PodRunner(d.pod, d.plan, deps);
      runners.set(uid, runner);
      runner.start();
    }
  }

  for (const t of targets) {
    const inf = makeInformer<V1Pod>(kc, t.path, t.list, POD_SELECTOR) as PodInformer;
    inf.on('add', sync);
    inf.on('update', sync);
    inf.on('delete', sync);
    // An informer stops on a watch error other than 410 (API server restarted, network): start it again.
    inf.on('error', (e) => {
      if (stopped) return;
      log(`watch ${t.path} failed (${e instanceof Error ? e.message : String(e)}); restarting in 2 s`);
      setTimeout(() => {
        if (!stopped) inf.start().catch(() => undefined);
      }, 2000).unref();
    });
    informers.push(inf);
  }
  await Promise.all(informers.map((i) => i.start()));
  const resync = setInterval(sync, 5000);
  resync.unref();
  sync();
  log(
    `watching pods with ${POD_SELECTOR} in ${namespaces.length ? namespaces.join(', ') : 'all namespaces'}`,
  );

  return {
    logsDir,
    processes: () => [...runners.values()].map((r) => r.describe()),
    async stop() {
      stopped = true;
      clearInterval(resync);
      await Promise.all(informers.map((i) => i.stop().catch(() => undefined)));
      const all = [...runners.values()];
      runners.clear();
      await Promise.all(all.map((r) => r.stop()));
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

interface RunnerDeps {
  core: CoreV1Api;
  log: (line: string) => void;
  logsDir: string;
  workDir: string;
  command: string[];
  nodeName: string;
  probeIntervalMs: number;
}

function httpStatus(e: unknown): number | undefined {
  const o = e as { code?: unknown } | null;
  return typeof o?.code === 'number' ? o.code : undefined;
}

function describeError(e: unknown): string {
  const o = e as { code?: unknown; body?: unknown; message?: unknown } | null;
  if (typeof o?.code === 'number') {
    const body = typeof o.body === 'string' ? o.body : JSON.stringify(o.body ?? '');
    return `HTTP ${o.code}: ${body.slice(0, 300)}`;
  }
  return e instanceof Error ? e.message : String(e);
}

/** One Pod's process: prepare (refs, volumes, env), run, probe, report, restart; until the Pod goes. */
class PodRunner {
  readonly plan: ProcessPlan;
  readonly #pod: V1Pod;
  readonly #deps: RunnerDeps;
  readonly #logFile: string;
  readonly #volumeDir: string;
  readonly #startTime = new Date().toISOString();
  #state: ProcessState = { phase: 'waiting', ready: false, restartCount: 0, reason: 'ContainerCreating' };
  #readySince: string | undefined;
  #svc: ServiceProcess | undefined;
  #port: number | undefined;
  #stopped = false;
  #wake: (() => void) | undefined;
  #loop: Promise<void> = Promise.resolve();
  #reporting: Promise<void> = Promise.resolve();
  #reportQueued = false;

  constructor(pod: V1Pod, plan: ProcessPlan, deps: RunnerDeps) {
    this.#pod = pod;
    this.plan = plan;
    this.#deps = deps;
    this.#logFile = join(deps.logsDir, `${plan.namespace}_${plan.name}.log`);
    this.#volumeDir = join(deps.workDir, `${plan.namespace}_${plan.name}`);
  }

  describe(): AgentProcess {
    const labels = this.#pod.metadata?.labels ?? {};
    return {
      key: this.plan.key,
      uid: this.plan.uid,
      templateHash: labels['pod-template-hash'],
      labels,
      pid: this.#state.phase === 'running' ? this.#svc?.pid : undefined,
      port: this.#port,
      ready: this.#state.ready,
      restarts: this.#state.restartCount,
      logFile: this.#logFile,
    };
  }

  start(): void {
    this.#loop = this.#run().catch((e) =>
      this.#deps.log(`pod ${this.plan.key}: runner failed: ${describeError(e)}`),
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#svc?.stop(this.plan.graceMs);
    await this.#loop;
    rmSync(this.#volumeDir, { recursive: true, force: true });
  }

  async #run(): Promise<void> {
    let configFailures = 0;
    while (!this.#stopped) {
      const prepared = await this.#prepare();
      if (this.#stopped) break;
      if (!prepared.ok) {
        this.#set({
          phase: 'waiting',
          ready: false,
          reason: 'CreateContainerConfigError',
          message: prepared.reason,
        });
        this.#note(`cannot start: ${prepared.reason}`);
        await this.#sleep(restartDelayMs(configFailures++, 1000, 10_000));
        continue;
      }
      configFailures = 0;
      this.#port = await freePort();
      // stop() may have come while waiting; from here to spawnService nothing awaits, so stop() sees the process.
      if (this.#stopped) break;
      const env: Record<string, string | undefined> = {};
      for (const k of Object.keys(process.env)) env[k] = undefined;
      for (const k of KEEP_ENV) env[k] = process.env[k];
      Object.assign(env, prepared.env, { [PORT_ENV]: String(this.#port), HOSTNAME: this.plan.name });
      this.#note(
        `starting (restart ${this.#state.restartCount}) on port ${this.#port}: ${this.#deps.command.join(' ')}`,
      );
      const startedAt = new Date().toISOString();
      const svc = spawnService(
        `dispatcher ${this.plan.key}`,
        this.#deps.command[0]!,
        this.#deps.command.slice(1),
        {
          env,
          cwd: root,
          logFile: this.#logFile,
        },
      );
      this.#svc = svc;
      this.#set({
        phase: 'running',
        ready: false,
        startedAt,
        pid: svc.pid,
        reason: undefined,
        message: undefined,
      });
      const probe = setInterval(() => void this.#probe(svc), this.#deps.probeIntervalMs);
      const code = await svc.exited;
      clearInterval(probe);
      await svc.stop(0);
      if (this.#stopped) break;
      const exitCode = typeof code === 'number' ? code : 137;
      this.#note(`process exited (${code}); restarting`);
      const restartCount = this.#state.restartCount + 1;
      this.#set({
        phase: 'waiting',
        ready: false,
        restartCount,
        pid: undefined,
        reason: 'CrashLoopBackOff',
        message: undefined,
        lastExit: {
          exitCode,
          reason: exitCode === 0 ? 'Completed' : 'Error',
          finishedAt: new Date().toISOString(),
          startedAt,
        },
      });
      await this.#sleep(restartDelayMs(restartCount - 1));
    }
  }

  /** Reads the Secrets and ConfigMaps the Pod uses, writes its volumes, resolves its environment. */
  async #prepare(): Promise<{ ok: true; env: Record<string, string> } | { ok: false; reason: string }> {
    const refs = referencedObjects(this.plan);
    const ns = this.plan.namespace;
    const data: ObjectData = { secrets: new Map(), configMaps: new Map() };
    try {
      for (const name of refs.secrets) {
        const s = await this.#deps.core.readNamespacedSecret({ name, namespace: ns }).catch((e) => {
          if (httpStatus(e) === 404) return undefined;
          throw e;
        });
        const decoded: Record<string, Uint8Array> = {};
        for (const [k, v] of Object.entries(s?.data ?? {})) decoded[k] = Buffer.from(v, 'base64');
        for (const [k, v] of Object.entries(s?.stringData ?? {})) decoded[k] = Buffer.from(v, 'utf8');
        (data.secrets as Map<string, Record<string, Uint8Array> | undefined>).set(
          name,
          s ? decoded : undefined,
        );
      }
      for (const name of refs.configMaps) {
        const c = await this.#deps.core.readNamespacedConfigMap({ name, namespace: ns }).catch((e) => {
          if (httpStatus(e) === 404) return undefined;
          throw e;
        });
        const decoded: Record<string, Uint8Array> = {};
        for (const [k, v] of Object.entries(c?.data ?? {})) decoded[k] = Buffer.from(v, 'utf8');
        for (const [k, v] of Object.entries(c?.binaryData ?? {})) decoded[k] = Buffer.from(v, 'base64');
        (data.configMaps as Map<string, Record<string, Uint8Array> | undefined>).set(
          name,
          c ? decoded : undefined,
        );
      }
    } catch (e) {
      return { ok: false, reason: `reading Secrets/ConfigMaps: ${describeError(e)}` };
    }
    const mountDirs = new Map<string, string>();
    rmSync(this.#volumeDir, { recursive: true, force: true });
    for (const m of this.plan.mounts) {
      const files = volumeFiles(m, data);
      if (!files.ok) return files;
      const dir = join(this.#volumeDir, m.volume);
      mkdirSync(dir, { recursive: true });
      for (const f of files.files) {
        mkdirSync(dirname(join(dir, f.path)), { recursive: true });
        writeFileSync(join(dir, f.path), f.content, { mode: 0o600 });
      }
      mountDirs.set(m.mountPath, dir);
    }
    return resolveEnv(this.plan, data, {
      pod: this.#pod as PodLike,
      mountDirs,
      podIp: LOCAL_IP,
      nodeName: this.#deps.nodeName,
    });
  }

  async #probe(svc: ServiceProcess): Promise<void> {
    if (this.#stopped || this.#svc !== svc || this.#port === undefined) return;
    let ready = false;
    try {
      const r = await fetch(`http://${LOCAL_IP}:${this.#port}/readyz`, { signal: AbortSignal.timeout(1000) });
      ready = r.status === 200;
      await r.body?.cancel();
    } catch {
      ready = false;
    }
    if (this.#stopped || this.#svc !== svc || this.#state.phase !== 'running') return;
    if (ready !== this.#state.ready) {
      this.#note(ready ? 'ready' : 'not ready');
      this.#set({ ready });
    }
  }

  #set(change: Partial<ProcessState>): void {
    const wasReady = this.#state.ready;
    this.#state = { ...this.#state, ...change };
    if (this.#state.ready !== wasReady || this.#readySince === undefined)
      this.#readySince = new Date().toISOString();
    this.#report();
  }

  /** Patches the Pod's status with the latest state; at most one patch in flight, the last state wins. */
  #report(): void {
    if (this.#reportQueued) return;
    this.#reportQueued = true;
    this.#reporting = this.#reporting.then(async () => {
      this.#reportQueued = false;
      if (this.#stopped) return;
      const status = podStatus(this.plan, this.#state, new Date().toISOString(), this.#startTime, LOCAL_IP, {
        ready: this.#readySince,
      });
      for (let attempt = 0; attempt < 5 && !this.#stopped; attempt++) {
        try {
          await this.#deps.core.patchNamespacedPodStatus(
            { name: this.plan.name, namespace: this.plan.namespace, body: { status } },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          );
          return;
        } catch (e) {
          if (httpStatus(e) === 404) return;
          if (attempt === 4) this.#note(`cannot report status: ${describeError(e)}`);
          await sleep(500 * (attempt + 1));
        }
      }
    });
  }

  #note(what: string): void {
    const line = `pod ${this.plan.key}: ${what}`;
    this.#deps.log(line);
    try {
      appendFileSync(this.#logFile, `--- node-agent ${new Date().toISOString()} ${what}\n`);
    } catch {
      // The logs folder went away (agent stopping).
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

function parseArgs(argv: string[]): NodeAgentOptions {
  const get = (flag: string) => {
    const i = argv.indexOf(`--${flag}`);
    return i === -1 ? undefined : argv[i + 1];
  };
  const kubeconfig = get('kubeconfig') ?? process.env.KUBECONFIG;
  if (!kubeconfig) {
    process.stderr.write(
      'usage: node testenv/node-agent.ts --kubeconfig FILE [--namespaces a,b] [--logs-dir DIR]\n',
    );
    process.exit(2);
  }
  return { kubeconfig, namespaces: get('namespaces')?.split(','), logsDir: get('logs-dir') };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const agent = await startNodeAgent(parseArgs(process.argv.slice(2)));
  process.stderr.write(`[node-agent] process logs in ${agent.logsDir}\n`);
  const stop = () => {
    void agent.stop().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
