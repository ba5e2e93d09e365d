// The HTTP edge: POSTs a message to the function over a keep-alive connection pool (undici) and turns whatever
// happens into an Outcome. Never throws for a delivery failure: the policy decides what a failure means.
//
// undici's low-level dispatch() with one small handler object per request, not request(): request() builds a
// Readable stream for every response body and a promise chain around it. Measured (bench/dispatcher/http-clients.ts,
// same bodies, 32 connections, the Deployment's heap flags): dispatch() ~26 µs of CPU per request against ~34 µs
// for request() and ~67 µs for node:http with a keep-alive Agent, and fewer scavenges; so undici stays, used lower.

// The Pool's own file, not the package index: the index loads all of undici (fetch, WebSocket, caches, mocks) and
// Node's internal copy of it, ~6 MiB of idle RSS the dispatcher never uses (bench/dispatcher.ts, idle RSS goal).
import Pool from 'undici/lib/dispatcher/pool.js';
import type { NetworkErrorKind, Outcome } from './policy.ts';
import { parseRetryAfter } from './policy.ts';

export interface FunctionClientOptions {
  url: string;
  /** Connections kept to the function (and to each redirect target): the dispatcher's concurrency. */
  connections: number;
  /**
   * Deadline of the whole exchange, from the moment the request is handed to the pool: connect, send, the
   * function's time, the response headers, the body and every redirect hop.
   */
  timeoutMs: number;
  /**
   * Certificate authorities trusted for https functions and redirect targets, instead of Node's store (which
   * NODE_EXTRA_CA_CERTS extends; what a Deployment uses). For tests against a private CA.
   */
  ca?: string | Buffer | undefined;
  now?: () => number;
}

export interface Attempt {
  outcome: Outcome;
  durationMs: number;
}

/** Receives an attempt's result, with the context given to send(). */
export type AttemptDone<T> = (ctx: T, outcome: Outcome, durationMs: number) => void;

export interface FunctionClient {
  /** `signal` aborts the attempt (shutdown): the outcome is then { kind: 'aborted' }. */
  post(payload: Uint8Array, headers: Record<string, string>, signal?: AbortSignal): Promise<Attempt>;
  /**
   * The same attempt, its result handed to done(ctx, ...) from a microtask (never synchronously): no promise, no
   * closure, no result object per request (the dispatcher's hot path).
   */
  send<T>(
    payload: Uint8Array,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    done: AttemptDone<T>,
    ctx: T,
  ): void;
  close(): Promise<void>;
}

/** How much of an error response body is kept for logs and the dead-letter properties. */
const ERROR_BODY_BYTES = 512;
/**
 * A non-2xx (or redirect) body is read up to this much and thrown away; beyond it the connection is destroyed
 * rather than drained, so an endless or huge body costs neither memory nor time.
 */
export const ERROR_BODY_READ_LIMIT = 64 * 1024;
/** A 2xx body is read and thrown away up to this much; beyond, the connection is destroyed (the 2xx stands). */
export const SUCCESS_BODY_READ_LIMIT = 128 * 1024;
/** Redirects followed per attempt; one more is a `redirect_limit` failure. */
export const MAX_REDIRECTS = 5;
/** Origins other than the function's with a connection pool of their own (redirect targets), at most. */
export const MAX_REDIRECT_ORIGINS = 8;

/** The statuses followed: the request is re-sent as it was (POST, same body, same headers). 303 is not. */
function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 307 || status === 308;
}

export type RedirectTarget =
  | { ok: true; url: URL }
  | { ok: false; error: 'redirect_limit' | 'redirect_refused'; message: string };

/**
 * Where the `hops`-th redirect (1-based) from `from` leads, or why it is not followed: more than MAX_REDIRECTS
 * hops, a Location that is not a URL, a scheme other than http(s), or https→http (the event would leave TLS).
 * A relative Location is resolved against the request's URL. Pure.
 */
