// The PulsarTrigger resource, defined once. The zod schemas below are the single source of truth: TypeScript types
// come from z.infer, runtime validation is the schema itself, and deploy/crd.yaml is generated from it
// (src/trigger/crd.ts). Every rule the API server should enforce in CEL is declared together with the same rule in
// TypeScript by `rules()`, so a trigger the API server accepts is one the controller accepts, and the other way.

import { z } from 'zod';
import { err, type Issue, ok, type Result, TriggerError } from './errors.ts';
import {
  FUNCTION_URL_CEL,
  FUNCTION_URL_MESSAGE,
  parseFunctionUrl,
  parseTopic,
  TOPIC_CEL,
  TOPIC_MESSAGE,
} from './names.ts';
import {
  EVENT_FORMATS,
  INITIAL_POSITIONS,
  ORDERINGS,
  STATUS_ACTIONS,
  STATUS_PATTERN,
  SUBSCRIPTION_TYPES,
} from './settings.ts';

export const GROUP = 'kubeless.io';
export const VERSION = 'v1';
export const KIND = 'PulsarTrigger';
export const PLURAL = 'pulsartriggers';
export const SINGULAR = 'pulsartrigger';
export const SHORT_NAMES = ['pt'] as const;
export const API_VERSION = `${GROUP}/${VERSION}`;

/** A CEL rule for the API server and the same check for zod. */
export interface Rule<T> {
  cel: string;
  message: string;
  /** Where the API server reports the error, relative to the schema the rule is on (e.g. ".authTokenSecretRef"). */
  fieldPath?: string;
  check: (value: T) => boolean;
}

function rules<S extends z.ZodType>(schema: S, list: Rule<z.output<S>>[]): S {
  let out: z.ZodType = schema;
  for (const r of list) {
    out = out.refine((v) => r.check(v as z.output<S>), {
      message: r.message,
      ...(r.fieldPath ? { path: r.fieldPath.slice(1).split('.') } : {}),
    });
  }
  const validations = list.map((r) => ({
    rule: r.cel,
    message: r.message,
    ...(r.fieldPath ? { fieldPath: r.fieldPath } : {}),
  }));
  const existing = (z.globalRegistry.get(schema) ?? {}) as Record<string, unknown>;
  return out.meta({ ...existing, 'x-kubernetes-validations': validations }) as unknown as S;
}

// Durations are strings like "90s", "1m30s", "500ms": the form Kubernetes users know from Go and kubectl, and one
// CEL can check with duration().
const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';
export function parseDuration(value: string): number | undefined {
  if (!new RegExp(DURATION_PATTERN).test(value)) return undefined;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const m of value.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g))
    total += Number(m[1]) * (unit[m[2]!] ?? 0);
  return total;
}
const duration = (description: string) =>
  z.string().max(64).regex(new RegExp(DURATION_PATTERN), 'must be a duration like 500ms, 90s or 1m30s').meta({
    description,
  });

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;

const objectName = z.string().min(1).max(253).regex(DNS_SUBDOMAIN, 'must be a DNS subdomain (lowercase)');
const keyRef = (what: string) =>
  z
    .object({
      name: objectName.meta({ description: `Name of the ${what}, in the namespace of the Deployment.` }),
      key: z
        .string()
        .min(1)
        .max(253)
        .regex(CONFIG_KEY, 'must be a valid key')
        .meta({ description: 'Key within it.' }),
    })
    .meta({ description: `A key of a ${what} in the namespace of the Deployment.` });

export const TlsSpec = rules(
  z
    .object({
      caSecretRef: keyRef('Secret')
        .optional()
        .meta({ description: 'CA certificate(s) (PEM) that sign the broker certificate, from a Secret.' }),
      caConfigMapRef: keyRef('ConfigMap')
        .optional()
        .meta({ description: 'CA certificate(s) (PEM) that sign the broker certificate, from a ConfigMap.' }),
      verifyHostname: z
        .boolean()
        .optional()
        .meta({ description: "Check the broker certificate's name against the broker host. Default true." }),
      clientCertSecretRef: z
        .object({ name: objectName })
        .optional()
        .meta({ description: 'A kubernetes.io/tls Secret (tls.crt, tls.key) for mutual TLS.' }),
    })
    .meta({ description: 'TLS to the broker (pulsar+ssl://). Without a CA, the system roots are used.' }),
  [
    {
      cel: '!(has(self.caSecretRef) && has(self.caConfigMapRef))',
      message: 'set caSecretRef or caConfigMapRef, not both',
      fieldPath: '.caConfigMapRef',
      check: (v) => !(v.caSecretRef && v.caConfigMapRef),
    },
  ],
);

