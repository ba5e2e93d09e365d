// The dispatcher in this process, built exactly as the CLI builds it: env → decodeSettingsEnv → startTrigger.

import { type RunningTrigger, startTrigger, type Tuning } from '../../../src/dispatcher/app.ts';
import { createFunctionClient } from '../../../src/dispatcher/http.ts';
import { createLogger } from '../../../src/dispatcher/log.ts';
import { DispatcherMetrics } from '../../../src/dispatcher/metrics.ts';
import { connectPulsar } from '../../../src/dispatcher/pulsar-source.ts';
import { type DispatcherSettings, decodeSettingsEnv } from '../../../src/trigger/settings.ts';

export function settingsFromEnv(env: Record<string, string>): DispatcherSettings {
  const r = decodeSettingsEnv(env);
  if (!r.ok) throw r.error;
  return r.value;
}

export function startInProcess(
  env: Record<string, string>,
  opts: {
    tuning?: Partial<Tuning>;
    metrics?: DispatcherMetrics;
    logLines?: string[];
    /** CA certificates the function client trusts (an https function or redirect target with a test CA). */
    ca?: Buffer;
  } = {},
): { trigger: RunningTrigger; metrics: DispatcherMetrics; settings: DispatcherSettings } {
  const settings = settingsFromEnv(env);
  const metrics = opts.metrics ?? new DispatcherMetrics({ defaultMetrics: false });
  const tuning = {
    receiverQueueSize: 200,
    maxHeld: Math.max(16, settings.concurrency * 4),
    maxParkedPerKey: 16,
    releaseDelayMs: 500,
    ...opts.tuning,
  };
  const trigger = startTrigger(settings, {
    connect: (o) => connectPulsar(o),
    metrics,
    log: opts.logLines
      ? createLogger('debug', { write: (line: string) => void opts.logLines?.push(line) })
      : createLogger(process.env.KPT_TEST_LOG ?? 'silent'),
    tuning,
    ...(opts.ca
      ? {
          fn: createFunctionClient({
            url: settings.functionUrl,
            connections: settings.concurrency,
            timeoutMs: settings.requestTimeoutMs,
            ca: opts.ca,
          }),
        }
      : {}),
  });
  return { trigger, metrics, settings };
}

export async function metricValue(
  m: DispatcherMetrics,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const all = await m.registry.getMetricsAsJSON();
  const found = all.find((x) => x.name === name);
  let total = 0;
  for (const v of found?.values ?? []) {
    if (Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val))
      total += v.value;
  }
  return total;
}
