// The node agent's pure half: what to run for one Pod, as a kubelet would, minus the container runtime. Given a
// Pod (its first container), this module says which Secrets and ConfigMaps it needs, builds the environment
// (value, valueFrom.secretKeyRef / configMapKeyRef / fieldRef, envFrom, $(VAR) expansion), lists the files of
// Secret/ConfigMap volumes, rewrites env values that point into a mountPath to the local folder holding that
// volume, and builds the Pod status the agent reports. No I/O: testenv/node-agent.ts feeds it what it read.
//
// The container's image and command are ignored: locally every container is the dispatcher,
// `node bin/kubeless-pulsar-trigger.js dispatcher`, which is what the project's dispatcher image runs.

export interface EnvVarLike {
  name: string;
  value?: string | undefined;
  valueFrom?:
    | {
        secretKeyRef?: { name?: string; key: string; optional?: boolean } | undefined;
        configMapKeyRef?: { name?: string; key: string; optional?: boolean } | undefined;
        fieldRef?: { fieldPath: string } | undefined;
        resourceFieldRef?: unknown;
      }
    | undefined;
}

export interface EnvFromLike {
  prefix?: string | undefined;
  secretRef?: { name?: string; optional?: boolean } | undefined;
  configMapRef?: { name?: string; optional?: boolean } | undefined;
}

export interface KeyToPathLike {
  key: string;
  path: string;
}

export interface VolumeLike {
  name: string;
  secret?: { secretName?: string; items?: KeyToPathLike[]; optional?: boolean } | undefined;
  configMap?: { name?: string; items?: KeyToPathLike[]; optional?: boolean } | undefined;
  [other: string]: unknown;
}

export interface ContainerLike {
  name: string;
  image?: string | undefined;
  env?: EnvVarLike[] | undefined;
  envFrom?: EnvFromLike[] | undefined;
  volumeMounts?: { name: string; mountPath: string; subPath?: string }[] | undefined;
}

export interface PodLike {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: unknown;
    creationTimestamp?: unknown;
  };
  spec?: {
    containers: ContainerLike[];
    volumes?: VolumeLike[] | undefined;
    serviceAccountName?: string | undefined;
    terminationGracePeriodSeconds?: number | undefined;
  };
}

/** A Secret or ConfigMap volume mounted into the dispatcher container. */
export interface MountPlan {
  volume: string;
  mountPath: string;
  kind: 'secret' | 'configMap';
  /** The Secret's or ConfigMap's name. */
  source: string;
  items: KeyToPathLike[] | undefined;
  optional: boolean;
}

export interface ProcessPlan {
  /** namespace/name of the Pod. */
  key: string;
  namespace: string;
  name: string;
  uid: string;
  container: string;
  image: string;
  env: EnvVarLike[];
  envFrom: EnvFromLike[];
  mounts: MountPlan[];
  graceMs: number;
  /** What the agent cannot do locally (other volume kinds, resourceFieldRef...); logged, never fatal. */
  ignored: string[];
}

export type PlanResult = { ok: true; plan: ProcessPlan } | { ok: false; reason: string };

