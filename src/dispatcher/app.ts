// Assembly of one trigger's dispatcher from its validated settings: the same path for the Deployment (settings
// from the environment) and for `run -f trigger.yaml` (settings from a manifest).

import { type DispatcherSettings, tokenSource } from '../trigger/settings.ts';
import { createFunctionClient, type FunctionClient } from './http.ts';
import type { Logger } from './log.ts';
import type { DispatcherMetrics } from './metrics.ts';
import { type RetryPolicy, statusActionsFromRules } from './policy.ts';
import type { SourceConnection } from './ports.ts';
import type { SourceMessage } from './request.ts';
import { Dispatcher, describeError, type RunnerConfig, type StopReport } from './runner.ts';

/** Knobs the settings do not carry; derived from the concurrency so one number sizes the dispatcher. */
export interface Tuning {
  /** Messages the broker may push ahead (flow permits). */
  receiverQueueSize: number;
  /** Messages taken from the consumer and not yet acked, at most. */
  maxHeld: number;
  maxParkedPerKey: number;
  /** Delay before a message released by a stuck key comes back. */
  releaseDelayMs: number;
}

export function tuningFor(concurrency: number): Tuning {
  return {
    receiverQueueSize: Math.min(1000, Math.max(100, concurrency * 8)),
    maxHeld: Math.max(16, concurrency * 4),
    maxParkedPerKey: 16,
    releaseDelayMs: 2_000,
  };
}

export function retryPolicy(s: DispatcherSettings): RetryPolicy {
  return {
    initialDelayMs: s.backoff.initialMs,
    maxDelayMs: s.backoff.maxMs,
    multiplier: s.backoff.factor,
    jitter: 0.2,
    maxAttempts: s.maxAttempts ?? 0,
  };
}

export function runnerConfig(s: DispatcherSettings, tuning: Tuning = tuningFor(s.concurrency)): RunnerConfig {
  return {
    trigger: `${s.triggerNamespace}/${s.triggerName}`,
    topic: s.topic,
    subscription: s.subscription,
    request: {
      triggerName: s.triggerName,
      triggerNamespace: s.triggerNamespace,
      timezone: s.timezone,
      contentType: s.contentType,
      eventFormat: s.eventFormat,
    },
    statusActions: statusActionsFromRules(s.statusRules),
    retry: retryPolicy(s),
    lanes: {
      ordering: s.ordering,
      concurrency: s.concurrency,
      maxHeld: tuning.maxHeld,
      maxParkedPerKey: tuning.maxParkedPerKey,
      overflowMemoryMs: Math.max(60_000, tuning.releaseDelayMs * 10),
      maxOverflowMemory: 10_000,
    },
    shutdownGraceMs: s.shutdownGraceMs,
  };
}

/** Where the token comes from (the file wins when both are set), never the token. */
function describeTokenSource(s: DispatcherSettings): string {
  const from = tokenSource(s);
  if (from === undefined) return 'none';
  return 'file' in from ? `token file ${from.file}` : 'token';
}

/** What a log line may say about the settings: everything but the token. */
export function describeSettings(s: DispatcherSettings): Record<string, unknown> {
  return {
    topic: s.topic,
    broker: s.broker,
    subscription: s.subscription,
    subscriptionType: s.subscriptionType,
    initialPosition: s.initialPosition,
    functionUrl: s.functionUrl,
    concurrency: s.concurrency,
    ordering: s.ordering,
    requestTimeoutMs: s.requestTimeoutMs,
    backoff: s.backoff,
    maxAttempts: s.maxAttempts ?? 0,
    deadLetterTopic: s.deadLetterTopic,
    statusRules: s.statusRules,
    contentType: s.contentType.kind === 'auto' ? 'auto' : s.contentType.value,
    eventFormat: s.eventFormat,
    auth: describeTokenSource(s),
  };
}

export interface ConnectOptions {
  settings: DispatcherSettings;
  log: Logger;
  receiverQueueSize: number;
  releaseDelayMs: number;
}

export type Connect<M extends SourceMessage> = (o: ConnectOptions) => Promise<SourceConnection<M>>;

export interface RunningTrigger {
  name: string;
  isReady(): boolean;
  /** Resolves when the dispatcher stops on its own (the consumer closed under it). */
  done: Promise<'stopped' | 'source-closed'>;
  stop(graceMs?: number): Promise<StopReport | undefined>;
}

/**
 * Connects (retrying with backoff while the broker is unreachable, not ready meanwhile) and runs the dispatcher.
 * Returns at once; `done` settles when it ends.
 */
export function startTrigger<M extends SourceMessage>(
  settings: DispatcherSettings,
  deps: {
    connect: Connect<M>;
    metrics: DispatcherMetrics;
    log: Logger;
    tuning?: Tuning;
    fn?: FunctionClient;
  },
): RunningTrigger {
  const tuning = deps.tuning ?? tuningFor(settings.concurrency);
  const cfg = runnerConfig(settings, tuning);
  const log = deps.log.child({ trigger: cfg.trigger });
  let stopping = false;
  let wakeSleep: (() => void) | undefined;
  let dispatcher: Dispatcher<M> | undefined;
  let connection: SourceConnection<M> | undefined;

  const done = (async (): Promise<'stopped' | 'source-closed'> => {
    for (let failures = 0; !stopping; failures++) {
      try {
        connection = await deps.connect({
          settings,
          log,
          receiverQueueSize: tuning.receiverQueueSize,
          releaseDelayMs: tuning.releaseDelayMs,
        });
        break;
      } catch (error) {
        const delay = Math.min(30_000, 1000 * 2 ** Math.min(failures, 5));
        log.error({ error: describeError(error), retryInMs: delay }, 'cannot subscribe; retrying');
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          wakeSleep = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
    }
    if (stopping || !connection) {
      await connection?.close();
      return 'stopped';
    }
    const fn =
      deps.fn ??
      createFunctionClient({
        url: settings.functionUrl,
        connections: settings.concurrency,
        timeoutMs: settings.requestTimeoutMs,
      });
    dispatcher = new Dispatcher<M>(cfg, {
      source: connection.source,
      openDeadLetter: connection.openDeadLetter,
      fn,
      metrics: deps.metrics.forTrigger(cfg.trigger),
      log,
    });
    log.info(describeSettings(settings), 'subscribed; dispatching');
    return dispatcher.start();
  })();

  return {
    name: cfg.trigger,
    done,
    isReady: () => dispatcher?.isReady() ?? false,
    async stop(graceMs) {
      stopping = true;
      wakeSleep?.();
      const d = dispatcher;
      const report = d ? await d.stop(graceMs) : undefined;
      await done.catch(() => undefined);
      await connection?.close().catch(() => undefined);
      return report;
    },
  };
}
