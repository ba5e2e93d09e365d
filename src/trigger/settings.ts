// The dispatcher's settings and their environment-variable codec. The controller renders a trigger into these
// variables (encodeSettingsEnv) and the dispatcher reads them back (decodeSettingsEnv): the env is the contract
// between the two, and also with custom dispatcher images written for the seed, so the seed's names keep their
// meaning. docs/environment.md documents every variable.

// zod/mini: the same validation with functions instead of methods, so a bundler keeps only what is used. The
// dispatcher loads this module, and the classic API cost it ~9.8 MiB of idle RSS against ~0.6 MiB for this
// (bench/dispatcher.ts: idle RSS goal 64 MiB; measured with each library bundled alone over a bare HTTP server).
import * as z from 'zod/mini';
import { err, type Issue, ok, type Result, TriggerError } from './errors.ts';
import { parseFunctionUrl, parseTopic } from './names.ts';

export const SUBSCRIPTION_TYPES = ['Shared', 'Exclusive', 'Failover', 'Key_Shared'] as const;
export type SubscriptionType = (typeof SUBSCRIPTION_TYPES)[number];
export const INITIAL_POSITIONS = ['Latest', 'Earliest'] as const;
export type InitialPosition = (typeof INITIAL_POSITIONS)[number];
/** none: any order; key: in order per message key; strict: one message at a time, in topic order. */
export const ORDERINGS = ['none', 'key', 'strict'] as const;
export type Ordering = (typeof ORDERINGS)[number];

/**
 * The subscription type each ordering needs once the dispatcher runs as several replicas (autoscaling adds them):
 * `key` → Key_Shared, so the broker gives all messages of a key to one consumer at a time; `strict` → Failover, so
 * one consumer (per partition) receives while the others stand by; `none` → Shared, any consumer takes any
 * message. Key_Shared routes a batch by its one key (the first message's), so per-key order across consumers needs
 * producers that batch by key or not at all (docs/dispatcher.md, Ordering across replicas).
 */
export const SUBSCRIPTION_TYPE_FOR_ORDERING = {
  none: 'Shared',
  key: 'Key_Shared',
  strict: 'Failover',
} as const satisfies Record<Ordering, SubscriptionType>;

/**
 * The subscription type, decided in this one place for both sides: the one given (spec.delivery.subscriptionType,
 * PULSAR_SUBSCRIPTION_TYPE) always wins, e.g. the seed's Exclusive; otherwise the ordering's.
 */
export function subscriptionTypeFor(
  ordering: Ordering,
  given: SubscriptionType | undefined,
): SubscriptionType {
  return given ?? SUBSCRIPTION_TYPE_FOR_ORDERING[ordering];
}

export const STATUS_ACTIONS = ['retry', 'drop', 'deadLetter'] as const;
export type StatusAction = (typeof STATUS_ACTIONS)[number];
export const EVENT_FORMATS = ['kubeless', 'cloudevents'] as const;
export type EventFormat = (typeof EVENT_FORMATS)[number];
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** An exact status (404) or a class (4xx). 2xx is always success, so it cannot be given an action. */
export const STATUS_PATTERN = '^[13-5]([0-9][0-9]|xx)$';

export interface StatusRule {
  status: string;
  action: StatusAction;
}

export type ContentType = { kind: 'auto' } | { kind: 'fixed'; value: string };

