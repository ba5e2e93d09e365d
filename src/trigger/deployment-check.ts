// The value types of spec.deployment, checked against the shape of an apps/v1 Deployment. Pure.
//
// Why: spec.deployment is free-form in the CRD (x-kubernetes-preserve-unknown-fields), so the API server stores any
// JSON there, and the renderer merges it into the dispatcher Deployment. A value of the wrong type would otherwise be
// dropped without a word (a `containers` object, an `env` that is not a list), break the render (a `spec` string)
// or come back from the Deployment write as a decoding error that names no field of the trigger (`replicas: "2"`).
// The controller runs this check when it validates a trigger (spec.ts, validateSpec): every issue names its field
// path, the trigger is reported Ready=False InvalidSpec, and nothing is written for it.
//
// The CRD does not carry these types: seed manifests must keep applying unchanged, and a trigger stored before a
// rule existed must still be reported. Only the fields listed below are checked; an unknown field is left to the API
// server, which refuses or prunes it when the Deployment is written. `null` means "unset", as it does to Kubernetes,
// except where the dispatcher Deployment is built on the value (NOT_NULL) and for list items.

import type { Issue } from './errors.ts';

export type Segment = string | number;

/** A type issue, with the path relative to spec.deployment. */
export interface TypeIssue {
  path: Segment[];
  message: string;
}

type Shape =
  | { kind: 'string' | 'boolean' | 'quantity' | 'intOrString'; nullable: boolean }
  | { kind: 'integer'; bits: 32 | 64; nullable: boolean }
  | { kind: 'object'; fields: Record<string, Shape>; required: readonly string[]; nullable: boolean }
  | { kind: 'map'; values: Shape; nullable: boolean }
  | { kind: 'list'; items: Shape; nullable: boolean };

const str: Shape = { kind: 'string', nullable: true };
const bool: Shape = { kind: 'boolean', nullable: true };
const int32: Shape = { kind: 'integer', bits: 32, nullable: true };
const int64: Shape = { kind: 'integer', bits: 64, nullable: true };
const quantity: Shape = { kind: 'quantity', nullable: true };
const intOrString: Shape = { kind: 'intOrString', nullable: true };
const obj = (fields: Record<string, Shape>, required: readonly string[] = []): Shape => ({
  kind: 'object',
  fields,
  required,
  nullable: true,
});
/** An object whose keys are free (labels, nodeSelector, resource names) and whose values all have one shape. */
const map = (values: Shape): Shape => ({ kind: 'map', values, nullable: true });
/** A list; its items are never null (a null item is no container, volume or env var). */
const list = (items: Shape): Shape => ({
  kind: 'list',
  items: { ...items, nullable: false },
  nullable: true,
});
const notNull = (shape: Shape): Shape => ({ ...shape, nullable: false });
const strings = list(str);

/** Kubernetes' resource.Quantity syntax (the pattern controller-gen writes into CRDs for Quantity fields). */
export const QUANTITY_PATTERN =
  /^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;

