// The PulsarTrigger resource, defined once. The zod schemas below are the single source of truth: TypeScript types
// come from z.infer, runtime validation is the schema itself, and deploy/crd.yaml is generated from it
// (src/trigger/crd.ts). Every rule the API server should enforce in CEL is declared together with the same rule in
// TypeScript by `rules()`, so a trigger the API server accepts is one the controller accepts, and the other way.
// The one exception is on purpose: the value types inside spec.deployment (deployment-check.ts) are checked by the
// controller only, so the CRD keeps that field as free-form as the seed had it; a mismatch is Ready=False InvalidSpec.

import { z } from 'zod';
import { deploymentTypeIssues, formatPath } from './deployment-check.ts';
import { err, type Issue, ok, type Result, TriggerError } from './errors.ts';
import { AUTOSCALING_DEFAULTS, WHOLE_SECONDS_PATTERN, wholeSeconds } from './keda.ts';
import {
  ADMIN_PARTS_CEL,
  ADMIN_PARTS_MESSAGE,
  ADMIN_PORT_CEL,
  ADMIN_PORT_MESSAGE,
  ADMIN_URL_CEL,
  ADMIN_URL_MESSAGE,
  adminUrlFormOk,
  adminUrlPartsOk,
  adminUrlPortOk,
  BROKER_CEL,
  BROKER_MESSAGE,
  BROKER_PORT_CEL,
  BROKER_PORT_MESSAGE,
  brokerFormOk,
  brokerPortsOk,
  FUNCTION_PORT_CEL,
  FUNCTION_PORT_MESSAGE,
  FUNCTION_URL_CEL,
  FUNCTION_URL_MESSAGE,
  functionUrlFormOk,
  functionUrlPortOk,
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
    broker: rules(
      z
        .string()
        .max(2048)
        .meta({ description: 'Broker service URL: pulsar://host:6650 or pulsar+ssl://host:6651.' }),
      [
        { cel: BROKER_CEL, message: BROKER_MESSAGE, check: brokerFormOk },
        { cel: BROKER_PORT_CEL, message: BROKER_PORT_MESSAGE, check: brokerPortsOk },
      ],
    ),
    'auth-token': z.string().min(1).max(65536).optional().meta({
      description:
        'A JWT for token authentication, inline (as the Python kubeless-pulsar-trigger had it). The controller moves it into a Secret it owns; prefer authTokenSecretRef.',
    }),
    authTokenSecretRef: keyRef('Secret')
      .optional()
      .meta({ description: 'The token, from a key of a Secret in the namespace of the Deployment.' }),
    tls: TlsSpec.optional(),
    adminUrl: rules(
      z.string().max(2048).meta({
        description:
          "The broker's admin REST API, for the trigger's subscription (the controller) and its backlog (the controller's status and KEDA's scaler with spec.autoscaling): an http or https URL, optionally with a path, e.g. https://pulsar.addr:8443; a trailing / is dropped. Default: the broker URL's first host with the usual admin port in place of the broker's port, whatever that is: pulsar://host:6650 gives http://host:8080, pulsar+ssl://host:6651 gives https://host:8443. The token and TLS settings above apply to it too.",
      }),
      [
        { cel: ADMIN_URL_CEL, message: ADMIN_URL_MESSAGE, check: adminUrlFormOk },
        { cel: ADMIN_PORT_CEL, message: ADMIN_PORT_MESSAGE, check: adminUrlPortOk },
        { cel: ADMIN_PARTS_CEL, message: ADMIN_PARTS_MESSAGE, check: adminUrlPartsOk },
      ],
    ).optional(),
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
      { cel: FUNCTION_URL_CEL, message: FUNCTION_URL_MESSAGE, check: functionUrlFormOk },
      { cel: FUNCTION_PORT_CEL, message: FUNCTION_PORT_MESSAGE, check: functionUrlPortOk },
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
      .meta({
        description:
          'Subscription name. Default <trigger name>-<trigger namespace> (as the Python kubeless-pulsar-trigger named it).',
      }),
    subscriptionType: z.enum(SUBSCRIPTION_TYPES).optional().meta({
      description:
        "Default: from ordering, key → Key_Shared, strict → Failover, none → Shared. Key_Shared gives a whole batch entry to the consumer of its first message's key, so per-key order across replicas needs producers that batch by key (Java BatcherBuilder.KEY_BASED) or do not batch.",
    }),
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
    timeout: duration(
      'Deadline of one delivery attempt to the function: connecting, sending, the response headers and body, and any redirects. Default 180s.',
    ).optional(),
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
      .meta({
        description:
          'auto (detect JSON, as the Python kubeless-pulsar-trigger did) or a fixed media type. Default auto.',
      }),
    eventFormat: z.enum(EVENT_FORMATS).optional().meta({
      description:
        'kubeless: body plus event-* headers (as the Python kubeless-pulsar-trigger sent them); cloudevents: CloudEvents binary mode. Default kubeless.',
    }),
    deleteSubscription: z.boolean().optional().meta({
      description:
        "What becomes of the subscription when the trigger is deleted. false (default): it stays, as the Python kubeless-pulsar-trigger left it, so a trigger made again with the same subscription name resumes at its cursor (the broker keeps the messages published meanwhile, as its retention allows). true: the controller deletes it through the admin API (spec.pulsar.adminUrl) once the trigger's dispatchers are gone, and with it the cursor and the backlog.",
    }),
  })
  .meta({ description: 'How messages are delivered to the function. Every field has a default.' });