export function redirectTarget(from: URL, location: string, hops: number): RedirectTarget {
  const where = location.length > 200 ? `${location.slice(0, 200)}…` : location;
  if (hops > MAX_REDIRECTS) {
    return {
      ok: false,
      error: 'redirect_limit',
      message: `more than ${MAX_REDIRECTS} redirects (the last to ${where})`,
    };
  }
  let url: URL;
  try {
    url = new URL(location.trim(), from);
  } catch {
    return { ok: false, error: 'redirect_refused', message: `unreadable Location ${JSON.stringify(where)}` };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { ok: false, error: 'redirect_refused', message: `redirect to ${url.protocol} (${where})` };
  }
  if (from.protocol === 'https:' && url.protocol === 'http:') {
    return { ok: false, error: 'redirect_refused', message: `redirect from https to http (${where})` };
  }
  url.hash = '';
  return { ok: true, url };
}

export function classifyError(error: unknown): { kind: NetworkErrorKind; message: string } {
  const codes: string[] = [];
  let message = '';
  let e: unknown = error;
  for (let depth = 0; e && depth < 5; depth++) {
    const o = e as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
    if (typeof o.code === 'string') codes.push(o.code);
    if (!message && typeof o.message === 'string' && o.message) message = o.message;
    // AggregateError (happy eyeballs: every address refused).
    if (Array.isArray(o.errors) && o.errors.length > 0) e = o.errors[0];
    else e = o.cause;
  }
  const has = (...c: string[]) => codes.some((x) => c.includes(x));
  let kind: NetworkErrorKind = 'other';
  if (has('ECONNREFUSED')) kind = 'refused';
  else if (
    has(
      'UND_ERR_HEADERS_TIMEOUT',
      'UND_ERR_BODY_TIMEOUT',
      'UND_ERR_CONNECT_TIMEOUT',
      'ETIMEDOUT',
      'ESOCKETTIMEDOUT',
    )
  )
    kind = 'timeout';
  else if (has('ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ECONNABORTED')) kind = 'reset';
  else if (has('ENOTFOUND', 'EAI_AGAIN', 'EAI_NODATA')) kind = 'dns';
  else if (codes.some((c) => c.startsWith('ERR_TLS') || c.startsWith('ERR_SSL') || c.includes('CERT')))
    kind = 'tls';
  if (codes.length > 0 && !message.includes(codes[0]!)) message = `${codes[0]}: ${message}`;
  return { kind, message: message || String(error) };
}

/** The outcome of every plain 2xx is the same shape; one object per status code, shared (outcomes are read only). */
const successes = new Map<number, Outcome>();
function success(status: number): Outcome {
  let o = successes.get(status);
  if (!o) {
    o = { kind: 'status', status };
    successes.set(status, o);
  }
  return o;
}

const ABORTED: Outcome = { kind: 'aborted' };

/** Requests in flight per abort signal: one listener per signal, not one per request. */
type Watchers = Set<Exchange>;

/**
 * One attempt: the request, its response and any redirect hops, as undici's dispatch handler (the legacy
 * callbacks, which undici calls without an adapter). Settles exactly once, with an Attempt.
 */
class Exchange {
  readonly started: number;
  /** When the whole exchange times out (performance.now() time). */
  readonly deadline: number;
  /** Neighbours in the client's list of exchanges in flight, which is in deadline order. */
  prev: Exchange | undefined;
  next: Exchange | undefined;
  readonly #client: Client;
  readonly #payload: Uint8Array;
  readonly #headers: Record<string, string>;
  readonly #signal: AbortSignal | undefined;
  readonly #done: AttemptDone<unknown>;
  readonly #ctx: unknown;
  #outcome: Outcome | undefined;
  #durationMs = 0;
  #abort: ((error?: Error) => void) | undefined;
  #abortRequested = false;
  /** The URL of the current hop after a redirect; undefined while it is the function's own. */
  #url: URL | undefined;
  #hops = 0;
  // The current hop's response.
  #status = 0;
  #retryAfter: string | undefined;
  #location: string | undefined;
  #kept: Buffer[] | undefined;
  #keptBytes = 0;
  #read = 0;
  #cut = false;
  #settled = false;

