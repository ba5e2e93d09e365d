// Controller configuration: flags, each with an environment variable (KPT_ + the flag in upper snake case) as a
// fallback, validated at start so a typo stops the controller with a message naming the option. The seed's
// options keep their names and defaults: --dispatcher-image, --timezone (UTC), --kubeconfig (in-cluster).

import { hostname } from 'node:os';
import { z } from 'zod';
import { DEFAULT_RESOURCES, type ResourceRequirements } from '../trigger/render.ts';
import { ControllerError } from './errors.ts';
import { type CrossNamespaceGrant, parseGrants } from './placement.ts';

export interface ControllerConfig {
  /** Path of a kubeconfig; undefined: the in-cluster service account. */
  kubeconfig: string | undefined;
  dispatcherImage: string;
  timezone: string;
  /** Namespaces to watch; empty: all. Deployments may only be placed in watched namespaces. */
  namespaces: string[];
  /**
   * Where triggers may place their Deployment besides their own namespace, granted by the administrator (besides
   * the target's own kubeless.io/accept-triggers-from annotation; placement.ts).
   */
  allowCrossNamespace: CrossNamespaceGrant[];
  resources: ResourceRequirements;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  /** Port of /healthz, /readyz and /metrics; 0 picks a free one. */
  httpPort: number;
  httpHost: string;
  workers: number;
  resyncMs: number;
  /** Own each trigger's subscription through the Pulsar admin API (create it, delete it when asked). */
  pulsarAdmin: boolean;
  /** How often each trigger's backlog is read from the Pulsar admin API into its status; 0: never. */
  backlogIntervalMs: number;
  leaderElect: boolean;
  leaseName: string;
  leaseNamespace: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export const DEFAULT_DISPATCHER_IMAGE = 'kubeless-pulsar-trigger:0.1.0';

interface Option {
  flag: string;
  help: string;
  default?: string;
  boolean?: boolean;
}

export const OPTIONS: Option[] = [
  { flag: 'kubeconfig', help: 'Kubeconfig file. Default: the in-cluster configuration.' },
  { flag: 'dispatcher-image', help: 'Image of the dispatcher pods.', default: DEFAULT_DISPATCHER_IMAGE },
  { flag: 'timezone', help: 'Time zone passed to dispatchers as TZ.', default: 'UTC' },
  { flag: 'namespaces', help: 'Comma-separated namespaces to watch. Default: all.', default: '' },
  {
    flag: 'allow-cross-namespace',
    help:
      'Comma-separated SOURCE=TARGET pairs (a namespace or *): triggers in SOURCE may put their Deployment in ' +
      'TARGET. Besides these, a namespace accepts what its kubeless.io/accept-triggers-from annotation lists.',
    default: '',
  },
  { flag: 'dispatcher-cpu-request', help: 'Default CPU request of a dispatcher.', default: '500m' },
  { flag: 'dispatcher-cpu-limit', help: 'Default CPU limit of a dispatcher.', default: '1' },
  { flag: 'dispatcher-memory-request', help: 'Default memory request of a dispatcher.', default: '512Mi' },
  { flag: 'dispatcher-memory-limit', help: 'Default memory limit of a dispatcher.', default: '1Gi' },
  { flag: 'log-level', help: 'trace, debug, info, warn, error, fatal or silent.', default: 'info' },
  { flag: 'http-port', help: 'Port of /healthz, /readyz and /metrics (0: any free port).', default: '8080' },
  { flag: 'http-host', help: 'Address to listen on.', default: '0.0.0.0' },
  { flag: 'workers', help: 'Triggers reconciled in parallel.', default: '16' },
  { flag: 'resync-period', help: 'Seconds between full resyncs from the cache.', default: '600' },
  {
    flag: 'pulsar-admin',
    help:
      "Own each trigger's subscription through the Pulsar admin API at spec.pulsar.adminUrl: create it with the " +
      'trigger, delete it with spec.delivery.deleteSubscription (true/false). false: the first dispatcher creates it.',
    default: 'true',
    boolean: true,
  },
  {
    flag: 'backlog-interval',
    help: "Seconds between reads of each trigger's backlog into its status (one admin call per trigger); 0: never.",
    default: '30',
  },
  {
    flag: 'leader-elect',
    help: 'Elect a leader through a Lease (true/false).',
    default: 'true',
    boolean: true,
  },
  { flag: 'leader-election-id', help: 'Name of the Lease.', default: 'kubeless-pulsar-trigger' },
  { flag: 'leader-election-namespace', help: 'Namespace of the Lease. Default: $POD_NAMESPACE or default.' },
  { flag: 'identity', help: 'Holder identity in the Lease. Default: $POD_NAME or hostname, with the pid.' },
  {
    flag: 'lease-duration',
    help: 'Seconds a standby waits before taking over an unrenewed Lease.',
    default: '15',
  },
  {
    flag: 'renew-deadline',
    help: 'Seconds the leader keeps trying to renew before it gives up.',
    default: '10',
  },
  { flag: 'retry-period', help: 'Seconds between Lease attempts.', default: '2' },
];

export function envName(flag: string): string {
  return `KPT_${flag.toUpperCase().replaceAll('-', '_')}`;
}

export function usage(): string {
  const lines = OPTIONS.map(
    (o) => `  --${o.flag.padEnd(28)} ${o.help}${o.default ? ` [${o.default}]` : ''} (env ${envName(o.flag)})`,
  );
  return `Usage: kubeless-pulsar-trigger controller [options]\n${lines.join('\n')}\n`;
}

const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;
const quantity = z.string().regex(QUANTITY, 'must be a Kubernetes quantity such as 500m, 1 or 512Mi');
const seconds = (min: number) =>
  z
    .string()
    .regex(/^[0-9]+(\.[0-9]+)?$/, 'must be a number of seconds')
    .transform((v) => Number(v) * 1000)
    .pipe(z.number().min(min * 1000, `must be at least ${min}`));
const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^[0-9]+$/, 'must be an integer')
    .transform(Number)
    .pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const Raw = z
  .object({
    kubeconfig: z.string().min(1).optional(),
    'dispatcher-image': z.string().min(1, 'must not be empty').regex(/^\S+$/, 'must be an image reference'),
    timezone: z.string().refine(
      (tz) => {
        try {
          new Intl.DateTimeFormat('en', { timeZone: tz });
          return true;
        } catch {
          return false;
        }
      },
      { message: 'must be an IANA time zone such as UTC or Europe/Lisbon' },
    ),
    namespaces: z
      .string()
      .transform((v) =>
        v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      )
      .pipe(z.array(z.string().regex(NAMESPACE, 'must be namespace names separated by commas'))),
    'allow-cross-namespace': z.string().transform((v, ctx) => {
      const parsed = parseGrants(v);
      if (parsed.ok) return parsed.value;
      ctx.addIssue({
        code: 'custom',
        message: `must be SOURCE=TARGET pairs separated by commas, each side a namespace name or * (not: ${parsed.bad.join(', ')})`,
      });
      return z.NEVER;
    }),
    'dispatcher-cpu-request': quantity,
    'dispatcher-cpu-limit': quantity,
    'dispatcher-memory-request': quantity,
    'dispatcher-memory-limit': quantity,
    'log-level': z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
    'http-port': integer(0, 65535),
    'http-host': z.string().min(1),
    workers: integer(1, 256),
    'resync-period': seconds(1),
    'pulsar-admin': z
      .enum(['true', 'false'], { error: () => 'must be true or false' })
      .transform((v) => v === 'true'),
    'backlog-interval': seconds(0),
    'leader-elect': z
      .enum(['true', 'false'], { error: () => 'must be true or false' })
      .transform((v) => v === 'true'),
    'leader-election-id': z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a valid object name'),
    'leader-election-namespace': z.string().regex(NAMESPACE, 'must be a namespace name').optional(),
    identity: z.string().min(1).max(128).optional(),
    'lease-duration': seconds(1),
    'renew-deadline': seconds(1),
    'retry-period': seconds(0.1),
  })
  .refine((c) => c['renew-deadline'] < c['lease-duration'], {
    message: 'must be less than --lease-duration',
    path: ['renew-deadline'],
  })
  .refine((c) => c['retry-period'] < c['renew-deadline'], {
    message: 'must be less than --renew-deadline',
    path: ['retry-period'],
  });

