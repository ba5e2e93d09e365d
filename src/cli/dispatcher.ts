// `kubeless-pulsar-trigger dispatcher`: one trigger's dispatcher, configured by the environment the controller
// writes (the seed's variable names). A bad environment is one message naming every bad variable, exit code 2.

import { type Connect, type RunningTrigger, startTrigger } from '../dispatcher/app.ts';
import { createLogger, type Logger } from '../dispatcher/log.ts';
import { DispatcherMetrics } from '../dispatcher/metrics.ts';
import { connectPulsar } from '../dispatcher/pulsar-source.ts';
import type { SourceMessage } from '../dispatcher/request.ts';
import { type OpsServer, startOpsServer } from '../dispatcher/server.ts';
import type { TriggerError } from '../trigger/errors.ts';
import { type DispatcherSettings, decodeSettingsEnv } from '../trigger/settings.ts';

export function formatSettingsError(error: TriggerError, what: string): string {
  const lines = error.issues.map((i) => `  - ${i.path}: ${i.message}`);
  return `kubeless-pulsar-trigger ${what}: invalid configuration (${error.issues.length} problem${error.issues.length === 1 ? '' : 's'}):\n${lines.join('\n')}\n`;
}

/**
 * Runs triggers until SIGTERM/SIGINT, then stops them within their grace period. Shared by `dispatcher` and `run`.
 * Exit code: 0 after a signal, 1 if a consumer closed under us (the pod restarts and resubscribes).
 */
export async function runTriggers(
  list: readonly DispatcherSettings[],
  opts: { port: number; log: Logger; connect?: Connect<SourceMessage> },
): Promise<number> {
  const { log } = opts;
  const metrics = new DispatcherMetrics();
  const running: RunningTrigger[] = [];
  let ops: OpsServer;
  try {
    ops = await startOpsServer({ port: opts.port, registry: metrics.registry, probes: () => running });
  } catch (error) {
    log.fatal(
      { port: opts.port, error: (error as Error).message },
      'cannot listen for /healthz, /readyz, /metrics',
    );
    return 1;
  }
  log.info({ port: ops.port }, 'serving /healthz, /readyz, /metrics');
  for (const settings of list) {
    running.push(
      startTrigger(settings, {
        connect:
          opts.connect ??
          ((o): ReturnType<Connect<SourceMessage>> =>
            connectPulsar({ ...o, consumerName: consumerName(settings) })),
        metrics,
        log,
      }),
    );
  }
  const signalled = new Promise<string>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => resolve(sig));
  });
  const ended = Promise.race(running.map((r) => r.done.then((how) => ({ r, how }))));
  const first = await Promise.race([signalled.then((sig) => ({ sig })), ended]);
  let code = 0;
  if ('sig' in first) log.info({ signal: first.sig }, 'signal received; stopping');
  else {
    log.error({ trigger: first.r.name, how: first.how }, 'a dispatcher ended on its own; stopping');
    code = 1;
  }
  await Promise.all(running.map((r) => r.stop()));
  await ops.close();
  log.info('bye');
  return code;
}

function consumerName(s: DispatcherSettings): string {
  return `${s.triggerName || s.subscription}-${process.env.HOSTNAME ?? process.pid}`;
}

export async function main(_argv: readonly string[] = []): Promise<number> {
  const decoded = decodeSettingsEnv(process.env);
  if (!decoded.ok) {
    process.stderr.write(formatSettingsError(decoded.error, 'dispatcher'));
    return 2;
  }
  const settings = decoded.value;
  const log = createLogger(settings.logLevel);
  return runTriggers([settings], { port: settings.port, log });
}
