// A small Kubernetes REST client: kubeconfig / in-cluster loading, JSON requests over keep-alive connections and a
// watch stream of JSON lines (or of protobuf frames, for the Deployment watch: kubeproto.ts).
//
// Why not @kubernetes/client-node (measured, 2 cores, Node 24): importing it alone takes RSS from 42 to 127 MiB,
// and with 1000 triggers the controller built on it peaked at 593 MiB RSS (goal: under 150) and created
// Deployments at 0.24 of the API server's direct rate (goal: 0.8). Its generated model deserializes every object
// into class instances (managedFields included) and each request goes through its middleware chain. The
// controller needs a dozen verbs on five kinds, which fit in this file; everything else stays plain JSON.

import { once } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import type { Agent as HttpAgent, IncomingMessage } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ControllerError } from './errors.ts';
import { type ExecCredentialSource, execCredentialSource, parseExecConfig } from './execcred.ts';
import { decodeEnvelope, decodeStatus, decodeWatchEvent, forEachFrame, PROTOBUF } from './kubeproto.ts';

// Node's http, https and tls through require(), not ES imports: an ES import of a builtin reads every export, and
// node:http's WebSocket, CloseEvent and MessageEvent getters then load Node's internal copy of undici (~13 MiB of
// RSS for nothing; see docs/dispatcher.md, Memory).
const nodeRequire = createRequire(import.meta.url);
const http = nodeRequire('node:http') as typeof import('node:http');
const https = nodeRequire('node:https') as typeof import('node:https');
const { createSecureContext } = nodeRequire('node:tls') as typeof import('node:tls');
const httpRequest = http.request;
const httpsRequest = https.request;

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Where the API server is and who we are to it. */
export interface KubeConnection {
  /** https://host:port (no path). */
  server: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  insecureSkipTlsVerify?: boolean;
  tlsServerName?: string;
  /** The bearer token to send now (re-read from a file when it changes), or undefined. */
  token: () => string | undefined;
  basicAuth?: string;
  /** The context's namespace (or the service account's), "default" when none. */
  namespace: string;
  /** The API server refused our credentials (401): get new ones if we can (an exec plugin runs again). */
  refresh?: () => void;
  /** Why the credentials could not be renewed, if they could not (added to a 401's message). */
  credentialProblem?: () => string | undefined;
}

function kubeconfigError(
  message: string,
  context: Record<string, unknown>,
  cause?: unknown,
): ControllerError {
  return new ControllerError('E_KUBECONFIG', message, context, cause);
}

/**
 * A token read from a file and read again when the file changes (bound service account tokens are rotated by the
 * kubelet, which swaps a symlink: the stat follows it). Checked at most once a second.
 */
export function fileToken(path: string): () => string {
  let token = '';
  let stamp = '';
  let checkedAt = 0;
  const read = () => {
    const st = statSync(path);
    const next = `${st.mtimeMs}:${st.size}:${st.ino}`;
    if (next !== stamp) {
      token = readFileSync(path, 'utf8').trim();
      stamp = next;
    }
  };
  read();
  return () => {
    const now = Date.now();
    if (now - checkedAt >= 1000) {
      checkedAt = now;
      try {
        read();
      } catch {
        // Mid-rotation or gone: keep the last token; the API server says 401 if it is really stale.
      }
    }
    return token;
  };
}

function bytes(data: unknown, file: unknown, base: string, what: string, path: string): Buffer | undefined {
  if (typeof data === 'string' && data !== '') return Buffer.from(data, 'base64');
  if (typeof file === 'string' && file !== '') {
    const p = isAbsolute(file) ? file : join(base, file);
    try {
      return readFileSync(p);
    } catch (e) {
      throw kubeconfigError(`cannot read ${what} ${p} named in kubeconfig ${path}`, { path, file: p }, e);
    }
  }
  return undefined;
}

interface NamedEntry<T> {
  name?: string;
  cluster?: T;
  user?: T;
  context?: T;
}