/** What to run for a Pod, or why nothing runs (being deleted, no container). */
export function planPod(pod: PodLike): PlanResult {
  const m = pod.metadata ?? {};
  if (!m.name || !m.namespace || !m.uid) return { ok: false, reason: 'pod without name, namespace or uid' };
  if (m.deletionTimestamp) return { ok: false, reason: 'pod is being deleted' };
  const c = pod.spec?.containers?.[0];
  if (!c) return { ok: false, reason: 'pod has no container' };
  const ignored: string[] = [];
  if ((pod.spec?.containers.length ?? 0) > 1)
    ignored.push('containers after the first (only the dispatcher runs)');
  const volumes = new Map((pod.spec?.volumes ?? []).map((v) => [v.name, v]));
  const mounts: MountPlan[] = [];
  for (const vm of c.volumeMounts ?? []) {
    const v = volumes.get(vm.name);
    if (vm.subPath) {
      ignored.push(`volumeMount ${vm.name}: subPath`);
      continue;
    }
    if (v?.secret?.secretName) {
      mounts.push({
        volume: vm.name,
        mountPath: vm.mountPath,
        kind: 'secret',
        source: v.secret.secretName,
        items: v.secret.items,
        optional: v.secret.optional === true,
      });
    } else if (v?.configMap?.name) {
      mounts.push({
        volume: vm.name,
        mountPath: vm.mountPath,
        kind: 'configMap',
        source: v.configMap.name,
        items: v.configMap.items,
        optional: v.configMap.optional === true,
      });
    } else ignored.push(`volume ${vm.name}: only secret and configMap volumes are materialized`);
  }
  for (const e of c.env ?? []) {
    if (e.valueFrom?.resourceFieldRef) ignored.push(`env ${e.name}: resourceFieldRef`);
  }
  const grace = pod.spec?.terminationGracePeriodSeconds;
  return {
    ok: true,
    plan: {
      key: `${m.namespace}/${m.name}`,
      namespace: m.namespace,
      name: m.name,
      uid: m.uid,
      container: c.name,
      image: c.image ?? '',
      env: c.env ?? [],
      envFrom: c.envFrom ?? [],
      mounts,
      graceMs: Math.min(grace ?? 30, 60) * 1000,
      ignored,
    },
  };
}

/** The Secrets and ConfigMaps (by name, in the Pod's namespace) the plan reads. */
export function referencedObjects(plan: ProcessPlan): { secrets: string[]; configMaps: string[] } {
  const secrets = new Set<string>();
  const configMaps = new Set<string>();
  for (const e of plan.env) {
    const s = e.valueFrom?.secretKeyRef?.name;
    const c = e.valueFrom?.configMapKeyRef?.name;
    if (s) secrets.add(s);
    if (c) configMaps.add(c);
  }
  for (const f of plan.envFrom) {
    if (f.secretRef?.name) secrets.add(f.secretRef.name);
    if (f.configMapRef?.name) configMaps.add(f.configMapRef.name);
  }
  for (const mt of plan.mounts) (mt.kind === 'secret' ? secrets : configMaps).add(mt.source);
  return { secrets: [...secrets].sort(), configMaps: [...configMaps].sort() };
}

/** Secret and ConfigMap contents by name (Secret data already base64-decoded); undefined: does not exist. */
export interface ObjectData {
  secrets: ReadonlyMap<string, Record<string, Uint8Array> | undefined>;
  configMaps: ReadonlyMap<string, Record<string, Uint8Array> | undefined>;
}

export interface LocalContext {
  pod: PodLike;
  /** mountPath → the local folder the agent wrote that volume to. */
  mountDirs: ReadonlyMap<string, string>;
  /** What status.podIP / status.hostIP / spec.nodeName resolve to. */
  podIp: string;
  nodeName: string;
}

export type EnvResult = { ok: true; env: Record<string, string> } | { ok: false; reason: string };

const text = new TextDecoder();

function lookup(
  data: ObjectData,
  kind: 'secret' | 'configMap',
  name: string,
): Record<string, Uint8Array> | undefined {
  return (kind === 'secret' ? data.secrets : data.configMaps).get(name);
}

/** The value of a downward-API fieldRef, or undefined for a path the agent does not know. */
export function fieldValue(path: string, ctx: LocalContext): string | undefined {
  const m = ctx.pod.metadata ?? {};
  const mapKey = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (mapKey) return (mapKey[1] === 'labels' ? m.labels : m.annotations)?.[mapKey[2]!] ?? '';
  switch (path) {
    case 'metadata.name':
      return m.name;
    case 'metadata.namespace':
      return m.namespace;
    case 'metadata.uid':
      return m.uid;
    case 'spec.nodeName':
      return ctx.nodeName;
    case 'spec.serviceAccountName':
      return ctx.pod.spec?.serviceAccountName ?? 'default';
    case 'status.podIP':
    case 'status.hostIP':
      return ctx.podIp;
    default:
      return undefined;
  }
}

