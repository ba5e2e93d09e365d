// trigger → Deployment (+ the Secret holding an inline token, + with spec.autoscaling KEDA's ScaledObject and
// TriggerAuthentication, keda.ts). Pure: same trigger, config and facts, same objects, same hashes. The controller
// compares the hash annotation of what exists with the hash of what it would write, and writes nothing when they
// match.
//
// The hash is of JSON.stringify of the rendered object, and it does not depend on the order in which a user wrote
// the keys of spec.deployment: everything taken from the user (and from the configuration) is copied with its
// keys sorted (copySorted), and everything else is built by this code in one fixed order, so equal inputs give
// equal text. (It used to sort every level of the output while hashing: 35 of the ~50 µs a render took, measured,
// and the controller renders every trigger it reconciles.)

import { hash as digest } from 'node:crypto';
import { err, type Issue, ok, type Result, TriggerError } from './errors.ts';
import { renderKeda, resolveAutoscaling } from './keda.ts';
import { adminUrlOf, parseTopic } from './names.ts';
import { dispatcherNodeOptions } from './node-options.ts';
import {
  type DispatcherSettings,
  defaultDeadLetterTopic,
  defaultSubscription,
  ENV,
  type EnvVar,
  encodeSettingsEnv,
  SETTINGS_DEFAULTS,
  subscriptionTypeFor,
} from './settings.ts';
import {
  API_VERSION,
  KIND,
  type PulsarTrigger,
  parseDuration,
  type TriggerSpec,
  validateSpec,
} from './spec.ts';

export const CREATED_BY = 'created-by';
export const CREATED_BY_VALUE = 'kubeless-pulsar-trigger';
export const LABEL_TRIGGER_NAME = 'kubeless.io/trigger-name';
export const LABEL_TRIGGER_NAMESPACE = 'kubeless.io/trigger-namespace';
export const LABEL_TRIGGER_UID = 'kubeless.io/trigger-uid';
export const ANNOTATION_HASH = 'kubeless.io/spec-hash';
/** Full name and namespace, for names that do not fit a label value. */
export const ANNOTATION_TRIGGER = 'kubeless.io/trigger';
/**
 * The subscription type the Deployment's dispatchers use. The broker refuses a consumer of another type while one is
 * attached, so a change of type cannot roll: the controller replaces the Deployment instead (reconcile.ts).
 */
export const ANNOTATION_SUBSCRIPTION_TYPE = 'kubeless.io/subscription-type';
export const ANNOTATION_TOKEN_HASH = 'kubeless.io/auth-token-hash';
export const CONTAINER_NAME = 'dispatcher';
export const TOKEN_KEY = 'token';

const TLS_CA_DIR = '/etc/kubeless-pulsar-trigger/tls-ca';
const TLS_CLIENT_DIR = '/etc/kubeless-pulsar-trigger/tls-client';
/** Where the token Secret is mounted; the file is named after TOKEN_KEY whatever the Secret's key is. */
export const AUTH_TOKEN_DIR = '/etc/kubeless-pulsar-trigger/auth-token';
export const AUTH_TOKEN_FILE = `${AUTH_TOKEN_DIR}/${TOKEN_KEY}`;
export const AUTH_TOKEN_VOLUME = 'pulsar-auth-token';
/**
 * The token file's mode: owner (root, as the kubelet writes it) and group read it, nobody else. The group is the
 * pod's fsGroup, DISPATCHER_UID, which the kubelet gives the file and adds to the container's groups.
 */
export const AUTH_TOKEN_MODE = 0o440;
/** The container port serving /healthz, /readyz and /metrics (settings.port); the probes refer to it by name. */
export const OPS_PORT_NAME = 'metrics';
/** The dispatcher image's user and group: distroless "nonroot" (deploy/Dockerfile `USER 65532:65532`). */
export const DISPATCHER_UID = 65532;

export interface ResourceRequirements {
  limits?: Record<string, string>;
  requests?: Record<string, string>;
}

export interface RenderConfig {
  dispatcherImage: string;
  /** Passed to the dispatcher as TZ and TIMEZONE. */
  timezone: string;
  resources: ResourceRequirements;
}

export const DEFAULT_RESOURCES: ResourceRequirements = {
  limits: { cpu: '1', memory: '1Gi' },
  requests: { cpu: '500m', memory: '512Mi' },
};