/** Loads a kubeconfig file: its current-context's cluster, user and namespace. */
export function loadKubeconfigFile(path: string): KubeConnection {
  let doc: Record<string, unknown>;
  try {
    doc = (parseYaml(readFileSync(path, 'utf8')) ?? {}) as Record<string, unknown>;
  } catch (e) {
    throw kubeconfigError(`cannot load kubeconfig ${path}`, { path }, e);
  }
  const base = dirname(path);
  const pick = <T>(list: unknown, name: unknown, field: 'cluster' | 'user' | 'context'): T | undefined =>
    Array.isArray(list)
      ? ((list as NamedEntry<T>[]).find((e) => e.name === name)?.[field] as T | undefined)
      : undefined;
  const contextName = doc['current-context'];
  const context = pick<{ cluster?: string; user?: string; namespace?: string }>(
    doc.contexts,
    contextName,
    'context',
  );
  if (!context) {
    throw kubeconfigError(`no current context in kubeconfig ${path}`, { path, context: contextName });
  }
  const cluster = pick<Record<string, unknown>>(doc.clusters, context.cluster, 'cluster');
  if (!cluster || typeof cluster.server !== 'string') {
    throw kubeconfigError(`no cluster in ${path}`, { path, cluster: context.cluster });
  }
  const user = pick<Record<string, unknown>>(doc.users, context.user, 'user') ?? {};
  if (user['auth-provider'] !== undefined) {
    throw kubeconfigError(
      `kubeconfig ${path}: user "${context.user}" uses auth-provider, which Kubernetes removed from its clients (1.26); use its exec credential plugin, a token, a token file or a client certificate`,
      { path, user: context.user, unsupported: 'auth-provider' },
    );
  }
  const tokenFile = typeof user.tokenFile === 'string' ? user.tokenFile : undefined;
  const staticToken = typeof user.token === 'string' ? user.token : undefined;
  let token: () => string | undefined = tokenFile
    ? fileToken(isAbsolute(tokenFile) ? tokenFile : join(base, tokenFile))
    : () => staticToken;
  const ca = bytes(cluster['certificate-authority-data'], cluster['certificate-authority'], base, 'CA', path);
  let exec: ExecCredentialSource | undefined;
  if (user.exec !== undefined) {
    const where = `kubeconfig ${path}: user "${context.user}" exec`;
    if (tokenFile || staticToken)
      throw kubeconfigError(`${where}: the user also has a token or tokenFile; keep one of them`, {
        path,
        user: context.user,
      });
    exec = execCredentialSource(parseExecConfig(user.exec, where), where, base, {
      server: cluster.server,
      ...(ca ? { 'certificate-authority-data': ca.toString('base64') } : {}),
      ...(cluster['insecure-skip-tls-verify'] === true ? { 'insecure-skip-tls-verify': true } : {}),
      ...(typeof cluster['tls-server-name'] === 'string'
        ? { 'tls-server-name': cluster['tls-server-name'] }
        : {}),
    });
    token = exec.token;
  }
  const conn: KubeConnection = {
    server: cluster.server.replace(/\/+$/, ''),
    token,
    namespace: context.namespace || 'default',
  };
  if (exec) {
    conn.refresh = exec.refresh;
    conn.credentialProblem = exec.problem;
  }
  if (ca) conn.ca = ca;
  const cert = bytes(
    user['client-certificate-data'],
    user['client-certificate'],
    base,
    'client certificate',
    path,
  );
  if (cert) conn.cert = cert;
  const key = bytes(user['client-key-data'], user['client-key'], base, 'client key', path);
  if (key) conn.key = key;
  if (cluster['insecure-skip-tls-verify'] === true) conn.insecureSkipTlsVerify = true;
  if (typeof cluster['tls-server-name'] === 'string') conn.tlsServerName = cluster['tls-server-name'];
  if (typeof user.username === 'string' && typeof user.password === 'string')
    conn.basicAuth = Buffer.from(`${user.username}:${user.password}`).toString('base64');
  return conn;
}

