// A small client of Pulsar's admin REST API (v2), for what the controller needs: own a trigger's subscription
// (create it at Latest or Earliest, delete it) and report how far behind it is (backlog, rate, consumers, the
// publish time of the oldest message behind, messages on the dead-letter topic). Beside the binary client, sharing
// its token auth and TLS settings; it imports nothing of the binary protocol, so the controller's bundle does not
// carry it.
//
// What each call sends (Pulsar 4.0, checked against the real broker in test/integration/pulsar/admin.test.ts):
//  - create:  PUT  /admin/v2/persistent/{tenant}/{ns}/{topic}/subscription/{sub}
//             body {"ledgerId":9223372036854775807,"entryId":9223372036854775807} (Latest) or
//             {"ledgerId":-1,"entryId":-1} (Earliest): MessageId.latest / MessageId.earliest. 204 created; 409 it
//             exists, success, and its cursor stays where it is. On a partitioned topic the same path creates it on
//             every partition (204 as long as one partition lacked it). A topic the broker may not auto-create: 412.
//  - delete:  DELETE .../subscription/{sub}?force=true (204; 404 when it or the topic is gone: success).
//  (`...` is /admin/v2/{persistent|non-persistent}/{tenant}/{ns}/{topic}.)
//  - stats:   GET .../stats[?getEarliestTimeInBacklog=true] (non-partitioned) or
//             GET .../partitioned-stats?perPartition={false|true}[&getEarliestTimeInBacklog=true]; see below.
//  - entries: GET .../internalStats (numberOfEntries) or .../partitioned-internalStats.
//  - partitions: GET .../partitions ({"partitions":N}; 0 for a non-partitioned topic; 404 for one that does not
//             exist, which the call does not create).
//
// Names in paths: tenant and namespace are percent-encoded once; the topic's local name and the subscription twice,
// because the broker decodes those path segments twice (the servlet, then TopicName / the subscription handler):
// encoded once, a subscription 'a+b' is read as 'a b' and 'a%c' fails with HTTP 500 (measured).
//
// Partitioned or not, in one call: `stats` on a partitioned topic answers 404, `partitioned-stats` on a
// non-partitioned one 404 too. Asking the metadata first (GET .../partitions) would cost two calls per topic every
// time; instead a call tries the kind last seen for that topic (non-partitioned when unknown) and on 404 the other
// one, and remembers partitioned topics (bounded). So each topic costs one call per read once known, two the first
// time it turns out partitioned, and a topic re-created as the other kind is found again by the same fallback.
//
// The oldest publish time comes from the stats (getEarliestTimeInBacklog: the broker reads the entry after the
// subscription's mark-delete position), not from peeking the first message (GET .../subscription/{sub}/position/1,
// whose X-Pulsar-publish-time header carries it): on Pulsar 4.0.8 a peek at a subscription that does not exist
// CREATES it (durable, at the earliest position — measured), so a peek racing a delete would bring the subscription
// back and make the broker retain the whole topic for it. The stats way also costs no extra call and no payload,
// and covers every partition of a partitioned topic in the same call.
//
// Batching (issue #20: 1000 triggers must not hammer the broker): the admin API has no namespace-scoped stats. The
// only call that returns many topics' stats at once, GET /admin/v2/broker-stats/topics, needs a superuser (the
// client role gets 401 here) and returns only the topics owned by the broker that answers (grouped namespace →
// bundle → topic, a snapshot the broker refreshes periodically: a topic just written to was absent from it):
// behind a load balancer or a proxy that is whichever broker took the call, so a namespace view means calling
// every broker by its own address (GET /admin/v2/brokers/{cluster}, superuser too) and filtering every topic of
// the cluster. That is not cheaper nor reliably reachable from a controller, so there is no
// namespaceSubscriptionStats. What is batched: `topicStats` returns every subscription of a topic from one call
// (triggers sharing a topic share it), and requests to the broker are bounded by the keep-alive agent
// (`connections`, default 8 at a time; the rest wait their turn).
//
// HTTP: Node's own http/https through createRequire (not undici, which the controller's bundle does not load:
// kubeapi.ts, docs/dispatcher.md Memory), keep-alive agents, one TLS context, idle sockets closed after 20 s
// (under Jetty's default 30 s idle timeout) and a request on a reused socket that the server had closed sent again
// once (every call here is idempotent). `timeoutMs` covers the whole call: waiting for a socket, redirects, the
// body. Answers are read up to `maxResponseBytes` (default 8 MiB). 307/308 redirects (a broker sending the call to
// the topic's owner) are followed up to 5 times, never from https to http.

