// `kubeless-pulsar-trigger run -f trigger.yaml [-f more.yaml]`: the dispatcher for PulsarTrigger manifests,
// without Kubernetes, for local development. Same code path as the Deployment: the manifest is validated with the
// trigger schema and turned into the same DispatcherSettings the environment would give.

import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { createLogger } from '../dispatcher/log.ts';
import type { Issue } from '../trigger/errors.ts';
import { settingsFor } from '../trigger/render.ts';
import { type DispatcherSettings, LOG_LEVELS, SETTINGS_DEFAULTS } from '../trigger/settings.ts';
import { API_VERSION, KIND, validateSpec } from '../trigger/spec.ts';
import { runTriggers } from './dispatcher.ts';

export function usage(): string {
  return `Usage: kubeless-pulsar-trigger run -f trigger.yaml [-f more.yaml ...] [options]

Runs the dispatcher of each PulsarTrigger in the files (several documents per file allowed), without Kubernetes.

Options:
  -f, --file PATH        a manifest (repeatable)
  --token-file PATH      the broker token, read from a file (re-read on each connect and auth challenge)
  --token-env NAME       the broker token, from an environment variable
                         (otherwise spec.pulsar.auth-token inline, or none)
  --port N               port of /healthz, /readyz, /metrics (default ${SETTINGS_DEFAULTS.port}; 0 picks one)
  --log-level LEVEL      ${LOG_LEVELS.join(', ')} (default info)
  --grace SECONDS        shutdown grace period (default ${SETTINGS_DEFAULTS.shutdownGraceMs / 1000})
  -h, --help
`;
}

export interface RunArgs {
  files: string[];
  tokenFile: string | undefined;
  tokenEnv: string | undefined;
  port: number;
  logLevel: string;
  graceMs: number | undefined;
}

export function parseArgs(
  argv: readonly string[],
): { ok: true; value: RunArgs } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  const out: RunArgs = {
    files: [],
    tokenFile: undefined,
    tokenEnv: undefined,
    port: SETTINGS_DEFAULTS.port,
    logLevel: 'info',
    graceMs: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string | undefined => (arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : argv[++i]);
    switch (flag) {
      case '-f':
      case '--file': {
        const v = value();
        if (v) out.files.push(v);
        else problems.push(`${flag} needs a path`);
        break;
      }
      case '--token-file':
        out.tokenFile = value();
        break;
      case '--token-env':
        out.tokenEnv = value();
        break;
      case '--port': {
        const v = Number(value());
        if (Number.isInteger(v) && v >= 0 && v <= 65535) out.port = v;
        else problems.push('--port must be a port number');
        break;
      }
      case '--log-level': {
        const v = value() ?? '';
        if ((LOG_LEVELS as readonly string[]).includes(v)) out.logLevel = v;
        else problems.push(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
        break;
      }
      case '--grace': {
        const v = Number(value());
        if (Number.isFinite(v) && v >= 0) out.graceMs = v * 1000;
        else problems.push('--grace must be a number of seconds');
        break;
      }
      default:
        problems.push(`unknown argument ${JSON.stringify(arg)}`);
    }
  }
  if (out.files.length === 0) problems.push('at least one -f trigger.yaml is required');
  if (out.tokenFile && out.tokenEnv) problems.push('use --token-file or --token-env, not both');
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value: out };
}

/** Settings for every PulsarTrigger in the given YAML texts; every problem in every document is reported. */
export function settingsFromManifests(
  sources: readonly { name: string; text: string }[],
  args: Pick<RunArgs, 'tokenFile' | 'tokenEnv' | 'graceMs'>,
  env: Record<string, string | undefined>,
): { ok: true; value: DispatcherSettings[] } | { ok: false; issues: Issue[] } {
  const issues: Issue[] = [];
  const out: DispatcherSettings[] = [];
  const timezone = env.TZ || env.TIMEZONE || SETTINGS_DEFAULTS.timezone;
  for (const { name, text } of sources) {
    const docs = parseAllDocuments(text);
    let index = 0;
    for (const doc of Array.isArray(docs) ? docs : [docs]) {
      const where = `${name}#${index++}`;
      if (doc.errors.length > 0) {
        for (const e of doc.errors) issues.push({ path: where, message: `YAML: ${e.message}` });
        continue;
      }
      const obj = doc.toJS() as Record<string, unknown> | null;
      if (obj === null || obj === undefined) continue;
      if (typeof obj !== 'object' || obj.kind !== KIND || obj.apiVersion !== API_VERSION) {
        issues.push({ path: where, message: `not a ${API_VERSION} ${KIND}` });
        continue;
      }
      const meta = (obj.metadata ?? {}) as { name?: unknown; namespace?: unknown };
      if (typeof meta.name !== 'string' || meta.name === '') {
        issues.push({ path: `${where} metadata.name`, message: 'is required' });
        continue;
      }
      const triggerName = meta.name;
      const triggerNamespace =
        typeof meta.namespace === 'string' && meta.namespace ? meta.namespace : 'default';
      const spec = validateSpec(obj.spec);
      if (!spec.ok) {
        for (const i of spec.error.issues) issues.push({ path: `${where} ${i.path}`, message: i.message });
        continue;
      }
      const s = settingsFor({ name: triggerName, namespace: triggerNamespace }, spec.value, timezone);
      if (!s.ok) {
        for (const i of s.error.issues) issues.push({ path: `${where} ${i.path}`, message: i.message });
        continue;
      }
      const settings = { ...s.value };
      const inline = spec.value.pulsar['auth-token'];
      if (args.tokenFile) settings.authTokenFile = args.tokenFile;
      else if (args.tokenEnv) {
        const token = env[args.tokenEnv];
        if (!token) issues.push({ path: '--token-env', message: `${args.tokenEnv} is not set` });
        settings.authToken = token;
      } else if (inline) settings.authToken = inline;
      else if (spec.value.pulsar.authTokenSecretRef) {
        issues.push({
          path: `${where} spec.pulsar.authTokenSecretRef`,
          message: 'a Secret cannot be read without Kubernetes: pass --token-file or --token-env',
        });
      }
      if (args.graceMs !== undefined) settings.shutdownGraceMs = args.graceMs;
      out.push(settings);
    }
  }
  if (issues.length === 0 && out.length === 0) issues.push({ path: '-f', message: `no ${KIND} found` });
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: out };
}

export async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(usage());
    return 0;
  }
  const parsed = parseArgs(argv);
  if (!parsed.ok) {
    process.stderr.write(`kubeless-pulsar-trigger run: ${parsed.problems.join('; ')}\n\n${usage()}`);
    return 2;
  }
  const args = parsed.value;
  const sources: { name: string; text: string }[] = [];
  const issues: Issue[] = [];
  for (const file of args.files) {
    try {
      sources.push({ name: file, text: readFileSync(file, 'utf8') });
    } catch (error) {
      issues.push({ path: file, message: `cannot read: ${(error as Error).message}` });
    }
  }
  const settings = settingsFromManifests(sources, args, process.env);
  if (!settings.ok) issues.push(...settings.issues);
  if (issues.length > 0 || !settings.ok) {
    const lines = issues.map((i) => `  - ${i.path}: ${i.message}`).join('\n');
    process.stderr.write(
      `kubeless-pulsar-trigger run: invalid configuration (${issues.length}):\n${lines}\n`,
    );
    return 2;
  }
  const log = createLogger(args.logLevel);
  return runTriggers(settings.value, { port: args.port, log });
}