/** The pod's service account: KUBERNETES_SERVICE_HOST/PORT, its CA, its (rotating) token and namespace. */
export function loadInCluster(
  env: Record<string, string | undefined> = process.env,
  dir = SERVICE_ACCOUNT_DIR,
): KubeConnection {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw kubeconfigError(
      'not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (pass --kubeconfig)',
      { host, port },
    );
  }
  let token: () => string;
  let ca: Buffer;
  try {
    token = fileToken(join(dir, 'token'));
    ca = readFileSync(join(dir, 'ca.crt'));
  } catch (e) {
    throw kubeconfigError(`cannot read the service account in ${dir}`, { dir }, e);
  }
  let namespace = 'default';
  try {
    namespace = readFileSync(join(dir, 'namespace'), 'utf8').trim() || 'default';
  } catch {
    // Optional: only used as a default.
  }
  return { server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, ca, token, namespace };
}

/** A kubeconfig file when a path is given, else the in-cluster service account. */
export function loadKubeConnection(path: string | undefined): KubeConnection {
  return path ? loadKubeconfigFile(path) : loadInCluster();
}

// --- requests ----------------------------------------------------------------------------------------------------

/** A Kubernetes Status object, as error bodies and watch ERROR events carry it. */
export interface KubeStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
}

/** A failed API call: its HTTP status (in context.status, for httpStatus()) and the Status body. */
export class KubeApiError extends ControllerError {
  readonly statusCode: number;
  readonly body: KubeStatus | string;

  constructor(method: string, path: string, statusCode: number, body: KubeStatus | string) {
    const reason = typeof body === 'object' ? (body.message ?? body.reason) : body.slice(0, 200);
    super('E_KUBE_API', `${method} ${path}: ${statusCode} ${reason ?? ''}`.trim(), {
      method,
      path,
      status: statusCode,
      reason: typeof body === 'object' ? body.reason : undefined,
    });
    this.name = 'KubeApiError';
    this.statusCode = statusCode;
    this.body = body;
  }
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** Default application/json; merge-patch+json or apply-patch+yaml for PATCH. */
  contentType?: string;
  /**
   * The reply's body is not needed (a write whose result comes back through a watch): it is drained unparsed. A
   * created Deployment's reply is a few kB of JSON, and parsing it was most of the controller's garbage.
   */
  discard?: boolean;
}

export function withQuery(path: string, query: Query | undefined): string {
  if (!query) return path;
  const q = Object.entries(query)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
  return q ? `${path}${path.includes('?') ? '&' : '?'}${q}` : path;
}

export interface KubeApiOptions {
  /** Keep-alive connections for ordinary requests (watches have their own). Default 32. */
  connections?: number;
  /** Inactivity limit of an ordinary request. Default 60 s. */
  timeoutMs?: number;
}

type Transport = typeof httpsRequest;

/**
 * JSON over two keep-alive agents of Node's own HTTP client to one API server: one for requests (bounded; HTTP/1.1
 * without pipelining, one request per connection at a time, so a slow reply holds up nothing behind it) and one for
 * watches, which each hold a connection open. Node's client rather than undici (measured: importing undici adds
 * 17-29 MiB of RSS to the controller, whose budget with 1000 triggers is 150 MiB; node:http is loaded anyway for
 * the metrics server).
 */
export class KubeApi {
  readonly conn: KubeConnection;
  private readonly url: URL;
  private readonly transport: Transport;
  private readonly agent: HttpAgent;
  private readonly watchAgent: HttpAgent;
  private readonly timeoutMs: number;