import type { ClientRequest, Agent as HttpAgent, IncomingMessage } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { createRequire } from 'node:module';
import {
  AdminBadResponseError,
  type AdminErrorContext,
  AdminForbiddenError,
  AdminNotFoundError,
  AdminUnavailableError,
  adminStatusError,
  type PulsarAdminError,
} from './admin-errors.ts';
import {
  missingTopic,
  parseEntryCount,
  parseTopicStats,
  pickSubscription,
  type SubscriptionStats,
  type TopicSubscriptions,
} from './admin-stats.ts';
import { type AuthProvider, type Logger, silentLogger } from './auth.ts';
import { PulsarError, PulsarErrorCode } from './errors.ts';
import { describeTlsError } from './tls.ts';
import { redactTokens } from './token.ts';
import { parseTopicName, type TopicName } from './topic.ts';

// Node's http, https and tls through require(), not ES imports: an ES import of a builtin reads every export, and
// node:http's WebSocket getters then load Node's internal undici (docs/dispatcher.md, Memory). Loaded when the first
// PulsarAdmin is made, not with this module: the dispatcher imports the client's index, which exports this class,
// and has no use for node:https (metrics.ts keeps it out for its idle RSS).
interface Builtins {
  http: typeof import('node:http');
  https: typeof import('node:https');
  createSecureContext: typeof import('node:tls').createSecureContext;
}
let builtins: Builtins | undefined;
function loadBuiltins(): Builtins {
  if (!builtins) {
    const nodeRequire = createRequire(import.meta.url);
    builtins = {
      http: nodeRequire('node:http') as typeof import('node:http'),
      https: nodeRequire('node:https') as typeof import('node:https'),
      createSecureContext: (nodeRequire('node:tls') as typeof import('node:tls')).createSecureContext,
    };
  }
  return builtins;
}

export type {
  SubscriptionFigures,
  SubscriptionStats,
  TopicSubscriptions,
} from './admin-stats.ts';

/** TLS to an https:// admin URL. PEM contents (the controller reads them from Secrets), not file names. */
export interface AdminTlsOptions {
  /** CA certificate(s) to trust; default: Node's CA store. */
  ca?: string | Buffer | undefined;
  /** Client certificate and key (mTLS): both or neither. */
  cert?: string | Buffer | undefined;
  key?: string | Buffer | undefined;
  /** Check that the certificate names the host. Default true; false logs a warning. */
  hostnameVerification?: boolean | undefined;
  /** Accept any certificate, trusted or not (tests, never production). Default false; true logs a warning. */
  allowInsecure?: boolean | undefined;
}

export interface PulsarAdminOptions {
  /** http(s)://host:port, optionally with a path prefix (a gateway); see defaultAdminUrl. */
  adminUrl: string;
  /** Token auth (token.ts tokenAuth): its data() is sent as `Authorization: Bearer`, read again for every call. */
  auth?: AuthProvider | undefined;
  tls?: AdminTlsOptions | undefined;
  /** Deadline of a whole call (socket wait, redirects, body). Default 30 s. */
  timeoutMs?: number | undefined;
  /** Largest answer read. Default 8 MiB. */
  maxResponseBytes?: number | undefined;
  /** Keep-alive connections per broker, which bounds the calls in flight. Default 8. */
  connections?: number | undefined;
  logger?: Logger | undefined;
}

