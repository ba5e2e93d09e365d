// The HTTP edge: POSTs a message to the function over a keep-alive connection pool (undici) and turns whatever
// happens into an Outcome. Never throws for a delivery failure: the policy decides what a failure means.

import { Pool } from 'undici';
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

export interface FunctionClient {
  /** `signal` aborts the attempt (shutdown): the outcome is then { kind: 'aborted' }. */
  post(payload: Uint8Array, headers: Record<string, string>, signal?: AbortSignal): Promise<Attempt>;
  close(): Promise<void>;
}

/** How much of an error response body is kept for logs and the dead-letter properties. */
const ERROR_BODY_BYTES = 512;
/** Reading an error body beyond this is pointless; the connection is dropped instead. */
const ERROR_BODY_READ_LIMIT = 64 * 1024;

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

export function createFunctionClient(opts: FunctionClientOptions): FunctionClient {
  const url = new URL(opts.url);
  const path = `${url.pathname || '/'}${url.search}`;
  const now = opts.now ?? (() => performance.now());
  const pool = new Pool(url.origin, {
    connections: opts.connections,
    pipelining: 1,
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
    connectTimeout: Math.min(opts.timeoutMs, 30_000),
    keepAliveTimeout: 30_000,
  });

  async function post(
    payload: Uint8Array,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<Attempt> {
    const started = now();
    // undici's own timers enforce the deadline (cheaper than a timer and an AbortController per request): no
    // response headers within timeoutMs, or a body stalled for timeoutMs, is a timeout.
    try {
      const body = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
      const res = await pool.request({ path, method: 'POST', headers, body, ...(signal ? { signal } : {}) });
      const status = res.statusCode;
      if (status >= 200 && status <= 299) {
        await res.body.dump();
        return { outcome: { kind: 'status', status }, durationMs: now() - started };
      }
      const text = await readSome(res.body);
      const ra = res.headers['retry-after'];
      const retryAfterMs = parseRetryAfter(Array.isArray(ra) ? ra[0] : ra, Date.now());
      return {
        outcome: { kind: 'status', status, retryAfterMs, body: text || undefined },
        durationMs: now() - started,
      };
    } catch (error) {
      const durationMs = now() - started;
      if (signal?.aborted) return { outcome: { kind: 'aborted' }, durationMs };
      const c = classifyError(error);
      const message =
        c.kind === 'timeout' ? `no complete response within ${opts.timeoutMs} ms (${c.message})` : c.message;
      return { outcome: { kind: 'network', error: c.kind, message }, durationMs };
    }
  }

  return {
    post,
    async close() {
      await pool.close().catch(() => pool.destroy());
    },
  };
}

async function readSome(body: AsyncIterable<Uint8Array> & { destroy(): unknown }): Promise<string> {
  const chunks: Buffer[] = [];
  let kept = 0;
  let read = 0;
  try {
    for await (const chunk of body) {
      read += chunk.byteLength;
      if (kept < ERROR_BODY_BYTES) {
        const part = Buffer.from(chunk).subarray(0, ERROR_BODY_BYTES - kept);
        chunks.push(part);
        kept += part.byteLength;
      }
      if (read > ERROR_BODY_READ_LIMIT) {
        body.destroy();
        break;
      }
    }
  } catch {
    // A body cut short still leaves us the status, which is what matters.
  }
  return Buffer.concat(chunks).toString('utf8').replace(/\s+/g, ' ').trim();
}