  constructor(conn: KubeConnection, options: KubeApiOptions = {}) {
    this.conn = conn;
    this.url = new URL(conn.server);
    this.timeoutMs = options.timeoutMs ?? 60_000;
    const secure = this.url.protocol === 'https:';
    this.transport = secure ? httpsRequest : (httpRequest as Transport);
    const maxSockets = options.connections ?? 32;
    if (secure) {
      // One TLS context for every connection: given the CA and certificate instead, Node builds a context per
      // connection (measured: 16 connections took RSS up by 12.8 MiB with a context each, 5.8 MiB with one).
      const secureContext = createSecureContext({
        ...(conn.ca ? { ca: conn.ca } : {}),
        ...(conn.cert ? { cert: conn.cert } : {}),
        ...(conn.key ? { key: conn.key } : {}),
      });
      const tls = {
        secureContext,
        rejectUnauthorized: !conn.insecureSkipTlsVerify,
        ...(conn.tlsServerName ? { servername: conn.tlsServerName } : {}),
      };
      this.agent = new https.Agent({ keepAlive: true, maxSockets, ...tls });
      this.watchAgent = new https.Agent({ keepAlive: true, ...tls });
    } else {
      this.agent = new http.Agent({ keepAlive: true, maxSockets });
      this.watchAgent = new http.Agent({ keepAlive: true });
    }
  }

  private headers(
    body: string | undefined,
    contentType: string | undefined,
    accept: string,
  ): Record<string, string> {
    const h: Record<string, string> = { accept };
    const token = this.conn.token();
    if (token) h.authorization = `Bearer ${token}`;
    else if (this.conn.basicAuth) h.authorization = `Basic ${this.conn.basicAuth}`;
    if (body !== undefined) {
      h['content-type'] = contentType ?? 'application/json';
      h['content-length'] = String(Buffer.byteLength(body));
    }
    return h;
  }

  private send(
    method: string,
    path: string,
    body: string | undefined,
    contentType: string | undefined,
    agent: HttpAgent,
    signal?: AbortSignal,
    accept = 'application/json',
  ): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = this.transport(
        {
          protocol: this.url.protocol,
          hostname: this.url.hostname.replace(/^\[|\]$/g, ''),
          port: this.url.port,
          method,
          path,
          headers: this.headers(body, contentType, accept),
          agent: agent as HttpsAgent,
          ...(signal ? { signal } : {}),
        },
        resolve,
      );
      req.on('error', reject);
      if (!signal)
        req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`no reply in ${this.timeoutMs} ms`)));
      req.end(body);
    });
  }

  private transportError(method: string, path: string, e: unknown): ControllerError {
    return new ControllerError(
      'E_KUBE_API',
      `${method} ${path}: ${e instanceof Error ? e.message : String(e)}`,
      { method, path, server: this.conn.server, errno: (e as { code?: unknown }).code },
      e,
    );
  }

  /** A reply ≥ 400 as an error; a 401 also asks for new credentials, and says why renewing them failed if it did. */
  private apiError(method: string, path: string, status: number, body: KubeStatus | string): KubeApiError {
    const error = new KubeApiError(method, path, status, body);
    if (status === 401) {
      this.conn.refresh?.();
      const problem = this.conn.credentialProblem?.();
      if (problem) error.message += ` (renewing the credentials failed: ${problem})`;
    }
    return error;
  }

  /** One request; resolves with the parsed JSON body, rejects with KubeApiError (status ≥ 400) or a transport error. */
  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const full = withQuery(path, options.query);
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    let text: string;
    let status: number;
    try {
      const res = await this.send(method, full, body, options.contentType, this.agent);
      status = res.statusCode ?? 0;
      if (options.discard && status < 400) {
        res.resume();
        await once(res, 'end');
        return undefined as T;
      }
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      text = Buffer.concat(chunks).toString('utf8');
    } catch (e) {
      throw this.transportError(method, path, e);
    }
    if (status >= 400) throw this.apiError(method, path, status, parseStatus(text));
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  /**
   * A watch: calls onEvent for each event until the server ends the stream (resolves) or the connection fails or the
   * signal aborts (rejects). Events are JSON lines, or, when `protobuf` is given (built-in kinds only: custom
   * resources have no protobuf) and the server answers in protobuf, length-prefixed protobuf frames whose objects
   * that function decodes (kubeproto.ts says why). A server that answers in JSON anyway is read as JSON.
   */
  async watch(
    path: string,
    query: Query,
    onEvent: (event: { type: string; object: unknown }) => void,
    signal: AbortSignal,
    protobuf?: (buf: Buffer, start: number, end: number) => unknown,
  ): Promise<void> {
    const full = withQuery(path, { ...query, watch: true });
    // JSON stays acceptable: the server falls back to it for a kind it cannot write in protobuf.
    const accept = protobuf ? `${PROTOBUF};stream=watch, application/json` : 'application/json';
    let res: IncomingMessage;
    try {
      res = await this.send('GET', full, undefined, undefined, this.watchAgent, signal, accept);
    } catch (e) {
      throw this.transportError('GET', path, e);
    }
    const isProtobuf = protobuf !== undefined && isProtobufReply(res);
    if ((res.statusCode ?? 0) >= 400) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks);
      throw this.apiError('GET', path, res.statusCode ?? 0, errorBody(body, isProtobuf));
    }
    try {
      if (protobuf && isProtobuf) {
        await forEachFrame(res as AsyncIterable<Buffer>, (frame) => {
          if (frame.length > 0) onEvent(decodeWatchEvent(frame, protobuf));
        });
      } else {
        await forEachLine(res as AsyncIterable<Buffer>, (line) => {
          if (line.trim() !== '') onEvent(JSON.parse(line) as { type: string; object: unknown });
        });
      }
    } finally {
      res.destroy();
    }
    // A reply cut short (the API server went away mid-stream) ends like a clean one: resume from where we are.
  }

  async close(): Promise<void> {
    this.agent.destroy();
    this.watchAgent.destroy();
  }
}

