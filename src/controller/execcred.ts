// Credentials from a kubeconfig's `exec` plugin (client.authentication.k8s.io v1 and v1beta1), as kubectl and
// client-go run them: EKS (`aws eks get-token`), GKE (`gke-gcloud-auth-plugin`), AKS and OIDC (`kubelogin`).
//
// The plugin runs once while the configuration loads (synchronously: nothing can be sent without it), then again in
// the background when its token is about to expire (a minute before expirationTimestamp) or when the API server
// says 401 (at most every 10 s), so no request waits for a plugin and the event loop never blocks after start-up.
// Until a new token comes, the last one is used. The token is never logged: failures name the plugin, its exit code
// and the first line of what it printed on stderr.
//
// Not supported, with an error that says so: interactiveMode Always (there is no terminal here) and plugins that
// answer with a client certificate instead of a token (the TLS context is built once per connection pool).

import { execFile, execFileSync } from 'node:child_process';
import { isAbsolute, join } from 'node:path';
import { ControllerError } from './errors.ts';

export const EXEC_API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'];

/** The kubeconfig's users[].user.exec, checked. */
export interface ExecConfig {
  command: string;
  args: string[];
  env: { name: string; value: string }[];
  apiVersion: string;
  provideClusterInfo: boolean;
  installHint?: string;
}

/** What the plugin is told of the cluster when provideClusterInfo is set (ExecCredential spec.cluster). */
export interface ClusterInfo {
  server: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
  config?: unknown;
}

export interface ExecCredentialSource {
  /** The current token (the last one the plugin gave); starts a background refresh when it is about to expire. */
  token(): string;
  /** The API server refused the token (401): run the plugin again in the background (at most every 10 s). */
  refresh(): void;
  /** Why the last background run failed, if it did (for the 401 error's message). */
  problem(): string | undefined;
}

function fail(where: string, message: string, context: Record<string, unknown> = {}, cause?: unknown) {
  return new ControllerError('E_KUBECONFIG', `${where}: ${message}`, { where, ...context }, cause);
}

/** Checks users[].user.exec; `where` names it in errors ("kubeconfig /path: user \"x\" exec"). */
export function parseExecConfig(raw: unknown, where: string): ExecConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw fail(where, 'expected a map');
  const e = raw as Record<string, unknown>;
  if (typeof e.command !== 'string' || e.command === '')
    throw fail(where, 'command: expected the plugin to run (a non-empty string)');
  if (typeof e.apiVersion !== 'string' || !EXEC_API_VERSIONS.includes(e.apiVersion))
    throw fail(
      where,
      `apiVersion: expected one of ${EXEC_API_VERSIONS.join(', ')}, got ${JSON.stringify(e.apiVersion)}`,
    );
  const args = e.args ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string'))
    throw fail(where, 'args: expected a list of strings');
  const env = e.env ?? [];
  if (
    !Array.isArray(env) ||
    !env.every(
      (v) => typeof v === 'object' && v !== null && typeof v.name === 'string' && typeof v.value === 'string',
    )
  )
    throw fail(where, 'env: expected a list of {name, value} with string values');
  if (e.interactiveMode === 'Always')
    throw fail(
      where,
      'interactiveMode: Always needs a terminal, which a controller does not have (use Never or IfAvailable)',
    );
  if (
    e.interactiveMode !== undefined &&
    !['Never', 'IfAvailable', 'Always'].includes(e.interactiveMode as string)
  )
    throw fail(
      where,
      `interactiveMode: expected Never, IfAvailable or Always, got ${JSON.stringify(e.interactiveMode)}`,
    );
  if (e.provideClusterInfo !== undefined && typeof e.provideClusterInfo !== 'boolean')
    throw fail(where, 'provideClusterInfo: expected true or false');
  return {
    command: e.command,
    args: args as string[],
    env: env as { name: string; value: string }[],
    apiVersion: e.apiVersion,
    provideClusterInfo: e.provideClusterInfo === true,
    ...(typeof e.installHint === 'string' ? { installHint: e.installHint } : {}),
  };
}

interface Credential {
  token: string;
  /** ms since the epoch; undefined: valid until the API server says otherwise. */
  expiresAt: number | undefined;
}