// Paths of spec.deployment whose type the schema itself checks (and the CRD carries): deploymentTypeIssues leaves
// them to it, so one mistake gets one message.
const SCHEMA_CHECKED = new Set(['metadata', 'metadata.namespace']);

// Any part of a Deployment, kept as given and merged onto the default template. The schema (and so the CRD) checks
// only metadata.namespace, which the controller reads to place the Deployment; the types of all other values are
// checked by deployment-check.ts in validation only, so the CRD stays as permissive as the seed's.
export const DeploymentOverride = z
  .looseObject({
    metadata: z
      .looseObject({
        namespace: z.string().max(63).regex(DNS_LABEL, 'must be a namespace name').optional().meta({
          description:
            "Namespace of the Deployment. Default: the trigger namespace. Another namespace must accept the trigger's: its annotation kubeless.io/accept-triggers-from lists the trigger namespace (or *), or the controller's --allow-cross-namespace grants it; otherwise Ready=False with reason CrossNamespaceNotAllowed and nothing is created there.",
        }),
      })
      .optional(),
    // Declared only so that the API server's CEL sees spec.replicas (it sees declared fields only; a rule on spec
    // refuses it beside spec.autoscaling). As permissive as CEL allows: any object or null, replicas an integer, a
    // string or null; zod takes any value, and the controller checks the types (deployment-check.ts) as elsewhere.
    spec: z
      .unknown()
      .meta({
        type: 'object',
        nullable: true,
        'x-kubernetes-preserve-unknown-fields': true,
        description: "The Deployment's spec, merged onto the default.",
        properties: {
          replicas: {
            'x-kubernetes-int-or-string': true,
            nullable: true,
            description:
              'Dispatcher replicas (an integer). Default 1. Not with spec.autoscaling, which sets the replicas.',
          },
        },
      })
      .optional(),
  })
  .superRefine((value, ctx) => {
    for (const issue of deploymentTypeIssues(value)) {
      if (SCHEMA_CHECKED.has(formatPath(issue.path))) continue;
      ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
    }
  })
  .meta({
    description:
      'Any part of the dispatcher Deployment, merged onto the default template: maps merge, lists are replaced, the first container is merged into the dispatcher container. The controller checks the type of each value against an apps/v1 Deployment (docs/reference.md) and reports a mismatch as Ready=False InvalidSpec.',
  });

/** A generous bound on replica counts: a typo of a few digits more is refused, not obeyed. */
const MAX_REPLICAS = 10_000;
const MAX_BACKLOG = 1_000_000_000;

// KEDA counts pollingInterval and cooldownPeriod in whole seconds, so the durations here are whole seconds too: the
// project's duration form without fractions or milliseconds (keda.ts WHOLE_SECONDS_PATTERN).
const wholeSecondsDuration = (description: string) =>
  z
    .string()
    .max(18)
    .regex(new RegExp(WHOLE_SECONDS_PATTERN), 'must be whole seconds like 30s, 5m or 1h30m')
    .meta({ description });