export const PulsarSpec = rules(
  z.object({
    topic: rules(
      z.string().min(1).max(1024).meta({
        description:
          'The topic to consume: persistent://tenant/namespace/topic (short forms are in public/default).',
      }),
      [{ cel: TOPIC_CEL, message: TOPIC_MESSAGE, check: (v) => parseTopic(v) !== undefined }],
    ),
    broker: z
      .string()
      .max(2048)
      .regex(/^pulsar(\+ssl)?:\/\/[^\s/]+(\/[^\s]*)?$/, 'must be a pulsar:// or pulsar+ssl:// URL')
      .meta({ description: 'Broker service URL: pulsar://host:6650 or pulsar+ssl://host:6651.' }),
    'auth-token': z.string().min(1).max(65536).optional().meta({
      description:
        'A JWT for token authentication, inline (as the seed had it). The controller moves it into a Secret it owns; prefer authTokenSecretRef.',
    }),
    authTokenSecretRef: keyRef('Secret')
      .optional()
      .meta({ description: 'The token, from a key of a Secret in the namespace of the Deployment.' }),
    tls: TlsSpec.optional(),
  }),
  [
    {
      // CEL sees "auth-token" as auth__dash__token (the API server's escaping of '-').
      cel: '!(has(self.auth__dash__token) && has(self.authTokenSecretRef))',
      message: 'set auth-token or authTokenSecretRef, not both',
      fieldPath: '.authTokenSecretRef',
      check: (v) => !(v['auth-token'] && v.authTokenSecretRef),
    },
  ],
);

export const KubelessSpec = z.object({
  function: rules(
    z.string().min(1).max(2048).meta({
      description:
        "The function's URL, e.g. http://myfunction.default:8080 (Kubeless: http://<name>.<namespace>:8080).",
    }),
    [
      {
        cel: FUNCTION_URL_CEL,
        message: FUNCTION_URL_MESSAGE,
        check: (v) => parseFunctionUrl(v) !== undefined,
      },
    ],
  ),
});

export const StatusActionRule = z.object({
  status: z
    .string()
    .regex(new RegExp(STATUS_PATTERN), 'must be an HTTP status (404) or class (4xx), not 2xx')
    .meta({ description: 'An HTTP status like 404, or a class like 4xx. 2xx is always success.' }),
  action: z.enum(STATUS_ACTIONS).meta({
    description:
      'retry: redeliver after backoff; drop: acknowledge and log; deadLetter: publish to the dead-letter topic.',
  }),
});

export const RetrySpec = rules(
  z
    .object({
      initialBackoff: duration('Delay after the first failure. Default 1s.').optional(),
      maxBackoff: duration('Longest delay between attempts. Default 90s.').optional(),
      factor: z
        .number()
        .min(1)
        .max(1000)
        .optional()
        .meta({ description: 'Multiplier of the delay after each failure. Default 2.' }),
      maxAttempts: z.number().int().min(0).max(1_000_000_000).optional().meta({
        description:
          'Attempts per message before it goes to the dead-letter topic. Default 0: retry forever.',
      }),
    })
    .meta({ description: 'Retry of failed deliveries.' }),
  [
    {
      cel: '!has(self.initialBackoff) || !has(self.maxBackoff) || duration(self.maxBackoff) >= duration(self.initialBackoff)',
      message: 'maxBackoff must not be less than initialBackoff',
      fieldPath: '.maxBackoff',
      check: (v) =>
        v.initialBackoff === undefined ||
        v.maxBackoff === undefined ||
        (parseDuration(v.maxBackoff) ?? 0) >= (parseDuration(v.initialBackoff) ?? 0),
    },
  ],
);

