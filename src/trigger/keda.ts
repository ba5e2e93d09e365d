// trigger → KEDA's ScaledObject (+ the TriggerAuthentication it reads the token and TLS material from), for
// spec.autoscaling. Pure, and no runtime imports from the rest of src/trigger/: render.ts resolves names, labels and
// the token's Secret and calls in here; spec.ts takes the defaults and the duration form from here.
//
// KEDA's pulsar scaler (keda.sh/v1alpha1, trigger type `pulsar`) reads the subscription's msgBacklog from the admin
// REST API (GET <adminURL>/admin/v2/persistent/<topic>/stats, or /partitioned-stats) every pollingInterval. Below
// activationMsgBacklogThreshold the target is inactive and, with minReplicaCount 0, scaled to zero once
// cooldownPeriod has passed; above it KEDA's HPA aims at msgBacklogThreshold messages per replica. Every value is
// written out, defaults included, so what runs does not depend on KEDA's defaults of the day.
//
// Authentication (the scaler's authModes and the TriggerAuthentication's parameters):
// - a token (inline: the controller's Secret; authTokenSecretRef: the user's Secret and key) → authModes `bearer`,
//   parameter `bearerToken` from the Secret. The token is only ever named, never copied.
// - with an https admin URL: the client certificate (tls.clientCertSecretRef, a kubernetes.io/tls Secret) → authModes
//   `tls`, parameters `cert` (tls.crt) and `key` (tls.key); the CA (tls.caSecretRef or tls.caConfigMapRef) →
//   parameter `ca`, from a Secret through secretTargetRef or from a ConfigMap through configMapTargetRef.
// - with an http admin URL no TLS material is passed: nothing there would use it.
// Limits of the scaler, documented on spec.autoscaling: it applies the CA only when an auth mode is on (a token or a
// client certificate), so with a CA alone it checks the admin endpoint against its system roots; it always checks
// the certificate's host name (tls.verifyHostname: false is the dispatcher's only); and it sends a Secret's value as
// it is, where the dispatcher trims it (a token file ending in a newline fails in KEDA's request).

import type { JsonObject } from './render.ts';
import type { AutoscalingSpec } from './spec.ts';

export const KEDA_API_VERSION = 'keda.sh/v1alpha1';

/** KEDA's own defaults, written out explicitly (see above). */
export const AUTOSCALING_DEFAULTS = {
  minReplicas: 0,
  maxReplicas: 100,
  backlogPerReplica: 10,
  activationBacklog: 0,
  pollingInterval: '30s',
  cooldownPeriod: '5m',
} as const;

/**
 * A duration of whole seconds, as KEDA counts them: 30s, 5m, 1h30m. Up to three parts of up to five digits each,
 * so the largest (3 × 99999h) still fits KEDA's int32 seconds and a CEL duration.
 */
export const WHOLE_SECONDS_PATTERN = '^([0-9]{1,5}(h|m|s)){1,3}$';
const WHOLE_SECONDS_RE = new RegExp(WHOLE_SECONDS_PATTERN);

/** Seconds of a WHOLE_SECONDS_PATTERN duration; undefined for any other text. */
export function wholeSeconds(value: string): number | undefined {
  if (!WHOLE_SECONDS_RE.test(value)) return undefined;
  const unit: Record<string, number> = { s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const m of value.matchAll(/([0-9]+)(h|m|s)/g)) total += Number(m[1]) * (unit[m[2]!] ?? 0);
  return total;
}

/** spec.autoscaling with every default filled in, durations in seconds. */
export interface Autoscaling {
  minReplicas: number;
  maxReplicas: number;
  backlogPerReplica: number;
  activationBacklog: number;
  pollingIntervalSeconds: number;
  cooldownPeriodSeconds: number;
}

export function resolveAutoscaling(spec: AutoscalingSpec): Autoscaling {
  const d = AUTOSCALING_DEFAULTS;
  return {
    minReplicas: spec.minReplicas ?? d.minReplicas,
    maxReplicas: spec.maxReplicas ?? d.maxReplicas,
    backlogPerReplica: spec.backlogPerReplica ?? d.backlogPerReplica,
    activationBacklog: spec.activationBacklog ?? d.activationBacklog,
    pollingIntervalSeconds: wholeSeconds(spec.pollingInterval ?? d.pollingInterval) ?? 30,
    cooldownPeriodSeconds: wholeSeconds(spec.cooldownPeriod ?? d.cooldownPeriod) ?? 300,
  };
}