export const AutoscalingSpec = rules(
  z
    .object({
      minReplicas: z
        .number()
        .int()
        .min(0)
        .max(MAX_REPLICAS)
        .optional()
        .meta({
          description: `Fewest dispatcher replicas (KEDA's minReplicaCount). Default ${AUTOSCALING_DEFAULTS.minReplicas} (KEDA's): KEDA stops every dispatcher once the backlog has stayed at or below activationBacklog for cooldownPeriod, and starts one within pollingInterval of its rising above; the subscription stays meanwhile, so no message is lost.`,
        }),
      maxReplicas: z
        .number()
        .int()
        .min(1)
        .max(MAX_REPLICAS)
        .optional()
        .meta({
          description: `Most dispatcher replicas (KEDA's maxReplicaCount). Default ${AUTOSCALING_DEFAULTS.maxReplicas} (KEDA's). Must be 1 with an Exclusive subscription; on a Failover subscription one consumer per partition is active.`,
        }),
      backlogPerReplica: z
        .number()
        .int()
        .min(1)
        .max(MAX_BACKLOG)
        .optional()
        .meta({
          description: `The backlog per replica KEDA's HPA aims at: about backlog / backlogPerReplica replicas, within minReplicas and maxReplicas (the pulsar scaler's msgBacklogThreshold). Default ${AUTOSCALING_DEFAULTS.backlogPerReplica} (KEDA's).`,
        }),
      activationBacklog: z
        .number()
        .int()
        .min(0)
        .max(MAX_BACKLOG)
        .optional()
        .meta({
          description: `The backlog above which the dispatchers start from zero (the pulsar scaler's activationMsgBacklogThreshold); it matters with minReplicas 0 only. Default ${AUTOSCALING_DEFAULTS.activationBacklog}: any message.`,
        }),
      pollingInterval: rules(
        wholeSecondsDuration(
          `How often KEDA reads the backlog, in whole seconds like 30s, 1m or 1h30m (KEDA counts seconds); at least 1s. Default ${AUTOSCALING_DEFAULTS.pollingInterval} (KEDA's).`,
        ),
        [
          {
            cel: `!self.matches('${WHOLE_SECONDS_PATTERN}') || duration(self) >= duration('1s')`,
            message: 'must be at least 1s',
            check: (v) => (wholeSeconds(v) ?? 1) >= 1,
          },
        ],
      ).optional(),
      cooldownPeriod: wholeSecondsDuration(
        `How long the backlog must stay at or below activationBacklog before KEDA scales the dispatchers to zero, in whole seconds like 300s or 5m; with minReplicas 0 only (between 1 and maxReplicas the HPA's own stabilization applies). Default ${AUTOSCALING_DEFAULTS.cooldownPeriod} (KEDA's).`,
      ).optional(),
    })
    .meta({
      description:
        "Scales the dispatcher Deployment on the subscription's backlog with KEDA, which must be installed in the cluster. The controller writes a KEDA ScaledObject beside the Deployment, named like it (shortened to 63 characters: KEDA makes the name a label value), and, when KEDA needs the token or TLS material, a TriggerAuthentication <deployment>-keda-auth; both are the trigger's. Needs a persistent topic, and no spec.deployment.spec.replicas (the autoscaler sets the replicas). KEDA reads the backlog at spec.pulsar.adminUrl with the trigger's token (authModes bearer) and, over https, its client certificate (authModes tls) and CA. KEDA's pulsar scaler uses that CA only together with a token or a client certificate (with a CA alone it checks the admin endpoint against its own system roots), always checks the certificate's host name (tls.verifyHostname: false is the dispatcher's only), and sends the token as the Secret holds it, where the dispatcher trims it (a token ending in a newline fails in KEDA).",
    }),
  [
    {
      cel: `(has(self.maxReplicas) ? self.maxReplicas : ${AUTOSCALING_DEFAULTS.maxReplicas}) >= (has(self.minReplicas) ? self.minReplicas : ${AUTOSCALING_DEFAULTS.minReplicas})`,
      message: `maxReplicas must not be less than minReplicas (maxReplicas defaults to ${AUTOSCALING_DEFAULTS.maxReplicas})`,
      fieldPath: '.maxReplicas',
      check: (v) =>
        (v.maxReplicas ?? AUTOSCALING_DEFAULTS.maxReplicas) >=
        (v.minReplicas ?? AUTOSCALING_DEFAULTS.minReplicas),
    },
  ],
);