  constructor(
    client: Client,
    payload: Uint8Array,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    done: AttemptDone<unknown>,
    ctx: unknown,
  ) {
    this.#client = client;
    this.#payload = payload;
    this.#headers = headers;
    this.#signal = signal;
    this.#done = done;
    this.#ctx = ctx;
    this.started = client.now();
    this.deadline = performance.now() + client.timeoutMs;
  }

  /** Hands the current hop's request to its pool. */
  dispatch(pool: Pool, path: string): void {
    try {
      // undici takes a Uint8Array body as it is (no copy) and writes it after the head; a redirect hop sends the
      // same bytes again.
      pool.dispatch({ path, method: 'POST', headers: this.#headers, body: this.#payload }, this);
    } catch (error) {
      this.onError(error);
    }
  }

  onConnect(abort: (error?: Error) => void): void {
    this.#abort = abort;
    // Aborted (or timed out) while still queued in the pool: undici hands the request its abort only when it is
    // dispatched.
    if (this.#abortRequested) abort();
  }

  /** The shutdown signal fired while this request was in flight. */
  abortNow(): void {
    this.#abortRequested = true;
    this.#abort?.();
  }

  /**
   * The deadline passed. A status already received stands (its body is cut); otherwise, or in the middle of a
   * redirect, the attempt is a timeout. The request is aborted, which destroys its connection.
   */
  expire(): void {
    if (this.#status !== 0 && this.#location === undefined) this.#finish();
    else {
      const phase =
        this.#status !== 0
          ? `in the body of redirect ${this.#hops + 1}`
          : this.#hops > 0
            ? `before the response headers, after ${this.#hops} redirect${this.#hops > 1 ? 's' : ''}`
            : 'before the response headers';
      this.settle({
        kind: 'network',
        error: 'timeout',
        message: `no complete response within ${this.#client.timeoutMs} ms (${phase})`,
      });
    }
    this.#abortRequested = true;
    this.#abort?.();
  }

  onHeaders(status: number, raw: Buffer[] | string[] | null): boolean {
    this.#status = status;
    if (status >= 200 && status <= 299) return true;
    // Informational answers (100 Continue...) are not final: undici passes them on only for upgrades.
    let location: string | undefined;
    if (raw) {
      for (let i = 0; i + 1 < raw.length; i += 2) {
        const name = raw[i]!;
        if (name.length === 11 && name.toString().toLowerCase() === 'retry-after') {
          this.#retryAfter = raw[i + 1]!.toString();
        } else if (name.length === 8 && name.toString().toLowerCase() === 'location') {
          location = raw[i + 1]!.toString();
        }
      }
    }
    // A redirect without a Location is an ordinary non-2xx.
    if (location !== undefined && isRedirect(status)) this.#location = location;
    else this.#kept = [];
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.#read += chunk.byteLength;
    const ok = this.#status >= 200 && this.#status <= 299;
    if (this.#kept !== undefined && this.#keptBytes < ERROR_BODY_BYTES) {
      const part = Buffer.from(chunk.subarray(0, ERROR_BODY_BYTES - this.#keptBytes));
      this.#kept.push(part);
      this.#keptBytes += part.byteLength;
    }
    if (this.#read > (ok ? SUCCESS_BODY_READ_LIMIT : ERROR_BODY_READ_LIMIT) && !this.#cut) {
      // Not drained: aborting destroys the connection, so the rest of the body is never read.
      this.#cut = true;
      this.#abort?.();
    }
    return true;
  }

  onComplete(): void {
    this.#finish();
  }

  onError(error: unknown): void {
    if (this.#settled) return;
    // A body cut short (by us, or by the function) still leaves the status, which is what matters.
    if (this.#status !== 0 && !this.#abortRequested) {
      this.#finish();
      return;
    }
    this.settle(this.#client.failure(error, this.#signal));
  }

  #finish(): void {
    if (this.#settled) return;
    if (this.#location !== undefined) {
      // Followed from a microtask: outside undici's callbacks, whose parser and socket are still busy here. (A
      // closure only for a redirect: the exchange itself carries none.)
      this.#abort = undefined;
      queueMicrotask(() => this.#follow());
      return;
    }
    const status = this.#status;
    if (status >= 200 && status <= 299) {
      this.settle(success(status));
      return;
    }
    const text = this.#kept ? Buffer.concat(this.#kept).toString('utf8').replace(/\s+/g, ' ').trim() : '';
    const retryAfterMs = parseRetryAfter(this.#retryAfter, Date.now());
    this.settle({ kind: 'status', status, retryAfterMs, body: text || undefined });
  }

  #follow(): void {
    if (this.#settled) return;
    if (this.#abortRequested || this.#signal?.aborted) {
      this.settle(ABORTED);
      return;
    }
    const from = this.#url ?? this.#client.url;
    const target = redirectTarget(from, this.#location!, ++this.#hops);
    if (!target.ok) {
      this.settle({
        kind: 'network',
        error: target.error,
        message: `HTTP ${this.#status} from ${from.href}: ${target.message}`,
      });
      return;
    }
    const url = target.url;
    this.#url = url;
    this.#status = 0;
    this.#retryAfter = undefined;
    this.#location = undefined;
    this.#kept = undefined;
    this.#keptBytes = 0;
    this.#read = 0;
    this.#cut = false;
    this.dispatch(this.#client.poolFor(url), `${url.pathname || '/'}${url.search}`);
  }

  settle(outcome: Outcome): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.#signal) this.#client.unwatch(this.#signal, this);
    this.#client.untrack(this);
    this.#outcome = outcome;
    this.#durationMs = this.#client.now() - this.started;
    this.#client.completed(this);
  }

  report(): void {
    this.#done(this.#ctx, this.#outcome!, this.#durationMs);
  }
}

const resolveAttempt: AttemptDone<(a: Attempt) => void> = (resolve, outcome, durationMs) =>
  resolve({ outcome, durationMs });

class Client implements FunctionClient {
  readonly now: () => number;
  readonly url: URL;
  readonly timeoutMs: number;
  readonly #opts: FunctionClientOptions;
  readonly #pool: Pool;
  readonly #path: string;
  /** Pools of redirect targets on other origins, least recently used first. */
  readonly #redirectPools = new Map<string, Pool>();
  readonly #retired = new Set<Promise<void>>();
  readonly #watched = new WeakMap<AbortSignal, Watchers>();
  #completed: (Exchange | undefined)[] = [];
  #spare: (Exchange | undefined)[] = [];
  #scheduled = false;
  // Exchanges in flight, oldest first. Every one has the same time budget, so this is also deadline order: one
  // timer, set for the first deadline, serves them all (no timer per request).
  #first: Exchange | undefined;
  #last: Exchange | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: FunctionClientOptions) {
    this.#opts = opts;
    this.url = new URL(opts.url);
    this.#path = `${this.url.pathname || '/'}${this.url.search}`;
    this.now = opts.now ?? (() => performance.now());
    this.timeoutMs = opts.timeoutMs;
    this.#pool = this.#newPool(this.url.origin);
  }

  #newPool(origin: string): Pool {
    // The deadline of the whole exchange is ours (#expire); undici's per-phase timers are off, except the
    // connect timeout, which also bounds how long a request stays queued behind a connection that never opens.
    return new Pool(origin, {
      connections: this.#opts.connections,
      pipelining: 1,
      headersTimeout: 0,
      bodyTimeout: 0,
      connectTimeout: Math.min(this.timeoutMs, 30_000),
      keepAliveTimeout: 30_000,
      ...(this.#opts.ca !== undefined ? { connect: { ca: this.#opts.ca } } : {}),
    });
  }

  /** The pool for a redirect target: the function's own for its origin, else one per origin, bounded. */
  poolFor(url: URL): Pool {
    const origin = url.origin;
    if (origin === this.url.origin) return this.#pool;
    let pool = this.#redirectPools.get(origin);
    if (pool) {
      // Most recently used last.
      this.#redirectPools.delete(origin);
      this.#redirectPools.set(origin, pool);
      return pool;
    }
    if (this.#redirectPools.size >= MAX_REDIRECT_ORIGINS) {
      const [oldest, old] = this.#redirectPools.entries().next().value!;
      this.#redirectPools.delete(oldest);
      this.#retire(old);
    }
    pool = this.#newPool(origin);
    this.#redirectPools.set(origin, pool);
    return pool;
  }

  /** Closes a pool once its requests in flight are over (they keep their own deadlines). */
  #retire(pool: Pool): void {
    const closing: Promise<void> = pool
      .close()
      .catch(() => pool.destroy())
      .finally(() => this.#retired.delete(closing));
    this.#retired.add(closing);
  }

  post(payload: Uint8Array, headers: Record<string, string>, signal?: AbortSignal): Promise<Attempt> {
    return new Promise<Attempt>((resolve) => this.send(payload, headers, signal, resolveAttempt, resolve));
  }

  send<T>(
    payload: Uint8Array,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    done: AttemptDone<T>,
    ctx: T,
  ): void {
    const x = new Exchange(this, payload, headers, signal, done as AttemptDone<unknown>, ctx);
    if (signal?.aborted) {
      x.settle(ABORTED);
      return;
    }
    if (signal) this.#watch(signal, x);
    this.#track(x);
    x.dispatch(this.#pool, this.#path);
  }

  /**
   * Results are reported from one microtask per batch, outside undici's callbacks: the runner starts the next
   * request from there, and must not re-enter undici's parser or write from inside its callbacks.
   */
  completed(x: Exchange): void {
    this.#completed.push(x);
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#report);
    }
  }

  readonly #report = (): void => {
    // Two lists swapped: what completes while this batch is reported (an aborted signal) goes to the next one.
    const list = this.#completed;
    this.#completed = this.#spare;
    this.#spare = list;
    this.#scheduled = false;
    for (let i = 0; i < list.length; i++) {
      const x = list[i]!;
      list[i] = undefined;
      try {
        x.report();
      } catch (error) {
        // The others of the batch are still reported; the error surfaces as it would have from a promise.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
    list.length = 0;
  };

  failure(error: unknown, signal: AbortSignal | undefined): Outcome {
    if (signal?.aborted) return ABORTED;
    const c = classifyError(error);
    const message =
      c.kind === 'timeout' ? `no complete response within ${this.timeoutMs} ms (${c.message})` : c.message;
    return { kind: 'network', error: c.kind, message };
  }

  #track(x: Exchange): void {
    x.prev = this.#last;
    if (this.#last) this.#last.next = x;
    else this.#first = x;
    this.#last = x;
    if (this.#timer === undefined) this.#arm(x.deadline);
  }

  untrack(x: Exchange): void {
    if (x.prev) x.prev.next = x.next;
    else if (this.#first === x) this.#first = x.next;
    else return;
    if (x.next) x.next.prev = x.prev;
    else this.#last = x.prev;
    x.prev = undefined;
    x.next = undefined;
  }

  #arm(deadline: number): void {
    // +1: a timer may fire a fraction of a millisecond early.
    this.#timer = setTimeout(this.#expire, Math.max(0, deadline - performance.now()) + 1);
    // The sockets of the exchanges keep the process alive, not this timer.
    this.#timer.unref();
  }

  readonly #expire = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    let x = this.#first;
    // expire() settles the exchange, which takes it out of the list.
    while (x !== undefined && x.deadline <= now) {
      x.expire();
      if (this.#first === x) this.untrack(x);
      x = this.#first;
    }
    if (x !== undefined && !this.#closed) this.#arm(x.deadline);
  };

  #watch(signal: AbortSignal, x: Exchange): void {
    let set = this.#watched.get(signal);
    if (!set) {
      const watchers: Watchers = new Set();
      set = watchers;
      this.#watched.set(signal, watchers);
      signal.addEventListener(
        'abort',
        () => {
          for (const w of [...watchers]) w.abortNow();
        },
        { once: true },
      );
    }
    set.add(x);
  }

  unwatch(signal: AbortSignal, x: Exchange): void {
    this.#watched.get(signal)?.delete(x);
  }

  async close(): Promise<void> {
    const pools = [this.#pool, ...this.#redirectPools.values()];
    this.#redirectPools.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => p.destroy())));
    await Promise.all([...this.#retired]);
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

export function createFunctionClient(opts: FunctionClientOptions): FunctionClient {
  return new Client(opts);
}