export const DeliverySpec = z
  .object({
    subscription: z
      .string()
      .min(1)
      .max(256)
      .regex(/^[^\s/]+$/, 'must not contain whitespace or /')
      .optional()
      .meta({ description: 'Subscription name. Default <trigger name>-<trigger namespace> (the seed).' }),
    subscriptionType: z.enum(SUBSCRIPTION_TYPES).optional().meta({ description: 'Default Shared.' }),
    initialPosition: z
      .enum(INITIAL_POSITIONS)
      .optional()
      .meta({ description: 'Where a new subscription starts. Default Latest.' }),
    concurrency: z
      .number()
      .int()
      .min(1)
      .max(1024)
      .optional()
      .meta({ description: 'Requests in flight to the function per dispatcher pod. Default 32.' }),
    ordering: z.enum(ORDERINGS).optional().meta({
      description:
        'none: any order; key: in order per message key (default); strict: one at a time, in order.',
    }),
    timeout: duration('Timeout of one request to the function. Default 180s.').optional(),
    retry: RetrySpec.optional(),
    deadLetterTopic: rules(
      z.string().min(1).max(1024).meta({ description: 'Default <topic>-<subscription>-DLQ.' }),
      [{ cel: TOPIC_CEL, message: TOPIC_MESSAGE, check: (v) => parseTopic(v) !== undefined }],
    ).optional(),
    statusActions: z.array(StatusActionRule).max(64).optional().meta({
      description: 'What a non-2xx status means. Exact statuses win over classes; unmatched statuses retry.',
    }),
    contentType: z
      .string()
      .max(256)
      .regex(/^(auto|[A-Za-z0-9!#$&^_.+-]+\/[^\s]+)$/, 'must be auto or a media type like application/json')
      .optional()
      .meta({ description: 'auto (detect JSON, as the seed did) or a fixed media type. Default auto.' }),
    eventFormat: z.enum(EVENT_FORMATS).optional().meta({
      description:
        'kubeless: body plus event-* headers (the seed); cloudevents: CloudEvents binary mode. Default kubeless.',
    }),
  })
  .meta({ description: 'How messages are delivered to the function. Every field has a default.' });

// Any part of a Deployment, kept as given and merged onto the default template. Only metadata.namespace is
// checked here, because the controller reads it to place the Deployment.
export const DeploymentOverride = z
  .looseObject({
    metadata: z
      .looseObject({
        namespace: z
          .string()
          .max(63)
          .regex(DNS_LABEL, 'must be a namespace name')
          .optional()
          .meta({ description: 'Namespace of the Deployment. Default: the trigger namespace.' }),
      })
      .optional(),
  })
  .meta({
    description:
      'Any part of the dispatcher Deployment, merged onto the default template: maps merge, lists are replaced, the first container is merged into the dispatcher container.',
  });

export const TriggerSpec = z.object({
  pulsar: PulsarSpec.meta({ description: 'Where messages come from.' }),
  kubeless: KubelessSpec.meta({ description: 'Where messages go.' }),
  deployment: DeploymentOverride.optional(),
  delivery: DeliverySpec.optional(),
});
export type TriggerSpec = z.infer<typeof TriggerSpec>;
export type PulsarSpec = z.infer<typeof PulsarSpec>;
export type DeliverySpec = z.infer<typeof DeliverySpec>;

export const Condition = z.object({
  type: z.string().max(316),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: z.number().int().min(0).optional(),
  lastTransitionTime: z.string(),
  reason: z.string().max(1024),
  message: z.string().max(32768),
});
export type Condition = z.infer<typeof Condition>;

export const TriggerStatus = z
  .object({
    observedGeneration: z.number().int().optional().meta({ description: 'The generation last reconciled.' }),
    conditions: z
      .array(Condition)
      .optional()
      .meta({
        description: 'Ready: the Deployment is rendered, applied and has its replicas ready.',
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['type'],
      }),
    deployment: z
      .object({ name: z.string(), namespace: z.string() })
      .optional()
      .meta({ description: 'The dispatcher Deployment.' }),
    replicas: z.number().int().optional().meta({ description: 'Desired dispatcher replicas.' }),
    readyReplicas: z.number().int().optional().meta({ description: 'Ready dispatcher replicas.' }),
  })
  .meta({ description: 'Observed state, written by the controller.' });
export type TriggerStatus = z.infer<typeof TriggerStatus>;

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  deletionTimestamp?: string | Date;
  creationTimestamp?: string | Date;
}

export interface PulsarTrigger {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: TriggerSpec;
  status?: TriggerStatus;
}

function zodIssues(prefix: string, error: z.ZodError): Issue[] {
  return error.issues.map((i) => ({
    path: [prefix, ...i.path.map(String)].filter((p) => p !== '').join('.'),
    message: i.message,
  }));
}

/** Validates a trigger's spec as the controller receives it (the API server has normally checked it already). */
export function validateSpec(spec: unknown): Result<TriggerSpec, TriggerError> {
  const r = TriggerSpec.safeParse(spec);
  if (r.success) return ok(r.data);
  return err(new TriggerError('E_TRIGGER_INVALID', zodIssues('spec', r.error), 'invalid PulsarTrigger'));
}