/** spec.deployment.spec.replicas when given (not null): the value a rule on spec refuses beside spec.autoscaling. */
function deploymentReplicas(deployment: unknown): unknown {
  if (typeof deployment !== 'object' || deployment === null) return undefined;
  const spec = (deployment as { spec?: unknown }).spec;
  if (typeof spec !== 'object' || spec === null) return undefined;
  return (spec as { replicas?: unknown }).replicas ?? undefined;
}

export const TriggerSpec = rules(
  z.object({
    pulsar: PulsarSpec.meta({ description: 'Where messages come from.' }),
    kubeless: KubelessSpec.meta({ description: 'Where messages go.' }),
    deployment: DeploymentOverride.optional(),
    delivery: DeliverySpec.optional(),
    autoscaling: AutoscalingSpec.optional(),
  }),
  [
    {
      cel: '!has(self.autoscaling) || !has(self.deployment) || !has(self.deployment.spec) || !has(self.deployment.spec.replicas)',
      message:
        'spec.deployment.spec.replicas is set by the autoscaler when spec.autoscaling is given: remove it (spec.autoscaling.minReplicas and maxReplicas bound the replicas)',
      fieldPath: '.deployment.spec.replicas',
      check: (v) => !v.autoscaling || deploymentReplicas(v.deployment) === undefined,
    },
    {
      cel: "!has(self.autoscaling) || !self.pulsar.topic.startsWith('non-persistent://')",
      message:
        "spec.autoscaling needs a persistent topic: KEDA's pulsar scaler reads the backlog of persistent topics, and a non-persistent topic keeps none",
      fieldPath: '.autoscaling',
      check: (v) => !v.autoscaling || !v.pulsar.topic.startsWith('non-persistent://'),
    },
    {
      cel: "!has(self.autoscaling) || !has(self.delivery) || !has(self.delivery.subscriptionType) || self.delivery.subscriptionType != 'Exclusive' || (has(self.autoscaling.maxReplicas) && self.autoscaling.maxReplicas == 1)",
      message:
        'an Exclusive subscription admits one consumer: with spec.autoscaling set maxReplicas to 1, or use a Shared, Key_Shared or Failover subscription',
      fieldPath: '.autoscaling.maxReplicas',
      check: (v) =>
        !v.autoscaling || v.delivery?.subscriptionType !== 'Exclusive' || v.autoscaling.maxReplicas === 1,
    },
  ],
);
export type TriggerSpec = z.infer<typeof TriggerSpec>;
export type PulsarSpec = z.infer<typeof PulsarSpec>;
export type DeliverySpec = z.infer<typeof DeliverySpec>;
export type AutoscalingSpec = z.infer<typeof AutoscalingSpec>;

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
    backlog: z.number().int().optional().meta({
      description: "Messages in the trigger's subscription not acknowledged yet (the broker's msgBacklog).",
    }),
    oldestBacklogPublishTime: z.string().optional().meta({
      description:
        'Publish time of the oldest message in the backlog (RFC 3339); absent when the backlog is empty. `kubectl get pt` shows its age as Oldest.',
    }),
    msgRateOut: z.number().optional().meta({
      description: "Messages per second the broker dispatches to the subscription (the broker's msgRateOut).",
    }),
    consumers: z.number().int().optional().meta({ description: 'Consumers connected to the subscription.' }),
    deadLettered: z.number().int().optional().meta({
      description:
        'Messages on the dead-letter topic (its backlog of retained messages; absent without one).',
    }),
    backlogObservedAt: z.string().optional().meta({
      description: 'When the figures above were read from the Pulsar admin API (RFC 3339).',
    }),
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
    path: formatPath([prefix, ...i.path.map((p) => (typeof p === 'number' ? p : String(p)))]),
    message: i.message,
  }));
}

/** Validates a trigger's spec as the controller receives it (the API server has normally checked it already). */
export function validateSpec(spec: unknown): Result<TriggerSpec, TriggerError> {
  const r = TriggerSpec.safeParse(spec);
  if (r.success) return ok(r.data);
  return err(new TriggerError('E_TRIGGER_INVALID', zodIssues('spec', r.error), 'invalid PulsarTrigger'));
}