const objectMeta = obj({
  name: str,
  generateName: str,
  namespace: str,
  labels: map(str),
  annotations: map(str),
  finalizers: strings,
});
const keyRef = obj({ name: str, key: str, optional: bool });
const nameRef = obj({ name: str, optional: bool });
const keyToPath = obj({ key: str, path: str, mode: int32 });
const seccompProfile = obj({ type: str, localhostProfile: str });
const seLinuxOptions = obj({ user: str, role: str, type: str, level: str });
const labelSelector = obj({
  matchLabels: map(str),
  matchExpressions: list(obj({ key: str, operator: str, values: strings })),
});
const httpGet = obj({
  path: str,
  port: intOrString,
  host: str,
  scheme: str,
  httpHeaders: list(obj({ name: str, value: str })),
});
const tcpSocket = obj({ port: intOrString, host: str });
const execAction = obj({ command: strings });
const probe = obj({
  exec: execAction,
  httpGet,
  tcpSocket,
  grpc: obj({ port: int32, service: str }),
  initialDelaySeconds: int32,
  periodSeconds: int32,
  timeoutSeconds: int32,
  successThreshold: int32,
  failureThreshold: int32,
  terminationGracePeriodSeconds: int64,
});
const lifecycleHandler = obj({ exec: execAction, httpGet, tcpSocket, sleep: obj({ seconds: int64 }) });
const container = obj({
  name: str,
  image: str,
  imagePullPolicy: str,
  command: strings,
  args: strings,
  workingDir: str,
  env: list(
    obj(
      {
        name: str,
        value: str,
        valueFrom: obj({
          secretKeyRef: keyRef,
          configMapKeyRef: keyRef,
          fieldRef: obj({ fieldPath: str, apiVersion: str }),
          resourceFieldRef: obj({ resource: str, containerName: str, divisor: quantity }),
        }),
      },
      // The renderer merges env by name (the trigger's variables win): an entry without one would be dropped.
      ['name'],
    ),
  ),
  envFrom: list(obj({ prefix: str, secretRef: nameRef, configMapRef: nameRef })),
  ports: list(obj({ name: str, containerPort: int32, hostPort: int32, protocol: str, hostIP: str })),
  resources: obj({ limits: map(quantity), requests: map(quantity), claims: list(obj({ name: str })) }),
  resizePolicy: list(obj({ resourceName: str, restartPolicy: str })),
  restartPolicy: str,
  volumeMounts: list(
    obj({
      name: str,
      mountPath: str,
      subPath: str,
      subPathExpr: str,
      mountPropagation: str,
      readOnly: bool,
      recursiveReadOnly: str,
    }),
  ),
  volumeDevices: list(obj({ name: str, devicePath: str })),
  livenessProbe: probe,
  readinessProbe: probe,
  startupProbe: probe,
  lifecycle: obj({ postStart: lifecycleHandler, preStop: lifecycleHandler, stopSignal: str }),
  terminationMessagePath: str,
  terminationMessagePolicy: str,
  securityContext: obj({
    runAsUser: int64,
    runAsGroup: int64,
    runAsNonRoot: bool,
    privileged: bool,
    allowPrivilegeEscalation: bool,
    readOnlyRootFilesystem: bool,
    procMount: str,
    capabilities: obj({ add: strings, drop: strings }),
    seccompProfile,
    seLinuxOptions,
    appArmorProfile: seccompProfile,
  }),
  stdin: bool,
  stdinOnce: bool,
  tty: bool,
});
const volume = obj({
  name: str,
  secret: obj({ secretName: str, items: list(keyToPath), defaultMode: int32, optional: bool }),
  configMap: obj({ name: str, items: list(keyToPath), defaultMode: int32, optional: bool }),
  emptyDir: obj({ medium: str, sizeLimit: quantity }),
  hostPath: obj({ path: str, type: str }),
  persistentVolumeClaim: obj({ claimName: str, readOnly: bool }),
  projected: obj({ sources: list(obj({})), defaultMode: int32 }),
  downwardAPI: obj({ items: list(obj({ path: str, mode: int32 })), defaultMode: int32 }),
  csi: obj({ driver: str, readOnly: bool, fsType: str, volumeAttributes: map(str) }),
  ephemeral: obj({}),
});
const podSpec = obj({
  containers: list(container),
  initContainers: list(container),
  volumes: list(volume),
  nodeSelector: map(str),
  nodeName: str,
  affinity: obj({ nodeAffinity: obj({}), podAffinity: obj({}), podAntiAffinity: obj({}) }),
  tolerations: list(obj({ key: str, operator: str, value: str, effect: str, tolerationSeconds: int64 })),
  topologySpreadConstraints: list(
    obj({
      maxSkew: int32,
      topologyKey: str,
      whenUnsatisfiable: str,
      labelSelector,
      minDomains: int32,
      matchLabelKeys: strings,
      nodeAffinityPolicy: str,
      nodeTaintsPolicy: str,
    }),
  ),
  serviceAccountName: str,
  serviceAccount: str,
  automountServiceAccountToken: bool,
  imagePullSecrets: list(obj({ name: str })),
  securityContext: obj({
    runAsUser: int64,
    runAsGroup: int64,
    runAsNonRoot: bool,
    fsGroup: int64,
    fsGroupChangePolicy: str,
    supplementalGroups: list(int64),
    supplementalGroupsPolicy: str,
    seccompProfile,
    seLinuxOptions,
    appArmorProfile: seccompProfile,
    sysctls: list(obj({ name: str, value: str })),
  }),
  hostNetwork: bool,
  hostPID: bool,
  hostIPC: bool,
  hostUsers: bool,
  shareProcessNamespace: bool,
  enableServiceLinks: bool,
  priorityClassName: str,
  priority: int32,
  preemptionPolicy: str,
  runtimeClassName: str,
  schedulerName: str,
  restartPolicy: str,
  dnsPolicy: str,
  dnsConfig: obj({ nameservers: strings, searches: strings, options: list(obj({ name: str, value: str })) }),
  hostAliases: list(obj({ ip: str, hostnames: strings })),
  hostname: str,
  subdomain: str,
  terminationGracePeriodSeconds: int64,
  activeDeadlineSeconds: int64,
  overhead: map(quantity),
  readinessGates: list(obj({ conditionType: str })),
  os: obj({ name: str }),
});