/**
 * Calls onLine with each newline-terminated line of a byte stream (UTF-8), as a string without its newline; an
 * unterminated last line is dropped (a watch reply cut short mid-event). The newline is looked for in the bytes of
 * each chunk, and each line decoded once: appending chunks to a string and searching that made V8 flatten (copy)
 * the growing text again for every chunk, and was the controller's top self-time reading the watch events of 1000
 * new Deployments (a few kB each, several per chunk). 0x0A never occurs inside a multi-byte UTF-8 sequence, so
 * splitting on it before decoding is safe.
 */
export async function forEachLine(
  source: AsyncIterable<Buffer>,
  onLine: (line: string) => void,
): Promise<void> {
  let pending: Buffer[] = []; // the start of a line that began in an earlier chunk
  for await (const chunk of source) {
    let start = 0;
    let nl = chunk.indexOf(10);
    while (nl !== -1) {
      let line: string;
      if (pending.length > 0) {
        pending.push(chunk.subarray(start, nl));
        line = Buffer.concat(pending).toString('utf8');
        pending = [];
      } else line = chunk.toString('utf8', start, nl);
      onLine(line);
      start = nl + 1;
      nl = chunk.indexOf(10, start);
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  }
}

function isProtobufReply(res: IncomingMessage): boolean {
  return String(res.headers['content-type'] ?? '').startsWith(PROTOBUF);
}

/** An error reply's Status: protobuf (`k8s\0` + envelope) when we asked for it, else JSON. */
function errorBody(body: Buffer, protobuf: boolean): KubeStatus | string {
  if (protobuf) {
    try {
      return decodeStatusObject(body);
    } catch {
      return body.toString('latin1').slice(0, 200);
    }
  }
  return parseStatus(body.toString('utf8'));
}

function decodeStatusObject(body: Buffer): KubeStatus {
  const env = decodeEnvelope(body);
  return decodeStatus(body, env.start, env.end);
}

function parseStatus(text: string): KubeStatus | string {
  try {
    const o = JSON.parse(text) as unknown;
    return typeof o === 'object' && o !== null ? (o as KubeStatus) : text;
  } catch {
    return text;
  }
}