export type SubscriptionPosition = 'Latest' | 'Earliest';

/** The calls the controller uses, for a port it can fake in unit tests. */
export type PulsarAdminApi = Pick<
  PulsarAdmin,
  | 'createSubscription'
  | 'deleteSubscription'
  | 'topicStats'
  | 'subscriptionStats'
  | 'oldestBacklogPublishTime'
  | 'topicMessageCount'
>;

export const DEFAULT_ADMIN_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
const MAX_REDIRECTS = 5;
/** Idle keep-alive sockets are closed before the broker's Jetty closes them (30 s idle timeout). */
const IDLE_SOCKET_MS = 20_000;
/** Topics remembered as partitioned (oldest forgotten first). */
const MAX_REMEMBERED = 10_000;

// MessageId.latest and MessageId.earliest as the broker reads them (Long.MAX_VALUE does not fit a JS number, so the
// bodies are written out).
const POSITION_BODY: Record<SubscriptionPosition, string> = {
  Latest: '{"ledgerId":9223372036854775807,"entryId":9223372036854775807}',
  Earliest: '{"ledgerId":-1,"entryId":-1}',
};

function invalid(message: string, context: Record<string, unknown> = {}, cause?: unknown): PulsarError {
  return new PulsarError(PulsarErrorCode.InvalidArgument, message, context, cause ? { cause } : undefined);
}

/**
 * The admin URL that goes with a broker URL when none is configured: the broker's host, http on 8080 for
 * `pulsar://`, https on 8443 for `pulsar+ssl://` (Pulsar's default webServicePort and webServicePortTls). The
 * broker's port is not carried over (it is the binary protocol's). `tls` forces https (true) or http (false); by
 * default the scheme decides. An http(s):// service URL already is the web service: its origin, as given.
 * Examples: pulsar://pulsar.example:6650 → http://pulsar.example:8080, pulsar+ssl://[::1]:6651 → https://[::1]:8443.
 */
export function defaultAdminUrl(brokerUrl: string, tls?: boolean): string {
  const m = /^(pulsar|pulsar\+ssl|http|https):\/\/(\[[0-9A-Fa-f:.]+\]|[^/:[\],@]+)(?::(\d+))?\/?$/.exec(
    String(brokerUrl).trim(),
  );
  if (!m) {
    throw invalid(
      `cannot derive an admin URL from '${brokerUrl}': expected pulsar://host[:port] or pulsar+ssl://host[:port] (one host)`,
      { brokerUrl },
    );
  }
  const [, scheme, host, port] = m as unknown as [string, string, string, string | undefined];
  if (scheme === 'http' || scheme === 'https') return `${scheme}://${host}${port ? `:${port}` : ''}`;
  const secure = tls ?? scheme === 'pulsar+ssl';
  return secure ? `https://${host}:8443` : `http://${host}:8080`;
}

function adminTopic(topic: string): TopicName {
  const t = parseTopicName(topic);
  if (t.namespace.includes('/')) {
    throw invalid(
      `topic '${topic}': names with a cluster segment (tenant/cluster/namespace) are the v1 admin API's; this client speaks v2`,
      { topic },
    );
  }
  return t;
}

function checkSubscription(subscription: string): void {
  if (typeof subscription !== 'string' || subscription === '') {
    throw invalid('the subscription name must be a non-empty string', { subscription });
  }
}

/**
 * The path of a topic's admin resource: /admin/v2/{domain}/{tenant}/{namespace}/{topic}[/{suffix}], the topic's
 * local name (partition suffix included) encoded twice (see the header). `suffix` segments are taken as given.
 */
export function adminTopicPath(topic: string | TopicName, suffix = ''): string {
  const t = typeof topic === 'string' ? adminTopic(topic) : topic;
  const local = encodeURIComponent(encodeURIComponent(t.localName));
  const base = `/admin/v2/${t.domain}/${encodeURIComponent(t.tenant)}/${encodeURIComponent(t.namespace)}/${local}`;
  return suffix ? `${base}/${suffix}` : base;
}