export interface DispatcherSettings {
  triggerName: string;
  triggerNamespace: string;
  /** IANA zone name, from TZ (TIMEZONE is the seed's alias). */
  timezone: string;
  /** Full topic name: persistent://tenant/namespace/topic. */
  topic: string;
  /** Broker service URL: pulsar://host:6650 or pulsar+ssl://host:6651. */
  broker: string;
  /**
   * The token itself; in a rendered Deployment it comes from a Secret through valueFrom, read once when the
   * container starts. Kept for custom images written for the seed, which read PULSAR_AUTH_TOKEN.
   */
  authToken: string | undefined;
  /**
   * A file holding the token (the Secret mounted by the kubelet), read again for every CONNECT and every
   * AUTH_CHALLENGE, so a rotated Secret reaches a running dispatcher. Wins over authToken (tokenSource).
   */
  authTokenFile: string | undefined;
  tls: {
    caFile: string | undefined;
    verifyHostname: boolean;
    certFile: string | undefined;
    keyFile: string | undefined;
  };
  functionUrl: string;
  subscription: string;
  subscriptionType: SubscriptionType;
  initialPosition: InitialPosition;
  /** Maximum requests in flight to the function. */
  concurrency: number;
  ordering: Ordering;
  requestTimeoutMs: number;
  backoff: {
    initialMs: number;
    maxMs: number;
    /** Multiplier applied to the delay after each failed attempt (ERROR_BACKOFF_FACTOR). */
    factor: number;
  };
  /** Attempts per message before it is dead-lettered; undefined: retry forever (the seed's behaviour). */
  maxAttempts: number | undefined;
  deadLetterTopic: string;
  /** Non-2xx statuses → action. Exact codes win over classes; anything unmatched retries. */
  statusRules: StatusRule[];
  contentType: ContentType;
  eventFormat: EventFormat;
  shutdownGraceMs: number;
  /** Port of the dispatcher's /metrics, /healthz and /readyz. */
  port: number;
  logLevel: LogLevel;
}

export const SETTINGS_DEFAULTS = {
  timezone: 'UTC',
  initialPosition: 'Latest',
  concurrency: 32,
  ordering: 'key',
  requestTimeoutMs: 180_000,
  backoff: { initialMs: 1_000, maxMs: 90_000, factor: 2 },
  maxAttempts: undefined,
  statusRules: [],
  contentType: { kind: 'auto' },
  eventFormat: 'kubeless',
  shutdownGraceMs: 25_000,
  port: 9102,
  logLevel: 'info',
  verifyHostname: true,
} as const;

export function defaultSubscription(triggerName: string, triggerNamespace: string): string {
  return `${triggerName}-${triggerNamespace}`;
}

export function defaultDeadLetterTopic(topic: string, subscription: string): string {
  return `${topic}-${subscription}-DLQ`;
}

/** What to do with a function's HTTP status. */
export function actionForStatus(rules: readonly StatusRule[], status: number): 'ack' | StatusAction {
  if (status >= 200 && status <= 299) return 'ack';
  const exact = rules.find((r) => r.status === String(status));
  if (exact) return exact.action;
  const cls = rules.find((r) => r.status === `${Math.floor(status / 100)}xx`);
  return cls ? cls.action : 'retry';
}

/** Where the dispatcher takes its broker token from: the token file, else the token, else no authentication. */
export type TokenSourceSetting = { file: string } | { token: string } | undefined;

/**
 * The precedence between PULSAR_AUTH_TOKEN_FILE and PULSAR_AUTH_TOKEN: the file wins when both are set. A rendered
 * Deployment sets both from the same Secret; the variable is a copy taken when the container started, while the
 * kubelet keeps the mounted file current, so after a rotation only the file holds the token the broker accepts.
 * An unreadable or empty file is an error, never a reason to fall back on the older copy.
 */
export function tokenSource(s: Pick<DispatcherSettings, 'authToken' | 'authTokenFile'>): TokenSourceSetting {
  if (s.authTokenFile) return { file: s.authTokenFile };
  if (s.authToken) return { token: s.authToken };
  return undefined;
}