type Json = null | boolean | number | string | Json[] | JsonObject;
export type JsonObject = { [key: string]: Json };

/**
 * What the controller knows of the world that a render needs beyond the trigger and the configuration. A plan made
 * from facts holds only while they do: memoizing it per uid and generation needs the facts in the key too.
 */
export interface RenderFacts {
  /**
   * Whether the topic is partitioned (the admin API's partitions > 0). KEDA's pulsar scaler reads another endpoint
   * for a partitioned topic, and cannot tell on its own. Unknown (undefined) renders as not partitioned, KEDA's
   * default.
   */
  partitionedTopic?: boolean;
}

export interface Rendered {
  deployment: JsonObject;
  /** The Secret holding an inline auth-token, or undefined when the trigger has none. */
  secret: JsonObject | undefined;
  /** KEDA's ScaledObject, with spec.autoscaling; its kubeless.io/spec-hash annotation is scaledObjectHash. */
  scaledObject: JsonObject | undefined;
  scaledObjectHash: string | undefined;
  /** KEDA's TriggerAuthentication, with spec.autoscaling when KEDA needs the token or TLS material. */
  triggerAuthentication: JsonObject | undefined;
  triggerAuthenticationHash: string | undefined;
  /** Names of the KEDA objects, given also when none is rendered (to find and remove what an older spec made). */
  scaledObjectName: string;
  triggerAuthenticationName: string;
  /** The Pulsar admin REST URL (spec.pulsar.adminUrl, or the broker's implied one). */
  adminUrl: string;
  /** spec.delivery.deleteSubscription: the subscription goes with the trigger. */
  deleteSubscription: boolean;
  /** Hash of everything rendered, also in the Deployment's kubeless.io/spec-hash annotation. */
  hash: string;
  name: string;
  namespace: string;
  /** Whether the Deployment lives in the trigger's namespace (ownerReferences work) or not (a finalizer does). */
  sameNamespace: boolean;
  secretName: string;
  settings: DispatcherSettings;
  /** Labels identifying this trigger's objects; the first three are the Deployment's selector. */
  selector: Record<string, string>;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A deep copy of JSON with every object's keys in sorted order. Used for all input that ends up in the output, so
 * the output's key order (and so its hash) is the same whatever order the input's keys came in.
 */
export function copySorted<T>(v: T): T {
  if (Array.isArray(v)) return v.map(copySorted) as T;
  if (!isObject(v)) return v;
  const out: JsonObject = {};
  for (const k of Object.keys(v).sort()) out[k] = copySorted(v[k] as Json);
  return out as T;
}

/** The seed's merge: maps merge recursively, anything else (lists included) is replaced by the override. */
export function deepMerge(base: Json, override: Json): Json {
  if (!isObject(base) || !isObject(override)) return copySorted(override);
  const out: JsonObject = { ...base };
  for (const [k, v] of Object.entries(override)) {
    out[k] = k in base ? deepMerge(base[k] as Json, v) : copySorted(v);
  }
  return out;
}

function sha(text: string, length: number): string {
  // The one-shot digest: a Hash object per call (createHash) was half of this function's time in the controller.
  return digest('sha256', text, 'hex').slice(0, length);
}

/** A label value (≤63 chars, alphanumeric at both ends) standing for `value`; long ones keep a hash suffix. */
export function labelValue(value: string): string {
  if (value.length <= 63) return value;
  return `${value.slice(0, 52).replace(/[-_.]+$/, '')}-${sha(value, 10)}`;
}

/**
 * The Deployment's name: the trigger's name, as the seed had it. A ReplicaSet is named <deployment>-<hash> and
 * must still be a valid name, so very long names are shortened (with a hash to keep them unique).
 */
export function deploymentName(triggerName: string): string {
  if (triggerName.length <= 200) return triggerName;
  return `${triggerName.slice(0, 189).replace(/[-.]+$/, '')}-${sha(triggerName, 10)}`;
}

export function tokenSecretName(name: string): string {
  return `${name}-pulsar-auth-token`;
}

/**
 * The ScaledObject's name: the Deployment's, shortened as a label value when longer (KEDA labels the HPA and the
 * metrics it serves with scaledobject.keda.sh/name: <name>, so a longer name never scales).
 */
export function scaledObjectName(deployment: string): string {
  return labelValue(deployment);
}

export function triggerAuthenticationName(deployment: string): string {
  return `${deployment}-keda-auth`;
}

/** Labels naming the trigger; name and namespace form the selector, so each Deployment selects only its pods. */
export function triggerLabels(trigger: { name: string; namespace: string }): Record<string, string> {
  return {
    [CREATED_BY]: CREATED_BY_VALUE,
    [LABEL_TRIGGER_NAMESPACE]: labelValue(trigger.namespace),
    [LABEL_TRIGGER_NAME]: labelValue(trigger.name),
  };
}

/** Dispatcher settings for a trigger: its spec with every default filled in. */
export function settingsFor(
  meta: { name: string; namespace: string },
  spec: TriggerSpec,
  timezone: string,
): Result<DispatcherSettings, TriggerError> {
  const issues: Issue[] = [];
  const topic = parseTopic(spec.pulsar.topic);
  if (!topic) issues.push({ path: 'spec.pulsar.topic', message: 'is not a Pulsar topic name' });
  const d = spec.delivery ?? {};
  const ms = (path: string, value: string | undefined, fallback: number): number => {
    if (value === undefined) return fallback;
    const parsed = parseDuration(value);
    if (parsed === undefined) issues.push({ path, message: 'is not a duration' });
    return parsed ?? fallback;
  };
  const subscription = d.subscription ?? defaultSubscription(meta.name, meta.namespace);
  const tls = spec.pulsar.tls;
  const settings: DispatcherSettings = {
    triggerName: meta.name,
    triggerNamespace: meta.namespace,
    timezone,
    topic: topic?.full ?? spec.pulsar.topic,
    broker: spec.pulsar.broker,
    authToken: undefined,
    // Where a token comes from depends on where the dispatcher runs: renderTrigger mounts it, `run` takes flags.
    authTokenFile: undefined,
    tls: {
      caFile: tls?.caSecretRef || tls?.caConfigMapRef ? `${TLS_CA_DIR}/ca.crt` : undefined,
      verifyHostname: tls?.verifyHostname ?? SETTINGS_DEFAULTS.verifyHostname,
      certFile: tls?.clientCertSecretRef ? `${TLS_CLIENT_DIR}/tls.crt` : undefined,
      keyFile: tls?.clientCertSecretRef ? `${TLS_CLIENT_DIR}/tls.key` : undefined,
    },
    functionUrl: spec.kubeless.function,
    subscription,
    subscriptionType: subscriptionTypeFor(d.ordering ?? SETTINGS_DEFAULTS.ordering, d.subscriptionType),
    initialPosition: d.initialPosition ?? SETTINGS_DEFAULTS.initialPosition,
    concurrency: d.concurrency ?? SETTINGS_DEFAULTS.concurrency,
    ordering: d.ordering ?? SETTINGS_DEFAULTS.ordering,
    requestTimeoutMs: ms('spec.delivery.timeout', d.timeout, SETTINGS_DEFAULTS.requestTimeoutMs),
    backoff: {
      initialMs: ms(
        'spec.delivery.retry.initialBackoff',
        d.retry?.initialBackoff,
        SETTINGS_DEFAULTS.backoff.initialMs,
      ),
      maxMs: ms('spec.delivery.retry.maxBackoff', d.retry?.maxBackoff, SETTINGS_DEFAULTS.backoff.maxMs),
      factor: d.retry?.factor ?? SETTINGS_DEFAULTS.backoff.factor,
    },
    maxAttempts: d.retry?.maxAttempts ? d.retry.maxAttempts : undefined,
    deadLetterTopic: d.deadLetterTopic
      ? (parseTopic(d.deadLetterTopic)?.full ?? d.deadLetterTopic)
      : defaultDeadLetterTopic(topic?.full ?? spec.pulsar.topic, subscription),
    statusRules: (d.statusActions ?? []).map((r) => ({ status: r.status, action: r.action })),
    contentType:
      d.contentType === undefined || d.contentType === 'auto'
        ? { kind: 'auto' }
        : { kind: 'fixed', value: d.contentType },
    eventFormat: d.eventFormat ?? SETTINGS_DEFAULTS.eventFormat,
    shutdownGraceMs: SETTINGS_DEFAULTS.shutdownGraceMs,
    port: SETTINGS_DEFAULTS.port,
    logLevel: SETTINGS_DEFAULTS.logLevel,
  };
  if (settings.backoff.maxMs < settings.backoff.initialMs) {
    issues.push({ path: 'spec.delivery.retry.maxBackoff', message: 'must not be less than initialBackoff' });
  }
  if (issues.length > 0)
    return err(new TriggerError('E_RENDER_INVALID', issues, 'cannot render PulsarTrigger'));
  return ok(settings);
}

/** Our variables that a user's entry of the same name replaces: defaults the trigger has no field for. */
const USER_OVERRIDABLE_ENV: ReadonlySet<string> = new Set([ENV.logLevel]);

/**
 * Env vars: the trigger's first (they win on a name clash, except USER_OVERRIDABLE_ENV, which the user's entry
 * replaces in place), then the user's own, in their order.
 */
function mergeEnv(ours: EnvVar[], theirs: unknown): Json[] {
  const user = Array.isArray(theirs)
    ? (theirs as Json[]).filter((e): e is JsonObject => isObject(e) && typeof e.name === 'string')
    : [];
  const userByName = new Map(user.map((e) => [e.name as string, e]));
  const merged = ours.map((e) =>
    USER_OVERRIDABLE_ENV.has(e.name) && userByName.has(e.name)
      ? (userByName.get(e.name) as Json)
      : (e as unknown as Json),
  );
  const taken = new Set(ours.map((e) => e.name));
  return [...merged, ...user.filter((e) => !taken.has(e.name as string))];
}

/** Adds named items to a list, replacing any of the same name: ours must survive a user's list override. */
function upsertByName(list: unknown, items: JsonObject[]): Json[] {
  const names = new Set(items.map((i) => i.name));
  const kept = Array.isArray(list)
    ? (list as Json[]).filter((i) => !(isObject(i) && names.has(i.name as string)))
    : [];
  return [...kept, ...items];
}

/** Adds the kubeless.io/spec-hash annotation: the hash of the object as it is without it (as for the Secret). */
function withHash(obj: JsonObject): JsonObject {
  const meta = obj.metadata as JsonObject;
  meta.annotations = {
    ...(isObject(meta.annotations) ? meta.annotations : {}),
    [ANNOTATION_HASH]: sha(JSON.stringify(obj), 16),
  };
  return obj;
}

function hashOf(obj: JsonObject): string {
  return ((obj.metadata as JsonObject).annotations as Record<string, string>)[ANNOTATION_HASH]!;
}

function ownerReference(trigger: PulsarTrigger): JsonObject[] | undefined {
  if (!trigger.metadata.uid) return undefined;
  return [
    {
      apiVersion: API_VERSION,
      kind: KIND,
      name: trigger.metadata.name,
      uid: trigger.metadata.uid,
      controller: true,
      blockOwnerDeletion: true,
    },
  ];
}

export function renderTrigger(
  trigger: PulsarTrigger,
  config: RenderConfig,
  facts: RenderFacts = {},
): Result<Rendered, TriggerError> {
  const validated = validateSpec(trigger.spec);
  if (!validated.ok) return validated;
  const spec = validated.value;
  const meta = { name: trigger.metadata.name, namespace: trigger.metadata.namespace };
  const settingsResult = settingsFor(meta, spec, config.timezone);
  if (!settingsResult.ok) return settingsResult;
  const adminUrl = adminUrlOf(spec.pulsar);
  if (adminUrl === undefined) {
    return err(
      new TriggerError(
        'E_RENDER_INVALID',
        [{ path: 'spec.pulsar.broker', message: 'gives no host for the default admin URL' }],
        'cannot render PulsarTrigger',
      ),
    );
  }
  const autoscaling = spec.autoscaling ? resolveAutoscaling(spec.autoscaling) : undefined;
  const hasToken = Boolean(spec.pulsar['auth-token'] || spec.pulsar.authTokenSecretRef);
  // With a token, the file the token Secret is mounted as (below).
  const settings = hasToken
    ? { ...settingsResult.value, authTokenFile: AUTH_TOKEN_FILE }
    : settingsResult.value;

  const override: JsonObject = isObject(spec.deployment as Json)
    ? copySorted(spec.deployment as JsonObject)
    : {};
  const overrideMeta = isObject(override.metadata) ? override.metadata : {};
  const namespace =
    typeof overrideMeta.namespace === 'string' && overrideMeta.namespace !== ''
      ? overrideMeta.namespace
      : meta.namespace;
  const sameNamespace = namespace === meta.namespace;
  const name = deploymentName(meta.name);
  const secretName = tokenSecretName(name);
  const selector = triggerLabels(meta);
  const labels: Record<string, string> = {
    ...selector,
    ...(trigger.metadata.uid ? { [LABEL_TRIGGER_UID]: trigger.metadata.uid } : {}),
    'app.kubernetes.io/name': 'kubeless-pulsar-trigger',
    'app.kubernetes.io/component': 'dispatcher',
    'app.kubernetes.io/instance': labelValue(meta.name),
    'app.kubernetes.io/part-of': 'kubeless',
    'app.kubernetes.io/managed-by': 'kubeless-pulsar-trigger',
  };
  const triggerRef = `${meta.namespace}/${meta.name}`;

  // The token: an inline one goes into a Secret the controller owns; a secret reference is used as it is. The
  // Secret reaches the container twice: PULSAR_AUTH_TOKEN (secretKeyRef, for images written for the seed; fixed
  // when the container starts) and the file PULSAR_AUTH_TOKEN_FILE names (a volume the kubelet updates when the
  // Secret changes; our dispatcher reads it, settings.ts tokenSource).
  const inlineToken = spec.pulsar['auth-token'];
  const tokenRef = spec.pulsar.authTokenSecretRef;
  const tokenSecret = inlineToken
    ? { name: secretName, key: TOKEN_KEY }
    : tokenRef
      ? { name: tokenRef.name, key: tokenRef.key }
      : undefined;
  const env = encodeSettingsEnv(
    settings,
    tokenSecret ? { authTokenFrom: { secretKeyRef: { name: tokenSecret.name, key: tokenSecret.key } } } : {},
  );

  const volumes: JsonObject[] = [];
  const mounts: JsonObject[] = [];
  const tls = spec.pulsar.tls;
  if (tls?.caSecretRef) {
    volumes.push({
      name: 'pulsar-tls-ca',
      secret: { secretName: tls.caSecretRef.name, items: [{ key: tls.caSecretRef.key, path: 'ca.crt' }] },
    });
  } else if (tls?.caConfigMapRef) {
    volumes.push({
      name: 'pulsar-tls-ca',
      configMap: { name: tls.caConfigMapRef.name, items: [{ key: tls.caConfigMapRef.key, path: 'ca.crt' }] },
    });
  }
  if (volumes.length > 0) mounts.push({ name: 'pulsar-tls-ca', mountPath: TLS_CA_DIR, readOnly: true });
  if (tls?.clientCertSecretRef) {
    volumes.push({ name: 'pulsar-tls-client', secret: { secretName: tls.clientCertSecretRef.name } });
    mounts.push({ name: 'pulsar-tls-client', mountPath: TLS_CLIENT_DIR, readOnly: true });
  }
  if (tokenSecret) {
    // Only the token's key, under a fixed file name. The folder is mounted whole, never with subPath: the kubelet
    // updates a Secret volume by swapping the folder's ..data link, and a subPath mount would keep the old file.
    volumes.push({
      name: AUTH_TOKEN_VOLUME,
      secret: {
        secretName: tokenSecret.name,
        items: [{ key: tokenSecret.key, path: TOKEN_KEY }],
        defaultMode: AUTH_TOKEN_MODE,
      },
    });
    mounts.push({ name: AUTH_TOKEN_VOLUME, mountPath: AUTH_TOKEN_DIR, readOnly: true });
  }

  const opsPort: JsonObject = { name: OPS_PORT_NAME, containerPort: settings.port, protocol: 'TCP' };
  const container: JsonObject = {
    name: CONTAINER_NAME,
    image: config.dispatcherImage,
    resources: copySorted(config.resources) as JsonObject,
    ports: [opsPort],
    // 200 once every trigger is subscribed on a live broker connection, 503 before that, while reconnecting and
    // while stopping: a rollout waits for the new pod to consume before it stops the old one.
    readinessProbe: {
      httpGet: { path: '/readyz', port: OPS_PORT_NAME },
      periodSeconds: 5,
      timeoutSeconds: 3,
      failureThreshold: 3,
    },
    // Only the event loop has to answer. The ops server listens as soon as the process has loaded, before the first
    // subscription (a slow broker delays readiness, not this), so a start needs no startupProbe to protect it; three
    // misses 10 s apart restart a hung process.
    livenessProbe: {
      httpGet: { path: '/healthz', port: OPS_PORT_NAME },
      periodSeconds: 10,
      timeoutSeconds: 3,
      failureThreshold: 3,
    },
    // allowPrivilegeEscalation, capabilities and readOnlyRootFilesystem exist only per container; runAsNonRoot and
    // seccompProfile repeat the pod's, and a container's value wins over the pod's. No scratch volume under the
    // read-only root: the dispatcher only reads files (token, TLS certificates) and Node itself writes none.
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
  const template: JsonObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels: { ...labels } },
    spec: {
      // With spec.autoscaling no replicas: the controller's apply leaves the field to KEDA's HPA.
      ...(autoscaling ? {} : { replicas: 1 }),
      selector: { matchLabels: { ...selector } },
      // An Exclusive subscription admits one consumer: in a rolling update the new pod could not subscribe, and so
      // never become ready, while the old one holds it. The old pod stops first instead.
      ...(settings.subscriptionType === 'Exclusive' ? { strategy: { type: 'Recreate' } } : {}),
      template: {
        metadata: { labels: { ...labels } },
        spec: {
          // The dispatcher talks to Pulsar and to the function, never to the Kubernetes API: no token in the pod.
          automountServiceAccountToken: false,
          // The user and group for every container, numeric so that runAsNonRoot can be checked. fsGroup only with
          // a token: the kubelet gives the token file (mode 0440, root's) that group and adds the group to the
          // container's, so the dispatcher reads it and other users do not. Without a token no volume needs it: the
          // TLS files mounted are readable by every user (mode 0644) and nothing is written.
          securityContext: {
            runAsNonRoot: true,
            runAsUser: DISPATCHER_UID,
            runAsGroup: DISPATCHER_UID,
            ...(tokenSecret ? { fsGroup: DISPATCHER_UID } : {}),
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [container],
        },
      },
    },
  };

  // The seed's merge, except that the first container merges into the dispatcher container.
  const overrideContainers = (override.spec as JsonObject | undefined)?.template as JsonObject | undefined;
  const podOverride = isObject(overrideContainers?.spec as Json)
    ? (overrideContainers?.spec as JsonObject)
    : {};
  const userContainers = Array.isArray(podOverride.containers) ? (podOverride.containers as Json[]) : [];
  const merged = deepMerge(template, override) as JsonObject;
  const mSpec = merged.spec as JsonObject;
  const mTemplate = mSpec.template as JsonObject;
  const mPod = mTemplate.spec as JsonObject;
  const first = userContainers[0];
  const dispatcher = deepMerge(container, isObject(first) ? first : {}) as JsonObject;
  dispatcher.env = mergeEnv(env, isObject(first) ? first.env : undefined);
  // V8 heap flags sized from the container's memory limit (node-options.ts), unless the user set NODE_OPTIONS.
  const dispatcherEnv = dispatcher.env as Json[];
  if (!dispatcherEnv.some((e) => isObject(e) && e.name === 'NODE_OPTIONS')) {
    const resources = dispatcher.resources;
    const limits = isObject(resources ?? null) ? (resources as JsonObject).limits : undefined;
    const memory = isObject(limits ?? null) ? (limits as JsonObject).memory : undefined;
    dispatcherEnv.push({ name: 'NODE_OPTIONS', value: dispatcherNodeOptions(memory) });
  }
  // The probes name the ops port, so it survives a user's list of ports.
  dispatcher.ports = upsertByName(dispatcher.ports, [opsPort]);
  if (mounts.length > 0) dispatcher.volumeMounts = upsertByName(dispatcher.volumeMounts, mounts);
  mPod.containers = [dispatcher, ...userContainers.slice(1).map(copySorted)];
  if (volumes.length > 0) mPod.volumes = upsertByName(mPod.volumes, volumes);

  // What identifies the Deployment is not the user's to change: its kind, name, namespace, selector, our labels.
  merged.apiVersion = 'apps/v1';
  merged.kind = 'Deployment';
  const mMeta = merged.metadata as JsonObject;
  mMeta.name = name;
  mMeta.namespace = namespace;
  mMeta.labels = { ...(isObject(mMeta.labels) ? mMeta.labels : {}), ...labels };
  mMeta.annotations = {
    ...(isObject(mMeta.annotations) ? mMeta.annotations : {}),
    [ANNOTATION_TRIGGER]: triggerRef,
    [ANNOTATION_SUBSCRIPTION_TYPE]: settings.subscriptionType,
  };
  if (sameNamespace) {
    const refs = ownerReference(trigger);
    if (refs) mMeta.ownerReferences = refs;
  } else delete mMeta.ownerReferences;
  mSpec.selector = { matchLabels: { ...selector } };
  if (autoscaling) delete mSpec.replicas;
  const tMeta = (isObject(mTemplate.metadata) ? mTemplate.metadata : {}) as JsonObject;
  tMeta.labels = { ...(isObject(tMeta.labels) ? tMeta.labels : {}), ...labels };
  if (inlineToken) {
    // Env from a Secret does not restart pods when the Secret changes; a template annotation does. The token file
    // would follow the Secret without a restart, but PULSAR_AUTH_TOKEN (custom images) would not, and a changed
    // spec.pulsar rolls the Deployment as any other spec change does. A referenced Secret is the user's to
    // rotate in place: no annotation, the file follows.
    tMeta.annotations = {
      ...(isObject(tMeta.annotations) ? tMeta.annotations : {}),
      [ANNOTATION_TOKEN_HASH]: sha(inlineToken, 16),
    };
  }
  mTemplate.metadata = tMeta;

  let secret: JsonObject | undefined;
  if (inlineToken) {
    const secretMeta: JsonObject = {
      name: secretName,
      namespace,
      labels: { ...labels },
      annotations: { [ANNOTATION_TRIGGER]: triggerRef },
    };
    const refs = sameNamespace ? ownerReference(trigger) : undefined;
    if (refs) secretMeta.ownerReferences = refs;
    secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: secretMeta,
      type: 'Opaque',
      data: { [TOKEN_KEY]: Buffer.from(inlineToken, 'utf8').toString('base64') },
    };
    secretMeta.annotations = {
      ...(secretMeta.annotations as JsonObject),
      [ANNOTATION_HASH]: sha(JSON.stringify(secret), 16),
    };
  }