/** The path segment of a subscription under a topic: `subscription/{name}`, the name encoded twice. */
export function subscriptionSegment(subscription: string): string {
  checkSubscription(subscription);
  return `subscription/${encodeURIComponent(encodeURIComponent(subscription))}`;
}

/**
 * Where a 307/308 leads: the Location resolved against the URL called. Refused (bad response) without a Location,
 * to a scheme other than http(s), or from https to http while credentials go along.
 */
export function redirectTarget(from: URL, location: string | undefined, withCredentials: boolean): URL {
  const ctx = { url: `${from.origin}${from.pathname}` };
  if (!location) {
    throw new AdminBadResponseError(`Pulsar admin ${ctx.url}: a redirect without a Location`, ctx);
  }
  let to: URL;
  try {
    to = new URL(location, from);
  } catch (e) {
    throw new AdminBadResponseError(`Pulsar admin ${ctx.url}: a redirect to an invalid URL`, ctx, {
      cause: e,
    });
  }
  if (to.protocol !== 'http:' && to.protocol !== 'https:') {
    throw new AdminBadResponseError(
      `Pulsar admin ${ctx.url}: a redirect to ${to.protocol} is not followed`,
      ctx,
    );
  }
  if (withCredentials && from.protocol === 'https:' && to.protocol === 'http:') {
    throw new AdminBadResponseError(
      `Pulsar admin ${ctx.url}: a redirect from https to ${to.origin} is not followed (the token would go in the clear)`,
      ctx,
    );
  }
  return to;
}

/** The broker's reason for a status: its JSON `reason`, else the status text; one line, at most 300 characters. */
export function brokerReason(body: string, statusMessage: string | undefined): string | undefined {
  let reason: string | undefined;
  try {
    const parsed = JSON.parse(body) as unknown;
    if (typeof parsed === 'object' && parsed !== null && 'reason' in parsed) {
      const r = (parsed as { reason: unknown }).reason;
      if (typeof r === 'string') reason = r;
    }
  } catch {
    // not JSON (Jetty's own HTML error pages): the status text says it
  }
  reason = (reason ?? statusMessage ?? '').trim().split('\n')[0]?.trim();
  if (!reason) return undefined;
  return reason.length > 300 ? `${reason.slice(0, 297)}...` : reason;
}

interface Reply {
  status: number;
  reason: string | undefined;
  body: string;
  /** Origin and path of the URL that answered (after redirects), for errors. */
  url: string;
}

const RETRY_ON_REUSED = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

type Kind = 'single' | 'partitioned';

export class PulsarAdmin {
  readonly adminUrl: string;
  readonly #base: URL;
  readonly #auth: AuthProvider | undefined;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #log: Logger;
  readonly #httpAgent: HttpAgent;
  readonly #httpsAgent: HttpsAgent;
  /** Topics last seen partitioned (insertion order = age). */
  readonly #partitioned = new Map<string, true>();
  #closed = false;