/** Where the scaler's credentials and TLS material come from, all in the ScaledObject's namespace. */
export interface KedaAuthSources {
  /** The token: the controller's Secret for an inline token, or the user's authTokenSecretRef. */
  token: { name: string; key: string } | undefined;
  ca: { kind: 'Secret' | 'ConfigMap'; name: string; key: string } | undefined;
  /** A kubernetes.io/tls Secret (tls.crt, tls.key). */
  clientCertSecret: string | undefined;
}

export interface KedaInput {
  /** Metadata shared by both objects: namespace, labels, annotations, ownerReferences (built by render.ts). */
  meta: (name: string) => JsonObject;
  scaledObjectName: string;
  triggerAuthenticationName: string;
  deploymentName: string;
  adminUrl: string;
  /** Full topic name (persistent://tenant/namespace/topic). */
  topic: string;
  subscription: string;
  /** Whether the topic is partitioned: the scaler then sums the backlog over the partitions. */
  partitioned: boolean;
  autoscaling: Autoscaling;
  auth: KedaAuthSources;
}

export interface KedaObjects {
  scaledObject: JsonObject;
  /** Absent when the scaler needs no credentials or TLS material. */
  triggerAuthentication: JsonObject | undefined;
}

/** The scaler's authModes (in KEDA's comma-separated form), and the parameters they and the CA take. */
function authParts(input: KedaInput): {
  modes: string[];
  secretRefs: JsonObject[];
  configMapRefs: JsonObject[];
} {
  const https = /^https:/i.test(input.adminUrl);
  const { token, ca, clientCertSecret } = input.auth;
  const modes: string[] = [];
  const secretRefs: JsonObject[] = [];
  const configMapRefs: JsonObject[] = [];
  if (https && clientCertSecret) modes.push('tls');
  if (token) {
    modes.push('bearer');
    secretRefs.push({ parameter: 'bearerToken', name: token.name, key: token.key });
  }
  if (https && ca) {
    const ref = { parameter: 'ca', name: ca.name, key: ca.key };
    if (ca.kind === 'Secret') secretRefs.push(ref);
    else configMapRefs.push(ref);
  }
  if (https && clientCertSecret) {
    secretRefs.push({ parameter: 'cert', name: clientCertSecret, key: 'tls.crt' });
    secretRefs.push({ parameter: 'key', name: clientCertSecret, key: 'tls.key' });
  }
  return { modes, secretRefs, configMapRefs };
}

export function renderKeda(input: KedaInput): KedaObjects {
  const a = input.autoscaling;
  const auth = authParts(input);
  const hasAuth = auth.secretRefs.length > 0 || auth.configMapRefs.length > 0;
  // The scaler's metadata values are strings, KEDA's trigger metadata being a map of strings.
  const metadata: JsonObject = {
    adminURL: input.adminUrl,
    topic: input.topic,
    subscription: input.subscription,
    isPartitionedTopic: String(input.partitioned),
    msgBacklogThreshold: String(a.backlogPerReplica),
    activationMsgBacklogThreshold: String(a.activationBacklog),
    ...(auth.modes.length > 0 ? { authModes: auth.modes.join(',') } : {}),
  };
  const scaledObject: JsonObject = {
    apiVersion: KEDA_API_VERSION,
    kind: 'ScaledObject',
    metadata: input.meta(input.scaledObjectName),
    spec: {
      scaleTargetRef: { name: input.deploymentName },
      pollingInterval: a.pollingIntervalSeconds,
      cooldownPeriod: a.cooldownPeriodSeconds,
      minReplicaCount: a.minReplicas,
      maxReplicaCount: a.maxReplicas,
      triggers: [
        {
          type: 'pulsar',
          metadata,
          ...(hasAuth ? { authenticationRef: { name: input.triggerAuthenticationName } } : {}),
        },
      ],
    },
  };
  const triggerAuthentication: JsonObject | undefined = hasAuth
    ? {
        apiVersion: KEDA_API_VERSION,
        kind: 'TriggerAuthentication',
        metadata: input.meta(input.triggerAuthenticationName),
        spec: {
          ...(auth.secretRefs.length > 0 ? { secretTargetRef: auth.secretRefs } : {}),
          ...(auth.configMapRefs.length > 0 ? { configMapTargetRef: auth.configMapRefs } : {}),
        },
      }
    : undefined;
  return { scaledObject, triggerAuthentication };
}