/** Every variable this codec reads or writes, in the order they are written. */
export const ENV = {
  triggerName: 'TRIGGER_NAME',
  triggerNamespace: 'TRIGGER_NAMESPACE',
  tz: 'TZ',
  timezone: 'TIMEZONE',
  topic: 'PULSAR_TOPIC',
  topicType: 'PULSAR_TOPIC_TYPE',
  topicNamespace: 'PULSAR_TOPIC_NAMESPACE',
  topicName: 'PULSAR_TOPIC_NAME',
  broker: 'PULSAR_BROKER',
  authToken: 'PULSAR_AUTH_TOKEN',
  authTokenFile: 'PULSAR_AUTH_TOKEN_FILE',
  tlsCaFile: 'PULSAR_TLS_CA_FILE',
  tlsVerifyHostname: 'PULSAR_TLS_VERIFY_HOSTNAME',
  tlsCertFile: 'PULSAR_TLS_CERT_FILE',
  tlsKeyFile: 'PULSAR_TLS_KEY_FILE',
  functionUrl: 'KUBELESS_FUNCTION',
  functionNamespace: 'KUBELESS_FUNCTION_NAMESPACE',
  functionPort: 'KUBELESS_FUNCTION_PORT',
  functionSchema: 'KUBELESS_FUNCTION_SCHEMA',
  subscription: 'PULSAR_SUBSCRIPTION',
  subscriptionType: 'PULSAR_SUBSCRIPTION_TYPE',
  initialPosition: 'PULSAR_INITIAL_POSITION',
  concurrency: 'DISPATCH_CONCURRENCY',
  ordering: 'DISPATCH_ORDERING',
  requestTimeout: 'DISPATCH_TIMEOUT_SECONDS',
  backoffInitial: 'ERROR_BACKOFF_DELAY_INITIAL',
  backoffMax: 'ERROR_BACKOFF_DELAY_MAX',
  backoffFactor: 'ERROR_BACKOFF_FACTOR',
  maxAttempts: 'DISPATCH_MAX_ATTEMPTS',
  deadLetterTopic: 'DEAD_LETTER_TOPIC',
  statusActions: 'DISPATCH_STATUS_ACTIONS',
  contentType: 'DISPATCH_CONTENT_TYPE',
  eventFormat: 'DISPATCH_EVENT_FORMAT',
  shutdownGrace: 'SHUTDOWN_GRACE_SECONDS',
  port: 'DISPATCHER_PORT',
  logLevel: 'LOG_LEVEL',
} as const;

/** The shape of a Kubernetes container env entry (V1EnvVar), kept local so this module stays I/O free. */
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string };
  };
}

export interface EncodeOptions {
  /** Where PULSAR_AUTH_TOKEN comes from instead of a plain value (the controller never writes the token inline). */
  authTokenFrom?: EnvVar['valueFrom'];
}

function seconds(ms: number): string {
  return String(ms / 1000);
}

export function encodeStatusRules(rules: readonly StatusRule[]): string {
  return rules.map((r) => `${r.status}=${r.action}`).join(',');
}

export function encodeSettingsEnv(s: DispatcherSettings, options: EncodeOptions = {}): EnvVar[] {
  const topic = parseTopic(s.topic);
  const fn = parseFunctionUrl(s.functionUrl);
  const out: EnvVar[] = [];
  const put = (name: string, value: string | undefined): void => {
    if (value !== undefined) out.push({ name, value });
  };
  put(ENV.triggerName, s.triggerName);
  put(ENV.triggerNamespace, s.triggerNamespace);
  put(ENV.tz, s.timezone);
  put(ENV.timezone, s.timezone);
  put(ENV.topic, topic?.full ?? s.topic);
  put(ENV.topicType, topic?.type);
  put(ENV.topicNamespace, topic?.namespace);
  put(ENV.topicName, topic?.localName);
  put(ENV.broker, s.broker);
  if (options.authTokenFrom) out.push({ name: ENV.authToken, valueFrom: options.authTokenFrom });
  else put(ENV.authToken, s.authToken);
  put(ENV.authTokenFile, s.authTokenFile);
  put(ENV.tlsCaFile, s.tls.caFile);
  put(ENV.tlsVerifyHostname, String(s.tls.verifyHostname));
  put(ENV.tlsCertFile, s.tls.certFile);
  put(ENV.tlsKeyFile, s.tls.keyFile);
  put(ENV.functionUrl, s.functionUrl);
  put(ENV.functionNamespace, fn?.namespace);
  put(ENV.functionPort, fn ? String(fn.port) : undefined);
  put(ENV.functionSchema, fn?.scheme);
  put(ENV.subscription, s.subscription);
  put(ENV.subscriptionType, s.subscriptionType);
  put(ENV.initialPosition, s.initialPosition);
  put(ENV.concurrency, String(s.concurrency));
  put(ENV.ordering, s.ordering);
  put(ENV.requestTimeout, seconds(s.requestTimeoutMs));
  put(ENV.backoffInitial, seconds(s.backoff.initialMs));
  put(ENV.backoffMax, seconds(s.backoff.maxMs));
  put(ENV.backoffFactor, String(s.backoff.factor));
  put(ENV.maxAttempts, String(s.maxAttempts ?? 0));
  put(ENV.deadLetterTopic, s.deadLetterTopic);
  put(ENV.statusActions, encodeStatusRules(s.statusRules));
  put(ENV.contentType, s.contentType.kind === 'auto' ? 'auto' : s.contentType.value);
  put(ENV.eventFormat, s.eventFormat);
  put(ENV.shutdownGrace, seconds(s.shutdownGraceMs));
  put(ENV.port, String(s.port));
  put(ENV.logLevel, s.logLevel);
  return out;
}

