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
  /** Connections kept to the function: the dispatcher's concurrency. */
  connections: number;
  /** Deadline for the response headers (connect, send, function time), and for each pause in the body. */
  timeoutMs: number;
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
/** Reading an error body beyond this is pointless; the connection is dropped instead. */
const ERROR_BODY_READ_LIMIT = 64 * 1024;
/** A 2xx body is read and thrown away up to this much; beyond, the connection is dropped (the 2xx stands). */
const SUCCESS_BODY_READ_LIMIT = 128 * 1024;

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
 * One request and its response, as undici's dispatch handler (the legacy callbacks, which undici calls without an
 * adapter). Settles exactly once, with an Attempt.
 */
class Exchange {
  readonly started: number;
  readonly #client: Client;
  readonly #signal: AbortSignal | undefined;
  readonly #done: AttemptDone<unknown>;
  readonly #ctx: unknown;
  #outcome: Outcome | undefined;
  #durationMs = 0;
  #abort: ((error?: Error) => void) | undefined;
  #abortRequested = false;
  #status = 0;
  #retryAfter: string | undefined;
  #kept: Buffer[] | undefined;
  #keptBytes = 0;
  #read = 0;
  #cut = false;
  #settled = false;

  constructor(client: Client, signal: AbortSignal | undefined, done: AttemptDone<unknown>, ctx: unknown) {
    this.#client = client;
    this.#signal = signal;
    this.#done = done;
    this.#ctx = ctx;
    this.started = client.now();
  }

  onConnect(abort: (error?: Error) => void): void {
    this.#abort = abort;
    // Aborted while still queued in the pool: undici hands the request its abort only when it is dispatched.
    if (this.#abortRequested) abort();
  }

  /** The shutdown signal fired while this request was in flight. */
  abortNow(): void {
    this.#abortRequested = true;
    this.#abort?.();
  }

  onHeaders(status: number, raw: Buffer[] | string[] | null): boolean {
    this.#status = status;
    if (status >= 200 && status <= 299) return true;
    // Informational answers (100 Continue...) are not final: undici passes them on only for upgrades.
    if (raw) {
      for (let i = 0; i + 1 < raw.length; i += 2) {
        const name = raw[i]!;
        if (name.length === 11 && name.toString().toLowerCase() === 'retry-after') {
          this.#retryAfter = raw[i + 1]!.toString();
          break;
        }
      }
    }
    this.#kept = [];
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.#read += chunk.byteLength;
    const ok = this.#status >= 200 && this.#status <= 299;
    if (!ok && this.#keptBytes < ERROR_BODY_BYTES) {
      const part = Buffer.from(chunk.subarray(0, ERROR_BODY_BYTES - this.#keptBytes));
      this.#kept!.push(part);
      this.#keptBytes += part.byteLength;
    }
    if (this.#read > (ok ? SUCCESS_BODY_READ_LIMIT : ERROR_BODY_READ_LIMIT) && !this.#cut) {
      this.#cut = true;
      this.#abort?.();
    }
    return true;
  }

  onComplete(): void {
    this.#finish();
  }

  onError(error: unknown): void {
    // A body cut short (by us, or by the function) still leaves the status, which is what matters.
    if (this.#status !== 0 && !this.#signal?.aborted) {
      this.#finish();
      return;
    }
    this.settle(this.#client.failure(error, this.#signal));
  }

  #finish(): void {
    const status = this.#status;
    if (status >= 200 && status <= 299) {
      this.settle(success(status));
      return;
    }
    const text = this.#kept ? Buffer.concat(this.#kept).toString('utf8').replace(/\s+/g, ' ').trim() : '';
    const retryAfterMs = parseRetryAfter(this.#retryAfter, Date.now());
    this.settle({ kind: 'status', status, retryAfterMs, body: text || undefined });
  }

  settle(outcome: Outcome): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.#signal) this.#client.unwatch(this.#signal, this);
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
  readonly #pool: Pool;
  readonly #path: string;
  readonly #timeoutMs: number;
  readonly #watched = new WeakMap<AbortSignal, Watchers>();
  #completed: (Exchange | undefined)[] = [];
  #spare: (Exchange | undefined)[] = [];
  #scheduled = false;

  constructor(opts: FunctionClientOptions) {
    const url = new URL(opts.url);
    this.#path = `${url.pathname || '/'}${url.search}`;
    this.now = opts.now ?? (() => performance.now());
    this.#timeoutMs = opts.timeoutMs;
    // undici's own timers enforce the deadline (cheaper than a timer and an AbortController per request): no
    // response headers within timeoutMs, or a body stalled for timeoutMs, is a timeout.
    this.#pool = new Pool(url.origin, {
      connections: opts.connections,
      pipelining: 1,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      connectTimeout: Math.min(opts.timeoutMs, 30_000),
      keepAliveTimeout: 30_000,
    });
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
    const x = new Exchange(this, signal, done as AttemptDone<unknown>, ctx);
    if (signal?.aborted) {
      x.settle(ABORTED);
      return;
    }
    if (signal) this.#watch(signal, x);
    try {
      // undici takes a Uint8Array body as it is (no copy) and writes it after the head.
      this.#pool.dispatch({ path: this.#path, method: 'POST', headers, body: payload }, x);
    } catch (error) {
      x.onError(error);
    }
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
      c.kind === 'timeout' ? `no complete response within ${this.#timeoutMs} ms (${c.message})` : c.message;
    return { kind: 'network', error: c.kind, message };
  }

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
    await this.#pool.close().catch(() => this.#pool.destroy());
  }
}

export function createFunctionClient(opts: FunctionClientOptions): FunctionClient {
  return new Client(opts);
}