/** Reads the plugin's answer (an ExecCredential) into a token and its expiry. */
export function parseExecOutput(stdout: string, config: ExecConfig, where: string): Credential {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch (e) {
    throw fail(where, `the plugin's output is not JSON (expected an ExecCredential)`, {}, e);
  }
  const d = doc as { kind?: unknown; apiVersion?: unknown; status?: Record<string, unknown> };
  if (d?.kind !== 'ExecCredential')
    throw fail(where, `the plugin's output: kind: expected ExecCredential, got ${JSON.stringify(d?.kind)}`);
  if (d.apiVersion !== config.apiVersion)
    throw fail(
      where,
      `the plugin's output: apiVersion: expected ${config.apiVersion} (as asked), got ${JSON.stringify(d.apiVersion)}`,
    );
  const status = d.status ?? {};
  const token = status.token;
  if (typeof token !== 'string' || token === '') {
    if (status.clientCertificateData !== undefined)
      throw fail(
        where,
        'the plugin answered with a client certificate, which this controller does not use (only tokens)',
      );
    throw fail(where, "the plugin's output: status.token: expected a non-empty string");
  }
  let expiresAt: number | undefined;
  if (status.expirationTimestamp !== undefined) {
    expiresAt =
      typeof status.expirationTimestamp === 'string' ? Date.parse(status.expirationTimestamp) : Number.NaN;
    if (Number.isNaN(expiresAt))
      throw fail(where, "the plugin's output: status.expirationTimestamp: expected an RFC 3339 time");
  }
  return { token, expiresAt };
}

/** How to run the plugin: command resolved as client-go does, environment with KUBERNETES_EXEC_INFO. */
function invocation(config: ExecConfig, kubeconfigDir: string, cluster: ClusterInfo | undefined) {
  // A relative path with a separator is relative to the kubeconfig's folder; a bare name is looked up in PATH.
  const command =
    !isAbsolute(config.command) && config.command.includes('/')
      ? join(kubeconfigDir, config.command)
      : config.command;
  const info = {
    apiVersion: config.apiVersion,
    kind: 'ExecCredential',
    spec: { interactive: false, ...(config.provideClusterInfo && cluster ? { cluster } : {}) },
  };
  const env: NodeJS.ProcessEnv = { ...process.env, KUBERNETES_EXEC_INFO: JSON.stringify(info) };
  for (const { name, value } of config.env) env[name] = value;
  return { command, env };
}

function runFailure(config: ExecConfig, where: string, e: unknown): ControllerError {
  const err = e as {
    code?: unknown;
    status?: number | null;
    stderr?: Buffer | string;
    signal?: string | null;
  };
  if (err.code === 'ENOENT') {
    const hint = config.installHint ? ` (${config.installHint.trim().split('\n')[0]})` : '';
    return fail(where, `the plugin ${config.command} was not found${hint}`, { command: config.command }, e);
  }
  const stderr =
    String(err.stderr ?? '')
      .trim()
      .split('\n')[0]
      ?.slice(0, 300) ?? '';
  const how = err.signal
    ? `was stopped by ${err.signal}`
    : `exited with ${typeof err.status === 'number' ? err.status : typeof err.code === 'number' ? err.code : 'an error'}`;
  return fail(
    where,
    `the plugin ${config.command} ${how}${stderr ? `: ${stderr}` : ''}`,
    { command: config.command },
    e,
  );
}

const RUN_TIMEOUT_MS = 60_000;
/** A token is replaced this long before it expires. */
const RENEW_BEFORE_MS = 60_000;
const MIN_RERUN_MS = 10_000;

/** Runs the plugin now (start-up), and returns the source that keeps its token fresh. */
export function execCredentialSource(
  config: ExecConfig,
  where: string,
  kubeconfigDir: string,
  cluster: ClusterInfo | undefined,
  now: () => number = Date.now,
): ExecCredentialSource {
  const { command, env } = invocation(config, kubeconfigDir, cluster);
  // The same for the start-up run and the background ones.
  const options = { env, encoding: 'utf8', timeout: RUN_TIMEOUT_MS, maxBuffer: 1 << 20 } as const;
  let stdout: string;
  try {
    stdout = execFileSync(command, config.args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw runFailure(config, where, e);
  }
  let current = parseExecOutput(stdout, config, where);
  let running = false;
  // The start-up run does not count: a token refused right away is asked for again at once.
  let lastRun = Number.NEGATIVE_INFINITY;
  let problem: string | undefined;

  const rerun = () => {
    if (running || now() - lastRun < MIN_RERUN_MS) return;
    running = true;
    lastRun = now();
    execFile(command, config.args, options, (error, out, errOut) => {
      running = false;
      try {
        if (error) throw runFailure(config, where, Object.assign(error, { stderr: errOut }));
        current = parseExecOutput(out, config, where);
        problem = undefined;
      } catch (e) {
        problem = e instanceof Error ? e.message : String(e);
      }
    });
  };

  return {
    token() {
      if (current.expiresAt !== undefined && now() >= current.expiresAt - RENEW_BEFORE_MS) rerun();
      return current.token;
    },
    refresh: rerun,
    problem: () => problem,
  };
}
