// trigger → Deployment (+ the Secret holding an inline token). Pure: same trigger and config, same objects, same
// hash. The controller compares the hash annotation of what exists with the hash of what it would write, and
// writes nothing when they match.
//
// The hash is of JSON.stringify of the rendered object, and it does not depend on the order in which a user wrote
// the keys of spec.deployment: everything taken from the user (and from the configuration) is copied with its
// keys sorted (copySorted), and everything else is built by this code in one fixed order, so equal inputs give
// equal text. (It used to sort every level of the output while hashing: 35 of the ~50 µs a render took, measured,
// and the controller renders every trigger it reconciles.)

import { hash as digest } from 'node:crypto';
import { err, type Issue, ok, type Result, TriggerError } from './errors.ts';
import { parseTopic } from './names.ts';
import { dispatcherNodeOptions } from './node-options.ts';
import {
  type DispatcherSettings,
  defaultDeadLetterTopic,
  defaultSubscription,
  type EnvVar,
  encodeSettingsEnv,
  SETTINGS_DEFAULTS,
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
export const ANNOTATION_TOKEN_HASH = 'kubeless.io/auth-token-hash';
export const CONTAINER_NAME = 'dispatcher';
export const TOKEN_KEY = 'token';

const TLS_CA_DIR = '/etc/kubeless-pulsar-trigger/tls-ca';
const TLS_CLIENT_DIR = '/etc/kubeless-pulsar-trigger/tls-client';

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

export interface Rendered {
  deployment: JsonObject;
  /** The Secret holding an inline auth-token, or undefined when the trigger has none. */
  secret: JsonObject | undefined;
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
    authTokenFile: undefined,
    tls: {
      caFile: tls?.caSecretRef || tls?.caConfigMapRef ? `${TLS_CA_DIR}/ca.crt` : undefined,
      verifyHostname: tls?.verifyHostname ?? SETTINGS_DEFAULTS.verifyHostname,
      certFile: tls?.clientCertSecretRef ? `${TLS_CLIENT_DIR}/tls.crt` : undefined,
      keyFile: tls?.clientCertSecretRef ? `${TLS_CLIENT_DIR}/tls.key` : undefined,
    },
    functionUrl: spec.kubeless.function,
    subscription,
    subscriptionType: d.subscriptionType ?? SETTINGS_DEFAULTS.subscriptionType,
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

/** Env vars: the trigger's first (they win on a name clash), then the user's own, in their order. */
function mergeEnv(ours: EnvVar[], theirs: unknown): Json[] {
  const taken = new Set(ours.map((e) => e.name));
  const user = Array.isArray(theirs)
    ? (theirs as Json[]).filter((e) => isObject(e) && typeof e.name === 'string' && !taken.has(e.name))
    : [];
  return [...(ours as unknown as Json[]), ...user];
}

/** Adds named items to a list, replacing any of the same name: ours must survive a user's list override. */
function upsertByName(list: unknown, items: JsonObject[]): Json[] {
  const names = new Set(items.map((i) => i.name));
  const kept = Array.isArray(list)
    ? (list as Json[]).filter((i) => !(isObject(i) && names.has(i.name as string)))
    : [];
  return [...kept, ...items];
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

export function renderTrigger(trigger: PulsarTrigger, config: RenderConfig): Result<Rendered, TriggerError> {
  const validated = validateSpec(trigger.spec);
  if (!validated.ok) return validated;
  const spec = validated.value;
  const meta = { name: trigger.metadata.name, namespace: trigger.metadata.namespace };
  const settingsResult = settingsFor(meta, spec, config.timezone);
  if (!settingsResult.ok) return settingsResult;
  const settings = settingsResult.value;

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

  // The token: an inline one goes into a Secret the controller owns; a secret reference is used as it is.
  const inlineToken = spec.pulsar['auth-token'];
  const tokenRef = spec.pulsar.authTokenSecretRef;
  const authTokenFrom = inlineToken
    ? { secretKeyRef: { name: secretName, key: TOKEN_KEY } }
    : tokenRef
      ? { secretKeyRef: { name: tokenRef.name, key: tokenRef.key } }
      : undefined;
  const env = encodeSettingsEnv(settings, authTokenFrom ? { authTokenFrom } : {});

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

  const container: JsonObject = {
    name: CONTAINER_NAME,
    image: config.dispatcherImage,
    resources: copySorted(config.resources) as JsonObject,
    ports: [{ name: 'metrics', containerPort: settings.port, protocol: 'TCP' }],
  };
  const template: JsonObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels: { ...labels } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { ...selector } },
      template: {
        metadata: { labels: { ...labels } },
        spec: { containers: [container] },
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
  if (mounts.length > 0) dispatcher.volumeMounts = upsertByName(dispatcher.volumeMounts, mounts);
  mPod.containers = [dispatcher, ...userContainers.slice(1).map(copySorted)];
  if (volumes.length > 0) mPod.volumes = upsertByName(mPod.volumes, volumes);

  // What identifies the Deployment is not the user's to change: name, namespace, selector, our labels.
  const mMeta = merged.metadata as JsonObject;
  mMeta.name = name;
  mMeta.namespace = namespace;
  mMeta.labels = { ...(isObject(mMeta.labels) ? mMeta.labels : {}), ...labels };
  mMeta.annotations = {
    ...(isObject(mMeta.annotations) ? mMeta.annotations : {}),
    [ANNOTATION_TRIGGER]: triggerRef,
  };
  if (sameNamespace) {
    const refs = ownerReference(trigger);
    if (refs) mMeta.ownerReferences = refs;
  } else delete mMeta.ownerReferences;
  mSpec.selector = { matchLabels: { ...selector } };
  const tMeta = (isObject(mTemplate.metadata) ? mTemplate.metadata : {}) as JsonObject;
  tMeta.labels = { ...(isObject(tMeta.labels) ? tMeta.labels : {}), ...labels };
  if (inlineToken) {
    // Env from a Secret does not restart pods when the Secret changes; a template annotation does.
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

  const hash = sha(JSON.stringify(merged), 16);
  mMeta.annotations = { ...(mMeta.annotations as JsonObject), [ANNOTATION_HASH]: hash };
  return ok({
    deployment: merged,
    secret,
    hash,
    name,
    namespace,
    sameNamespace,
    secretName,
    settings,
    selector,
  });
}