/** Parses argv (without the subcommand) and the environment. Returns an error listing every bad option. */
export function parseConfig(
  argv: readonly string[],
  env: Record<string, string | undefined>,
): { ok: true; value: ControllerConfig } | { ok: false; error: ControllerError } {
  const values: Record<string, string> = {};
  const problems: string[] = [];
  for (const o of OPTIONS) {
    const fromEnv = env[envName(o.flag)];
    if (fromEnv !== undefined && fromEnv !== '') values[o.flag] = fromEnv;
    else if (o.default !== undefined) values[o.flag] = o.default;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      problems.push(`unexpected argument "${arg}"`);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = arg.slice(2, eq === -1 ? undefined : eq);
    const option = OPTIONS.find((o) => o.flag === flag);
    if (!option) {
      problems.push(`unknown option --${flag}`);
      continue;
    }
    if (eq !== -1) values[flag] = arg.slice(eq + 1);
    else if (option.boolean && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--')))
      values[flag] = 'true';
    else if (argv[i + 1] === undefined) problems.push(`--${flag} needs a value`);
    else values[flag] = argv[++i]!;
  }
  const parsed = Raw.safeParse(values);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const flag = String(issue.path[0]);
      problems.push(
        `--${flag} (${envName(flag)}): ${issue.message}${values[flag] ? ` (got "${values[flag]}")` : ''}`,
      );
    }
  }
  if (problems.length > 0 || !parsed.success) {
    return {
      ok: false,
      error: new ControllerError('E_CONFIG_INVALID', `invalid configuration:\n  ${problems.join('\n  ')}`, {
        problems,
      }),
    };
  }
  const c = parsed.data;
  return {
    ok: true,
    value: {
      kubeconfig: c.kubeconfig,
      dispatcherImage: c['dispatcher-image'],
      timezone: c.timezone,
      namespaces: c.namespaces,
      allowCrossNamespace: c['allow-cross-namespace'],
      resources: {
        limits: { cpu: c['dispatcher-cpu-limit'], memory: c['dispatcher-memory-limit'] },
        requests: { cpu: c['dispatcher-cpu-request'], memory: c['dispatcher-memory-request'] },
      },
      logLevel: c['log-level'],
      httpPort: c['http-port'],
      httpHost: c['http-host'],
      workers: c.workers,
      resyncMs: c['resync-period'],
      pulsarAdmin: c['pulsar-admin'],
      backlogIntervalMs: c['pulsar-admin'] ? c['backlog-interval'] : 0,
      leaderElect: c['leader-elect'],
      leaseName: c['leader-election-id'],
      leaseNamespace: c['leader-election-namespace'] ?? env.POD_NAMESPACE ?? 'default',
      identity: c.identity ?? `${env.POD_NAME ?? hostname()}_${process.pid}`,
      leaseDurationMs: c['lease-duration'],
      renewDeadlineMs: c['renew-deadline'],
      retryPeriodMs: c['retry-period'],
    },
  };
}

export { DEFAULT_RESOURCES };