// --- decoding -------------------------------------------------------------------------------------------------

const blankToUndefined = (v: unknown): unknown => (typeof v === 'string' && v.trim() === '' ? undefined : v);
/** A blank value counts as unset, then `schema` applies to what is set. */
const unsetIfBlank = <T extends z.core.SomeType>(schema: T) =>
  z.pipe(z.transform(blankToUndefined), z.optional(schema));
const str = unsetIfBlank(z.string());
const num = (min: number, max: number, integer: boolean) =>
  unsetIfBlank(
    z.pipe(
      z
        .string()
        .check(
          z.regex(
            integer ? /^\s*[0-9]+\s*$/ : /^\s*[0-9]+(\.[0-9]+)?\s*$/,
            integer ? 'must be an integer' : 'must be a number',
          ),
        ),
      z.pipe(
        z.transform(Number),
        z.number().check(z.gte(min, `must be at least ${min}`), z.lte(max, `must be at most ${max}`)),
      ),
    ),
  );
const oneOf = <T extends readonly [string, ...string[]]>(values: T) =>
  unsetIfBlank(z.enum(values, { error: () => `must be one of ${values.join(', ')}` }));
const bool = unsetIfBlank(
  z.pipe(
    z.enum(['true', 'false', '1', '0', 'yes', 'no'], { error: () => 'must be true or false' }),
    z.transform((v) => v === 'true' || v === '1' || v === 'yes'),
  ),
);

export function parseStatusRules(value: string): Result<StatusRule[], string> {
  const rules: StatusRule[] = [];
  for (const part of value.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const m = /^([^=]+)=(.+)$/.exec(item);
    const status = m?.[1]?.trim() ?? '';
    const action = m?.[2]?.trim() ?? '';
    if (!m || !new RegExp(STATUS_PATTERN).test(status)) {
      return err(`"${item}": expected <status>=<action> with status like 404 or 4xx (not 2xx)`);
    }
    if (!(STATUS_ACTIONS as readonly string[]).includes(action)) {
      return err(`"${item}": action must be one of ${STATUS_ACTIONS.join(', ')}`);
    }
    rules.push({ status, action: action as StatusAction });
  }
  return ok(rules);
}

const statusRules = unsetIfBlank(
  z.pipe(
    z.string(),
    z.transform((v: string, ctx) => {
      const r = parseStatusRules(v);
      if (r.ok) return r.value;
      ctx.issues.push({ code: 'custom', message: r.error, input: v });
      return z.NEVER;
    }),
  ),
);