  constructor(options: PulsarAdminOptions) {
    let base: URL;
    try {
      base = new URL(options.adminUrl);
    } catch (e) {
      throw invalid(`invalid admin URL '${options.adminUrl}'`, {}, e);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw invalid(`invalid admin URL '${options.adminUrl}': expected http:// or https://`);
    }
    if (base.username || base.password || base.search || base.hash) {
      throw invalid('the admin URL takes no user info, query or fragment (credentials go in `auth`)');
    }
    if (options.auth && options.auth.method !== 'token') {
      throw invalid(`admin auth: only token auth is supported (got '${options.auth.method}')`);
    }
    const tls = options.tls ?? {};
    if (Boolean(tls.cert) !== Boolean(tls.key)) {
      throw invalid('admin TLS: a client certificate needs both cert and key');
    }
    this.#base = base;
    this.adminUrl = `${base.origin}${base.pathname.replace(/\/+$/, '')}`;
    this.#auth = options.auth;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_ADMIN_TIMEOUT_MS;
    this.#maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.#log = options.logger ?? silentLogger;
    const { http, https, createSecureContext } = loadBuiltins();
    const maxSockets = Math.max(1, options.connections ?? 8);
    const agentOptions = { keepAlive: true, maxSockets, maxFreeSockets: maxSockets, timeout: IDLE_SOCKET_MS };
    this.#httpAgent = new http.Agent(agentOptions);
    if (tls.hostnameVerification === false) {
      this.#log.warn(
        { adminUrl: this.adminUrl, tlsHostnameVerification: false },
        'Pulsar admin: TLS hostname verification is OFF',
      );
    }
    if (tls.allowInsecure) {
      this.#log.warn(
        { adminUrl: this.adminUrl, tlsAllowInsecure: true },
        'Pulsar admin: TLS accepts any certificate (allowInsecure)',
      );
    }
    // One TLS context for every connection (kubeapi.ts measured a context per connection otherwise).
    const secureContext = createSecureContext({
      ...(tls.ca ? { ca: tls.ca } : {}),
      ...(tls.cert ? { cert: tls.cert } : {}),
      ...(tls.key ? { key: tls.key } : {}),
    });
    this.#httpsAgent = new https.Agent({
      ...agentOptions,
      secureContext,
      rejectUnauthorized: tls.allowInsecure !== true,
      ...(tls.hostnameVerification === false ? { checkServerIdentity: () => undefined } : {}),
    });
  }

  /**
   * Creates the subscription at the end of the topic (Latest: only messages published from now on) or at its
   * beginning (Earliest: every message the topic still holds). 'exists' when it was there already: its cursor is
   * left where it is. A partitioned topic gets it on every partition. Non-persistent topics have no subscriptions
   * of their own outside a consumer (the broker refuses: 400), so this refuses them without a call.
   */
  async createSubscription(
    topic: string,
    subscription: string,
    position: SubscriptionPosition,
  ): Promise<'created' | 'exists'> {
    const t = adminTopic(topic);
    if (t.domain !== 'persistent') {
      const why = "a non-persistent topic's subscriptions exist only while consumers are connected";
      throw invalid(`topic ${t.full}: ${why}`, { topic: t.full });
    }
    const body = POSITION_BODY[position];
    if (body === undefined)
      throw invalid(`subscription position must be Latest or Earliest (got '${position}')`);
    const r = await this.#call('PUT', adminTopicPath(t, subscriptionSegment(subscription)), body);
    if (r.status === 204 || r.status === 200) return 'created';
    if (r.status === 409) return 'exists';
    // 412 "Topic does not exist and cannot be auto-created" (allowAutoTopicCreation off): the topic is missing.
    if (r.status === 412 && r.reason && /does not exist/i.test(r.reason)) {
      throw new AdminNotFoundError(
        `Pulsar admin PUT ${r.url}: topic ${t.full} does not exist and the broker does not create it (${r.reason})`,
        { method: 'PUT', url: r.url, status: r.status, reason: r.reason, topic: t.full },
      );
    }
    throw this.#statusError('PUT', r, t.full);
  }

  /**
   * Partitions of the topic from its partitioned metadata (GET .../partitions): 0 for a non-partitioned topic or
   * one the broker does not know (the call asks for metadata only; it creates nothing). A partition
   * (name-partition-N) is a topic of its own: 0, no call. Remembered for the stats calls, which then ask the right
   * kind first.
   */
  async partitions(topic: string): Promise<number> {
    const t = adminTopic(topic);
    if (t.partitionIndex >= 0) return 0;
    const r = await this.#call('GET', adminTopicPath(t, 'partitions'));
    // Pulsar 4 answers 404 for a topic it does not know (older brokers: 0 partitions).
    if (r.status === 404) return 0;
    if (r.status !== 200) throw this.#statusError('GET', r, t.full);
    const body = this.#json(r, t.full) as { partitions?: unknown } | null;
    const n = body?.partitions;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
      throw new AdminBadResponseError(`Pulsar admin GET ${r.url}: the answer has no partition count`, {
        method: 'GET',
        url: r.url,
        status: r.status,
        topic: t.full,
      });
    }
    this.#remember(t.full, n > 0 ? 'partitioned' : 'single');
    return n;
  }

  /**
   * Deletes the subscription; `force` (default true) disconnects its consumers first, else a subscription with
   * consumers is refused (AdminRejectedError, 412). 'absent' when it (or its topic, or namespace) was not there.
   */
  async deleteSubscription(
    topic: string,
    subscription: string,
    options: { force?: boolean } = {},
  ): Promise<'deleted' | 'absent'> {
    const t = adminTopic(topic);
    const force = options.force ?? true;
    const r = await this.#call(
      'DELETE',
      `${adminTopicPath(t, subscriptionSegment(subscription))}?force=${force}`,
    );
    if (r.status === 204 || r.status === 200) return 'deleted';
    if (r.status === 404) return 'absent';
    throw this.#statusError('DELETE', r, t.full);
  }

  /**
   * Every subscription of the topic with its figures, from one call (two the first time a topic turns out
   * partitioned). A topic the broker does not know gives `exists: false`. `oldestPublishTime` also asks for the
   * publish time of each subscription's oldest message behind (one entry read by the broker per subscription with
   * a backlog, and for a partitioned topic the per-partition stats in the answer).
   */
  async topicStats(
    topic: string,
    options: { oldestPublishTime?: boolean } = {},
  ): Promise<TopicSubscriptions> {
    const t = adminTopic(topic);
    const oldest = options.oldestPublishTime === true;
    const path = (kind: Kind) =>
      kind === 'single'
        ? adminTopicPath(t, oldest ? 'stats?getEarliestTimeInBacklog=true' : 'stats')
        : adminTopicPath(
            t,
            oldest
              ? 'partitioned-stats?perPartition=true&getEarliestTimeInBacklog=true'
              : 'partitioned-stats?perPartition=false',
          );
    const found = await this.#eitherKind(t, path);
    if (!found) return missingTopic(t.full);
    return parseTopicStats(this.#json(found.reply, t.full), found.kind === 'partitioned', t.full);
  }

  /** One subscription's figures (from topicStats: one call per topic). `exists` false when it is not there. */
  async subscriptionStats(
    topic: string,
    subscription: string,
    options: { oldestPublishTime?: boolean } = {},
  ): Promise<SubscriptionStats> {
    checkSubscription(subscription);
    return pickSubscription(await this.topicStats(topic, options), subscription);
  }

  /**
   * Publish time (ms since the epoch) of the first message in the subscription's backlog, the oldest over the
   * partitions of a partitioned topic; undefined when the backlog is empty or the subscription does not exist.
   */
  async oldestBacklogPublishTime(topic: string, subscription: string): Promise<number | undefined> {
    const s = await this.subscriptionStats(topic, subscription, { oldestPublishTime: true });
    return s.oldestBacklogPublishTime;
  }

  /**
   * Messages stored on a topic (a dead-letter topic: status.deadLettered): the entries its managed ledger holds
   * (internalStats numberOfEntries, summed over partitions), 0 when the topic does not exist. Entries rather than
   * msgInCounter, which counts only since the topic was last loaded on its broker (a restart or a bundle move
   * starts it again from 0); entries are what the topic still retains, whoever reads or acknowledges them, and drop
   * only when retention removes them. One entry is one message for the dispatcher's dead letters (sent without
   * batching); a batch from another producer counts once. A non-persistent topic stores nothing: 0, no call.
   */
  async topicMessageCount(topic: string): Promise<number> {
    const t = adminTopic(topic);
    if (t.domain !== 'persistent') return 0;
    const found = await this.#eitherKind(t, (kind) =>
      adminTopicPath(t, kind === 'single' ? 'internalStats' : 'partitioned-internalStats'),
    );
    if (!found) return 0;
    return parseEntryCount(this.#json(found.reply, t.full), found.kind === 'partitioned', t.full);
  }

  /** Closes the idle connections; calls after close() are refused. */
  close(): void {
    this.#closed = true;
    this.#httpAgent.destroy();
    this.#httpsAgent.destroy();
  }

  /** GET the non-partitioned or the partitioned form, the one last seen first; undefined when both answer 404. */
  async #eitherKind(
    t: TopicName,
    path: (kind: Kind) => string,
  ): Promise<{ kind: Kind; reply: Reply } | undefined> {
    // A partition (name-partition-N) is a topic of its own, never partitioned.
    const order: Kind[] =
      t.partitionIndex >= 0
        ? ['single']
        : this.#partitioned.has(t.full)
          ? ['partitioned', 'single']
          : ['single', 'partitioned'];
    for (const kind of order) {
      const reply = await this.#call('GET', path(kind));
      if (reply.status === 404) continue;
      if (reply.status !== 200) throw this.#statusError('GET', reply, t.full);
      this.#remember(t.full, kind);
      return { kind, reply };
    }
    this.#partitioned.delete(t.full);
    return undefined;
  }

  #remember(topic: string, kind: Kind): void {
    if (kind === 'single') {
      this.#partitioned.delete(topic);
      return;
    }
    this.#partitioned.delete(topic);
    this.#partitioned.set(topic, true);
    if (this.#partitioned.size > MAX_REMEMBERED) {
      const oldest = this.#partitioned.keys().next().value;
      if (oldest !== undefined) this.#partitioned.delete(oldest);
    }
  }

  #json(reply: Reply, topic: string): unknown {
    try {
      return JSON.parse(reply.body) as unknown;
    } catch (e) {
      throw new AdminBadResponseError(
        `Pulsar admin GET ${reply.url}: the answer is not JSON`,
        {
          method: 'GET',
          url: reply.url,
          status: reply.status,
          topic,
        },
        { cause: e },
      );
    }
  }

  #statusError(method: string, r: Reply, topic: string): PulsarAdminError {
    const e = adminStatusError(r.status, { method, url: r.url, reason: r.reason });
    e.context.topic = topic;
    return e;
  }

  async #bearer(): Promise<string | undefined> {
    if (!this.#auth) return undefined;
    try {
      return new TextDecoder().decode(await this.#auth.data()).trim();
    } catch (e) {
      // The auth provider's own message names its source (file, variable), never the token.
      const why = e instanceof Error ? e.message : String(e);
      throw new AdminForbiddenError(
        `Pulsar admin: no token to send (${why})`,
        { auth: 'token' },
        { cause: e },
      );
    }
  }

  /**
   * One call: the answer with its status (any status; the caller decides), following redirects, within the
   * deadline. Transport failures and timeouts reject with AdminUnavailableError.
   */
  async #call(method: string, path: string, body?: string): Promise<Reply> {
    if (this.#closed) {
      throw new PulsarError(PulsarErrorCode.AlreadyClosed, 'Pulsar admin client is closed', {
        adminUrl: this.adminUrl,
      });
    }
    const token = await this.#bearer();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#timeoutMs);
    let url = new URL(`${this.#base.pathname.replace(/\/+$/, '')}${path}`, this.#base);
    try {
      for (let hop = 0; ; hop++) {
        const r = await this.#exchangeRetrying(method, url, body, token, controller.signal);
        if (r.status !== 307 && r.status !== 308) return r.reply;
        if (hop >= MAX_REDIRECTS) {
          throw new AdminBadResponseError(
            `Pulsar admin ${method} ${r.reply.url}: more than ${MAX_REDIRECTS} redirects`,
            {
              method,
              url: r.reply.url,
              status: r.status,
            },
          );
        }
        const next = redirectTarget(url, r.location, token !== undefined);
        this.#log.debug(
          { from: r.reply.url, to: `${next.origin}${next.pathname}` },
          'Pulsar admin: redirected',
        );
        url = next;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** #exchange, sent once more when a reused keep-alive socket turns out closed by the server before any answer. */
  async #exchangeRetrying(
    method: string,
    url: URL,
    body: string | undefined,
    token: string | undefined,
    signal: AbortSignal,
  ): Promise<{ status: number; location: string | undefined; reply: Reply }> {
    try {
      return await this.#exchange(method, url, body, token, signal);
    } catch (e) {
      const stale = e instanceof StaleSocket;
      if (!stale) throw e;
      return await this.#exchange(method, url, body, token, signal).catch((again: unknown) => {
        throw again instanceof StaleSocket ? again.error : again;
      });
    }
  }

  #exchange(
    method: string,
    url: URL,
    body: string | undefined,
    token: string | undefined,
    signal: AbortSignal,
  ): Promise<{ status: number; location: string | undefined; reply: Reply }> {
    const where = `${url.origin}${url.pathname}`;
    const ctx: AdminErrorContext = { method, url: where };
    const secrets = token ? [token] : [];
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    const secure = url.protocol === 'https:';
    const { http, https } = loadBuiltins();
    const request = secure ? https.request : http.request;
    return new Promise((resolve, reject) => {
      let settled = false;
      let answered = false;
      const fail = (e: unknown) => {
        if (settled) return;
        settled = true;
        reject(e);
      };
      const transportError = (err: unknown, req: ClientRequest): unknown => {
        if (signal.aborted) {
          return new AdminUnavailableError(
            `Pulsar admin ${method} ${where}: no complete answer within ${this.#timeoutMs} ms`,
            { ...ctx, timeoutMs: this.#timeoutMs },
          );
        }
        const code = (err as NodeJS.ErrnoException)?.code;
        const tlsError = describeTlsError(err, url.origin);
        if (tlsError) {
          return new AdminUnavailableError(
            `Pulsar admin ${method} ${where}: ${redactTokens(tlsError.message, secrets)}`,
            { ...ctx, tlsCode: code },
            { cause: err },
          );
        }
        const e = new AdminUnavailableError(
          `Pulsar admin ${method} ${where}: ${redactTokens(err instanceof Error ? err.message : String(err), secrets)}`,
          { ...ctx, errno: code },
          { cause: err },
        );
        if (!answered && req.reusedSocket && code !== undefined && RETRY_ON_REUSED.has(code)) {
          return new StaleSocket(e);
        }
        return e;
      };
      const req = request(
        url,
        {
          method,
          headers,
          agent: secure ? this.#httpsAgent : this.#httpAgent,
          signal,
        },
        (res: IncomingMessage) => {
          answered = true;
          const status = res.statusCode ?? 0;
          const declared = Number(res.headers['content-length']);
          const chunks: Buffer[] = [];
          let size = 0;
          const tooLarge = () =>
            new AdminBadResponseError(
              `Pulsar admin ${method} ${where}: an answer larger than ${this.#maxBytes} bytes`,
              { ...ctx, status, maxResponseBytes: this.#maxBytes },
            );
          if (Number.isFinite(declared) && declared > this.#maxBytes) {
            fail(tooLarge());
            req.destroy();
            return;
          }
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > this.#maxBytes) {
              fail(tooLarge());
              req.destroy();
              return;
            }
            chunks.push(c);
          });
          res.on('error', (err) => fail(transportError(err, req)));
          res.on('end', () => {
            if (settled) return;
            settled = true;
            const text = Buffer.concat(chunks).toString('utf8');
            const reason =
              status >= 300
                ? redactTokens(brokerReason(text, res.statusMessage) ?? '', secrets) || undefined
                : undefined;
            resolve({
              status,
              location: res.headers.location,
              reply: { status, reason, body: text, url: where },
            });
          });
        },
      );
      req.on('error', (err) => fail(transportError(err, req)));
      req.end(body);
    });
  }
}

/** A keep-alive socket the server closed while our request went out on it: worth sending once more. */
class StaleSocket extends Error {
  readonly error: AdminUnavailableError;
  constructor(error: AdminUnavailableError) {
    super(error.message);
    this.error = error;
  }
}