/** Kubernetes' $(VAR) expansion: references to variables defined earlier; $$ escapes; unknown ones stay as is. */
export function expandVars(value: string, defined: Readonly<Record<string, string>>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) => {
    if (name === undefined) return '$';
    return Object.hasOwn(defined, name) ? defined[name]! : whole;
  });
}

/** A value that is a path inside a mounted volume now points into the volume's local folder. */
export function rewriteMountPath(value: string, mountDirs: ReadonlyMap<string, string>): string {
  let best: [string, string] | undefined;
  for (const [mountPath, dir] of mountDirs) {
    const base = mountPath.replace(/\/+$/, '');
    if ((value === base || value.startsWith(`${base}/`)) && (!best || base.length > best[0].length))
      best = [base, dir];
  }
  return best ? best[1] + value.slice(best[0].length) : value;
}

/**
 * The container's environment, resolved like the kubelet does at container start: envFrom first, then env in
 * order (later wins), each value $(VAR)-expanded against what is defined so far. A missing Secret, ConfigMap or
 * key that is not optional fails (the kubelet's CreateContainerConfigError).
 */
export function resolveEnv(plan: ProcessPlan, data: ObjectData, ctx: LocalContext): EnvResult {
  const env: Record<string, string> = {};
  for (const f of plan.envFrom) {
    const ref = f.secretRef ?? f.configMapRef;
    const kind = f.secretRef ? 'secret' : 'configMap';
    if (!ref?.name) continue;
    const obj = lookup(data, kind, ref.name);
    if (!obj) {
      if (ref.optional) continue;
      return { ok: false, reason: `${kind} "${ref.name}" not found (envFrom)` };
    }
    for (const [k, v] of Object.entries(obj)) env[`${f.prefix ?? ''}${k}`] = text.decode(v);
  }
  for (const e of plan.env) {
    const from = e.valueFrom;
    if (!from) {
      env[e.name] = expandVars(e.value ?? '', env);
      continue;
    }
    const keyRef = from.secretKeyRef ?? from.configMapKeyRef;
    if (keyRef) {
      const kind = from.secretKeyRef ? 'secret' : 'configMap';
      const obj = keyRef.name ? lookup(data, kind, keyRef.name) : undefined;
      const value = obj?.[keyRef.key];
      if (value === undefined) {
        if (keyRef.optional) continue;
        return {
          ok: false,
          reason: obj
            ? `key "${keyRef.key}" not found in ${kind} "${keyRef.name}" (env ${e.name})`
            : `${kind} "${keyRef.name}" not found (env ${e.name})`,
        };
      }
      env[e.name] = text.decode(value);
      continue;
    }
    if (from.fieldRef) {
      const v = fieldValue(from.fieldRef.fieldPath, ctx);
      if (v === undefined)
        return { ok: false, reason: `env ${e.name}: unsupported fieldRef ${from.fieldRef.fieldPath}` };
      env[e.name] = v;
    }
  }
  for (const [k, v] of Object.entries(env)) env[k] = rewriteMountPath(v, ctx.mountDirs);
  return { ok: true, env };
}

export type FilesResult =
  | { ok: true; files: { path: string; content: Uint8Array }[] }
  | { ok: false; reason: string };