  // KEDA's objects live beside the Deployment and belong to the trigger as the Secret does: owned when in its
  // namespace, else removed through the controller's finalizer.
  const soName = scaledObjectName(name);
  const taName = triggerAuthenticationName(name);
  let keda: { scaledObject: JsonObject; triggerAuthentication: JsonObject | undefined } | undefined;
  if (autoscaling) {
    const ca = tls?.caSecretRef
      ? { kind: 'Secret' as const, name: tls.caSecretRef.name, key: tls.caSecretRef.key }
      : tls?.caConfigMapRef
        ? { kind: 'ConfigMap' as const, name: tls.caConfigMapRef.name, key: tls.caConfigMapRef.key }
        : undefined;
    const rendered = renderKeda({
      meta: (objectName) => {
        const m: JsonObject = {
          name: objectName,
          namespace,
          labels: { ...labels },
          annotations: { [ANNOTATION_TRIGGER]: triggerRef },
        };
        const refs = sameNamespace ? ownerReference(trigger) : undefined;
        if (refs) m.ownerReferences = refs;
        return m;
      },
      scaledObjectName: soName,
      triggerAuthenticationName: taName,
      deploymentName: name,
      adminUrl,
      topic: settings.topic,
      subscription: settings.subscription,
      partitioned: facts.partitionedTopic === true,
      autoscaling,
      auth: { token: tokenSecret, ca, clientCertSecret: tls?.clientCertSecretRef?.name },
    });
    keda = {
      scaledObject: withHash(rendered.scaledObject),
      triggerAuthentication: rendered.triggerAuthentication && withHash(rendered.triggerAuthentication),
    };
  }

  const hash = sha(JSON.stringify(merged), 16);
  mMeta.annotations = { ...(mMeta.annotations as JsonObject), [ANNOTATION_HASH]: hash };
  return ok({
    deployment: merged,
    secret,
    scaledObject: keda?.scaledObject,
    scaledObjectHash: keda && hashOf(keda.scaledObject),
    triggerAuthentication: keda?.triggerAuthentication,
    triggerAuthenticationHash: keda?.triggerAuthentication && hashOf(keda.triggerAuthentication),
    scaledObjectName: soName,
    triggerAuthenticationName: taName,
    adminUrl,
    deleteSubscription: spec.delivery?.deleteSubscription === true,
    hash,
    name,
    namespace,
    sameNamespace,
    secretName,
    settings,
    selector,
  });
}