/**
 * The parts of a Deployment the dispatcher Deployment is built on: the renderer writes into them, and
 * spec.replicas is the replica count the controller reports. A null here would unset what the trigger needs.
 */
export const NOT_NULL = ['metadata', 'spec', 'spec.replicas', 'spec.template', 'spec.template.spec'] as const;

const deployment = obj({
  apiVersion: str,
  kind: str,
  metadata: notNull(objectMeta),
  spec: notNull(
    obj({
      replicas: notNull(int32),
      minReadySeconds: int32,
      revisionHistoryLimit: int32,
      progressDeadlineSeconds: int32,
      paused: bool,
      strategy: obj({
        type: str,
        rollingUpdate: obj({ maxSurge: intOrString, maxUnavailable: intOrString }),
      }),
      template: notNull(obj({ metadata: objectMeta, spec: notNull(podSpec) })),
    }),
  ),
});

/** What the check enforces, in words, for docs/reference.md (each has a unit test). */
export const DEPLOYMENT_TYPE_RULES: readonly string[] = [
  'A field that is an object in a Deployment (`metadata`, `spec`, `strategy`, `template`, `securityContext`, `resources`, `affinity`, a probe, ...) must be an object.',
  'A field that is a list (`containers`, `initContainers`, `volumes`, `env`, `envFrom`, `ports`, `volumeMounts`, `tolerations`, `imagePullSecrets`, `command`, `args`, ...) must be a list; its items must not be null and must have their own type (objects, or strings for `command` and `args`).',
  'Names, images, policies and other text fields (`image`, `serviceAccountName`, `env[].value`, ...) must be strings.',
  'Counts, ports, seconds and ids (`spec.replicas`, `containerPort`, probe timings, `runAsUser`, ...) must be integers; 32-bit ones (`replicas`, ports, probe timings, `defaultMode`, ...) from -2147483648 to 2147483647.',
  'Switches (`paused`, `hostNetwork`, `runAsNonRoot`, `readOnly`, ...) must be true or false.',
  '`labels`, `annotations`, `nodeSelector`, `matchLabels` and CSI `volumeAttributes` must be objects whose values are strings.',
  'Resource quantities (`resources.limits.*`, `resources.requests.*`, `emptyDir.sizeLimit`, `overhead.*`) must be a number or a quantity string like `500m` or `1Gi`.',
  'Probe and lifecycle ports (`httpGet.port`, `tcpSocket.port`) and `strategy.rollingUpdate.maxSurge`/`maxUnavailable` must be an integer or a string.',
  'Every `env` item must have a `name` (a string): the controller merges env by name.',
  '`null` means unset, except for `metadata`, `spec`, `spec.replicas`, `spec.template` and `spec.template.spec`, which the dispatcher Deployment is built on.',
  'Fields the check does not know are left to the API server, which refuses or prunes them when the Deployment is written.',
];

/** At most this many issues are listed (a status message has a size limit); the rest are counted. */
export const MAX_ISSUES = 20;

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** A field path as the API server writes one: `spec.containers[0].resources.limits.cpu`, `labels[app.io/name]`. */
export function formatPath(segments: readonly Segment[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (!IDENTIFIER.test(s)) out += `[${s}]`;
    else out += out === '' ? s : `.${s}`;
  }
  return out;
}

function got(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  switch (typeof value) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    default:
      return 'an object';
  }
}