const EnvSchema = z.object({
  [ENV.triggerName]: str,
  [ENV.triggerNamespace]: str,
  [ENV.tz]: str,
  [ENV.timezone]: str,
  [ENV.topic]: str,
  [ENV.topicType]: oneOf(['persistent', 'non-persistent']),
  [ENV.topicNamespace]: str,
  [ENV.topicName]: str,
  [ENV.broker]: unsetIfBlank(
    z.string().check(z.regex(/^pulsar(\+ssl)?:\/\/[^\s]+$/, 'must be a pulsar:// or pulsar+ssl:// URL')),
  ),
  [ENV.authToken]: str,
  [ENV.authTokenFile]: str,
  [ENV.tlsCaFile]: str,
  [ENV.tlsVerifyHostname]: bool,
  [ENV.tlsCertFile]: str,
  [ENV.tlsKeyFile]: str,
  [ENV.functionUrl]: str,
  [ENV.functionNamespace]: str,
  [ENV.functionPort]: num(1, 65535, true),
  [ENV.functionSchema]: oneOf(['http', 'https']),
  [ENV.subscription]: str,
  [ENV.subscriptionType]: oneOf(SUBSCRIPTION_TYPES),
  [ENV.initialPosition]: oneOf(INITIAL_POSITIONS),
  [ENV.concurrency]: num(1, 65535, true),
  [ENV.ordering]: oneOf(ORDERINGS),
  [ENV.requestTimeout]: num(0.001, 86_400, false),
  [ENV.backoffInitial]: num(0, 86_400, false),
  [ENV.backoffMax]: num(0, 86_400, false),
  [ENV.backoffFactor]: num(1, 1000, false),
  [ENV.maxAttempts]: num(0, 1_000_000_000, true),
  [ENV.deadLetterTopic]: str,
  [ENV.statusActions]: statusRules,
  [ENV.contentType]: str,
  [ENV.eventFormat]: oneOf(EVENT_FORMATS),
  [ENV.shutdownGrace]: num(0, 3600, false),
  [ENV.port]: num(1, 65535, true),
  [ENV.logLevel]: oneOf(LOG_LEVELS),
});

function msOr(secondsValue: number | undefined, fallbackMs: number): number {
  return secondsValue === undefined ? fallbackMs : secondsValue * 1000;
}

export type SettingsResult = Result<DispatcherSettings, TriggerError>;

/**
 * Reads the dispatcher's settings from an environment. Every bad variable is reported, by name, in one error
 * (code E_SETTINGS_INVALID), so an operator fixes them all at once.
 */