/** The files of one volume (relative paths): its items, or every key. */
export function volumeFiles(mount: MountPlan, data: ObjectData): FilesResult {
  const obj = lookup(data, mount.kind, mount.source);
  if (!obj) {
    return mount.optional
      ? { ok: true, files: [] }
      : { ok: false, reason: `${mount.kind} "${mount.source}" not found (volume ${mount.volume})` };
  }
  const files: { path: string; content: Uint8Array }[] = [];
  const items = mount.items ?? Object.keys(obj).map((key) => ({ key, path: key }));
  for (const item of items) {
    const content = obj[item.key];
    if (content === undefined) {
      if (mount.optional) continue;
      return {
        ok: false,
        reason: `key "${item.key}" not found in ${mount.kind} "${mount.source}" (volume ${mount.volume})`,
      };
    }
    if (item.path.split('/').includes('..') || item.path.startsWith('/'))
      return { ok: false, reason: `volume ${mount.volume}: path "${item.path}" leaves the volume` };
    files.push({ path: item.path, content });
  }
  return { ok: true, files };
}

/** Delay before restarting a process that exited: the kubelet's CrashLoopBackOff shape (doubling, capped). */
export function restartDelayMs(restarts: number, initialMs = 1000, maxMs = 30_000): number {
  return Math.min(maxMs, initialMs * 2 ** Math.max(0, Math.min(restarts, 20)));
}

/** What the agent knows about the process behind a Pod, to be shown on the Pod's status. */
export interface ProcessState {
  phase: 'waiting' | 'running';
  ready: boolean;
  restartCount: number;
  /** ISO time the current process started (running) . */
  startedAt?: string | undefined;
  /** Why it is not running (waiting): CreateContainerConfigError, CrashLoopBackOff, ContainerCreating. */
  reason?: string | undefined;
  message?: string | undefined;
  lastExit?:
    | { exitCode: number; reason: string; finishedAt: string; startedAt?: string | undefined }
    | undefined;
  pid?: number | undefined;
}

/**
 * The Pod status for a process state: Running with Ready/ContainersReady conditions, which the real ReplicaSet
 * and Deployment controllers turn into readyReplicas and availableReplicas. `since` keeps lastTransitionTime
 * stable while a condition does not change.
 */
export function podStatus(
  plan: ProcessPlan,
  state: ProcessState,
  now: string,
  startTime: string,
  podIp: string,
  since: { ready?: string | undefined } = {},
): Record<string, unknown> {
  const readyStatus = state.ready ? 'True' : 'False';
  const readyTime = since.ready ?? now;
  const cond = (type: string, status: string, time: string, reason?: string) => ({
    type,
    status,
    lastProbeTime: null,
    lastTransitionTime: time,
    ...(reason ? { reason } : {}),
  });
  const containerState =
    state.phase === 'running'
      ? { running: { startedAt: state.startedAt ?? now } }
      : {
          waiting: {
            reason: state.reason ?? 'ContainerCreating',
            ...(state.message ? { message: state.message } : {}),
          },
        };
  const lastState = state.lastExit
    ? {
        terminated: {
          exitCode: state.lastExit.exitCode,
          reason: state.lastExit.reason,
          finishedAt: state.lastExit.finishedAt,
          ...(state.lastExit.startedAt ? { startedAt: state.lastExit.startedAt } : {}),
        },
      }
    : {};
  return {
    phase: state.phase === 'running' || state.restartCount > 0 ? 'Running' : 'Pending',
    hostIP: podIp,
    podIP: podIp,
    podIPs: [{ ip: podIp }],
    startTime,
    conditions: [
      cond('PodScheduled', 'True', startTime),
      cond('Initialized', 'True', startTime),
      cond('ContainersReady', readyStatus, readyTime, state.ready ? undefined : 'ContainersNotReady'),
      cond('Ready', readyStatus, readyTime, state.ready ? undefined : 'ContainersNotReady'),
    ],
    containerStatuses: [
      {
        name: plan.container,
        image: plan.image,
        imageID: '',
        ready: state.ready,
        started: state.phase === 'running',
        restartCount: state.restartCount,
        state: containerState,
        lastState,
        ...(state.pid !== undefined ? { containerID: `local://${state.pid}` } : {}),
      },
    ],
  };
}