function show(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The problem with `value` at this level, or undefined when its type fits (its content is checked by walk). */
function mismatch(shape: Shape, value: unknown): string | undefined {
  if (value === null) return shape.nullable ? undefined : `expected ${expected(shape)}, got null`;
  switch (shape.kind) {
    case 'string':
    case 'boolean':
      return typeof value === shape.kind ? undefined : `expected ${expected(shape)}, got ${got(value)}`;
    case 'integer':
      if (typeof value !== 'number') return `expected ${expected(shape)}, got ${got(value)}`;
      if (!Number.isInteger(value)) return `expected ${expected(shape)}, got ${value}`;
      if (shape.bits === 32 && (value < INT32_MIN || value > INT32_MAX))
        return `expected a 32-bit integer (${INT32_MIN} to ${INT32_MAX}), got ${value}`;
      return undefined;
    case 'quantity':
      if (typeof value === 'number') return undefined;
      if (typeof value === 'string')
        return QUANTITY_PATTERN.test(value) ? undefined : `expected ${expected(shape)}, got ${show(value)}`;
      return `expected ${expected(shape)}, got ${got(value)}`;
    case 'intOrString':
      if (typeof value === 'string') return undefined;
      if (typeof value === 'number')
        return Number.isInteger(value) ? undefined : `expected ${expected(shape)}, got ${value}`;
      return `expected ${expected(shape)}, got ${got(value)}`;
    case 'object':
    case 'map':
      return isObject(value) ? undefined : `expected ${expected(shape)}, got ${got(value)}`;
    case 'list':
      return Array.isArray(value) ? undefined : `expected ${expected(shape)}, got ${got(value)}`;
  }
}

function expected(shape: Shape): string {
  switch (shape.kind) {
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'integer':
      return 'an integer';
    case 'quantity':
      return 'a quantity (a number, or a string like 500m or 1Gi)';
    case 'intOrString':
      return 'an integer or a string';
    case 'object':
      return 'an object';
    case 'map':
      return shape.values.kind === 'string' ? 'an object of strings' : 'an object';
    case 'list':
      return 'a list';
  }
}

function walk(shape: Shape, value: unknown, path: Segment[], out: TypeIssue[]): void {
  const problem = mismatch(shape, value);
  if (problem !== undefined) {
    out.push({ path, message: problem });
    return;
  }
  if (value === null) return;
  if (shape.kind === 'object') {
    const o = value as Record<string, unknown>;
    for (const key of shape.required) {
      if (o[key] === undefined || o[key] === null)
        out.push({ path: [...path, key], message: `is required (${expected(shape.fields[key]!)})` });
    }
    for (const [key, child] of Object.entries(shape.fields)) {
      if (o[key] !== undefined && !(o[key] === null && shape.required.includes(key)))
        walk(child, o[key], [...path, key], out);
    }
  } else if (shape.kind === 'map') {
    for (const [key, v] of Object.entries(value as Record<string, unknown>))
      walk(shape.values, v, [...path, key], out);
  } else if (shape.kind === 'list') {
    (value as unknown[]).forEach((item, i) => {
      walk(shape.items, item, [...path, i], out);
    });
  }
}

/**
 * Every value in `override` (a trigger's spec.deployment) whose type cannot be that field's in an apps/v1
 * Deployment, with its path relative to spec.deployment. The first MAX_ISSUES are listed, then one issue on the
 * root counts the rest.
 */
export function deploymentTypeIssues(override: unknown): TypeIssue[] {
  const all: TypeIssue[] = [];
  walk(deployment, override, [], all);
  if (all.length <= MAX_ISSUES) return all;
  const more = all.length - MAX_ISSUES;
  return [
    ...all.slice(0, MAX_ISSUES),
    { path: [], message: `${more} more value${more === 1 ? '' : 's'} of the wrong type` },
  ];
}

/** deploymentTypeIssues with paths written out under `prefix` (spec.deployment.spec.replicas, ...). */
export function checkDeployment(
  override: unknown,
  prefix: readonly Segment[] = ['spec', 'deployment'],
): Issue[] {
  return deploymentTypeIssues(override).map((i) => ({
    path: formatPath([...prefix, ...i.path]),
    message: i.message,
  }));
}