export function decodeSettingsEnv(env: Record<string, string | undefined>): SettingsResult {
  const issues: Issue[] = [];
  let parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    // Record every bad variable, then go on without them so the checks below report what else is wrong too.
    const rest = { ...env };
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0] ?? '(environment)');
      issues.push({ path: name, message: issue.message });
      delete rest[name];
    }
    parsed = EnvSchema.safeParse(rest);
    if (!parsed.success)
      return err(new TriggerError('E_SETTINGS_INVALID', issues, 'invalid dispatcher environment'));
  }
  const e = parsed.data;
  const broker = e[ENV.broker];
  if (broker === undefined && !issues.some((i) => i.path === ENV.broker)) {
    issues.push({ path: ENV.broker, message: 'is required' });
  }

  // The topic: PULSAR_TOPIC, or the seed's parts (PULSAR_TOPIC_TYPE://PULSAR_TOPIC_NAMESPACE/PULSAR_TOPIC_NAME).
  let topic: string | undefined;
  const topicSource = e[ENV.topic]
    ? e[ENV.topic]
    : e[ENV.topicNamespace] && e[ENV.topicName]
      ? `${e[ENV.topicType] ?? 'persistent'}://${e[ENV.topicNamespace]}/${e[ENV.topicName]}`
      : undefined;
  if (topicSource === undefined) {
    issues.push({ path: ENV.topic, message: `is required (or ${ENV.topicNamespace} and ${ENV.topicName})` });
  } else {
    const t = parseTopic(topicSource);
    if (t) topic = t.full;
    else
      issues.push({
        path: e[ENV.topic] ? ENV.topic : ENV.topicName,
        message: `"${topicSource}" is not a Pulsar topic name`,
      });
  }

  // The function: a URL, or the seed's parts (SCHEMA://KUBELESS_FUNCTION.NAMESPACE:PORT).
  let functionUrl: string | undefined;
  const fnValue = e[ENV.functionUrl];
  if (fnValue === undefined) {
    issues.push({ path: ENV.functionUrl, message: 'is required' });
  } else if (fnValue.includes('://')) {
    if (parseFunctionUrl(fnValue)) functionUrl = fnValue;
    else issues.push({ path: ENV.functionUrl, message: `"${fnValue}" is not an http(s) URL` });
  } else {
    const ns = e[ENV.functionNamespace];
    const port = e[ENV.functionPort];
    const composed = `${e[ENV.functionSchema] ?? 'http'}://${fnValue}${ns ? `.${ns}` : ''}${port ? `:${port}` : ''}`;
    if (parseFunctionUrl(composed)) functionUrl = composed;
    else issues.push({ path: ENV.functionUrl, message: `"${fnValue}" is neither a URL nor a function name` });
  }

  const triggerName = e[ENV.triggerName] ?? '';
  const triggerNamespace = e[ENV.triggerNamespace] ?? '';
  let subscription = e[ENV.subscription];
  if (subscription === undefined) {
    if (triggerName === '' && triggerNamespace === '') {
      issues.push({ path: ENV.subscription, message: `is required when ${ENV.triggerName} is not set` });
    } else subscription = defaultSubscription(triggerName, triggerNamespace);
  }

  const initialMs = (e[ENV.backoffInitial] ?? SETTINGS_DEFAULTS.backoff.initialMs / 1000) * 1000;
  const maxMs = (e[ENV.backoffMax] ?? SETTINGS_DEFAULTS.backoff.maxMs / 1000) * 1000;
  if (maxMs < initialMs) {
    issues.push({ path: ENV.backoffMax, message: `must not be less than ${ENV.backoffInitial}` });
  }
  const certFile = e[ENV.tlsCertFile];
  const keyFile = e[ENV.tlsKeyFile];
  if ((certFile === undefined) !== (keyFile === undefined)) {
    issues.push({
      path: certFile === undefined ? ENV.tlsCertFile : ENV.tlsKeyFile,
      message: `${ENV.tlsCertFile} and ${ENV.tlsKeyFile} go together`,
    });
  }

  if (
    issues.length > 0 ||
    broker === undefined ||
    topic === undefined ||
    functionUrl === undefined ||
    subscription === undefined
  ) {
    return err(new TriggerError('E_SETTINGS_INVALID', issues, 'invalid dispatcher environment'));
  }
  const contentType = e[ENV.contentType];
  const maxAttempts = e[ENV.maxAttempts];
  const timezone = e[ENV.tz] ?? e[ENV.timezone] ?? SETTINGS_DEFAULTS.timezone;
  const ordering = e[ENV.ordering] ?? SETTINGS_DEFAULTS.ordering;
  return ok({
    triggerName,
    triggerNamespace,
    timezone,
    topic,
    broker,
    authToken: e[ENV.authToken],
    authTokenFile: e[ENV.authTokenFile],
    tls: {
      caFile: e[ENV.tlsCaFile],
      verifyHostname: e[ENV.tlsVerifyHostname] ?? SETTINGS_DEFAULTS.verifyHostname,
      certFile,
      keyFile,
    },
    functionUrl,
    subscription,
    subscriptionType: subscriptionTypeFor(ordering, e[ENV.subscriptionType]),
    initialPosition: e[ENV.initialPosition] ?? SETTINGS_DEFAULTS.initialPosition,
    concurrency: e[ENV.concurrency] ?? SETTINGS_DEFAULTS.concurrency,
    ordering,
    requestTimeoutMs: msOr(e[ENV.requestTimeout], SETTINGS_DEFAULTS.requestTimeoutMs),
    backoff: { initialMs, maxMs, factor: e[ENV.backoffFactor] ?? SETTINGS_DEFAULTS.backoff.factor },
    maxAttempts: maxAttempts === undefined || maxAttempts === 0 ? undefined : maxAttempts,
    deadLetterTopic: e[ENV.deadLetterTopic] ?? defaultDeadLetterTopic(topic, subscription),
    statusRules: e[ENV.statusActions] ?? [],
    contentType:
      contentType === undefined || contentType === 'auto'
        ? { kind: 'auto' }
        : { kind: 'fixed', value: contentType },
    eventFormat: e[ENV.eventFormat] ?? SETTINGS_DEFAULTS.eventFormat,
    shutdownGraceMs: msOr(e[ENV.shutdownGrace], SETTINGS_DEFAULTS.shutdownGraceMs),
    port: e[ENV.port] ?? SETTINGS_DEFAULTS.port,
    logLevel: e[ENV.logLevel] ?? SETTINGS_DEFAULTS.logLevel,
  });
}

/** Turns an EnvVar list with plain values into the record decodeSettingsEnv reads (tests, `run`). */
export function envRecord(vars: readonly EnvVar[]): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const v of vars) if (v.value !== undefined) out[v.name] = v.value;
  return out;
}
