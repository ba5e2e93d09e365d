// The runner wires the pure policy to the edges: messages from the source go through the lanes to the function;
// each outcome is turned into ack, retry, drop or dead letter by decide(). It owns no socket itself.
//
// At least once: a message is acked only after a 2xx, a drop rule, or a dead-letter send the broker confirmed.
// Anything else held at shutdown or at a crash is left unacked and comes back from the broker.

import { setMaxListeners } from 'node:events';
import type { FunctionClient } from './http.ts';
import { type Logger, RateLimitedLog } from './log.ts';
import type { TriggerMetrics } from './metrics.ts';
import {
  type Decision,
  decide,
  describeOutcome,
  type LaneEffect,
  Lanes,
  type LanesOptions,
  type Outcome,
  type RetryPolicy,
  retryDelay,
  type StatusActions,
} from './policy.ts';
import type { DeadLetterSink, MessageSource } from './ports.ts';
import { buildHeaders, type RequestContext, type SourceMessage } from './request.ts';

export interface RunnerConfig {
  /** namespace/name, for logs and metrics. */
  trigger: string;
  topic: string;
  subscription: string;
  request: RequestContext;
  statusActions: StatusActions;
  retry: RetryPolicy;
  lanes: Omit<LanesOptions, 'now'>;
  shutdownGraceMs: number;
}

export interface RunnerDeps<M extends SourceMessage> {
  source: MessageSource<M>;
  /** Opened on first use: most triggers never dead-letter, and opening a producer creates the topic. */
  openDeadLetter: () => Promise<DeadLetterSink>;
  fn: FunctionClient;
  metrics: TriggerMetrics;
  log: Logger;
  now?: () => number;
  random?: () => number;
}

interface Entry<M> {
  msg: M;
  localAttempts: number;
  discount: number;
  headers: Record<string, string> | undefined;
  timer: NodeJS.Timeout | undefined;
}

export interface StopReport {
  /** Attempts cut short when the grace period ran out. */
  aborted: number;
  /** Held messages not attempted (parked, waiting to retry): left to the broker. */
  abandoned: number;
}

/** Properties added to a dead-lettered message. REAL_TOPIC and ORIGIN_MESSAGE_ID are Pulsar's own DLQ names. */
export const DLQ_PROPS = {
  topic: 'REAL_TOPIC',
  messageId: 'ORIGIN_MESSAGE_ID',
  subscription: 'DLQ_SUBSCRIPTION',
  error: 'DLQ_LAST_ERROR',
  status: 'DLQ_LAST_STATUS',
  attempts: 'DLQ_ATTEMPTS',
  reason: 'DLQ_REASON',
} as const;

const RECENTLY_ACKED = 16_384;

/**
 * Promises still running (deliveries, acks), counted rather than kept in a Set: one shared pair of handlers, no
 * closure or Set entry per message. idle() resolves once none is left.
 */
class InFlight {
  count = 0;
  readonly #onError: (error: unknown) => void;
  #idle: { promise: Promise<void>; resolve: () => void } | undefined;
  readonly #done = (): void => {
    if (--this.count === 0 && this.#idle) {
      this.#idle.resolve();
      this.#idle = undefined;
    }
  };
  readonly #failed = (error: unknown): void => {
    this.#onError(error);
    this.#done();
  };

  constructor(onError: (error: unknown) => void) {
    this.#onError = onError;
  }

  add(p: Promise<unknown>): void {
    this.count++;
    p.then(this.#done, this.#failed);
  }

  /** Work reported through a callback rather than a promise: begin() now, end() once it is over. */
  begin(): void {
    this.count++;
  }

  end(): void {
    this.#done();
  }

  failed(error: unknown): void {
    this.#failed(error);
  }

  idle(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    if (!this.#idle) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.#idle = { promise, resolve };
    }
    return this.#idle.promise;
  }
}

export class Dispatcher<M extends SourceMessage> {
  readonly #cfg: RunnerConfig;
  readonly #deps: RunnerDeps<M>;
  readonly #lanes: Lanes<Entry<M>>;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #failures: RateLimitedLog;
  readonly #work: InFlight;
  readonly #acks: InFlight;
  readonly #abort = new AbortController();
  readonly #sleepers = new Set<() => void>();
  // Ids acked lately. A nack redelivers a whole batch entry, including its messages already delivered and acked
  // (the broker only tracks acks per entry unless batch-index acks are on): those copies are acked again, not
  // delivered again. Bounded; after a restart it is empty and such copies are delivered (at least once).
  readonly #recentlyAcked = new Set<string>();
  readonly #ackedRing: (string | undefined)[] = new Array(RECENTLY_ACKED);
  #ackedNext = 0;
  #inFlight = 0;
  #stopping = false;
  #wake: (() => void) | undefined;
  #sink: Promise<DeadLetterSink> | undefined;
  #loop: Promise<'stopped' | 'source-closed'> | undefined;
  #stopped: Promise<StopReport> | undefined;

  constructor(cfg: RunnerConfig, deps: RunnerDeps<M>) {
    this.#cfg = cfg;
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#random = deps.random ?? Math.random;
    this.#lanes = new Lanes<Entry<M>>({ ...cfg.lanes, now: this.#now });
    this.#failures = new RateLimitedLog(deps.log);
    const internal = (error: unknown) => deps.log.error({ error: describeError(error) }, 'internal error');
    this.#work = new InFlight(internal);
    // The broker will redeliver a message whose ack failed: a duplicate, never a loss.
    this.#acks = new InFlight((error) =>
      this.#failures.warn('ack', { error: describeError(error) }, 'ack failed'),
    );
    // One signal aborts every request at the end of the grace period; each request listens to it.
    setMaxListeners(0, this.#abort.signal);
  }

  /** Takes messages until stop() or until the source ends. */
  start(): Promise<'stopped' | 'source-closed'> {
    this.#loop ??= this.#intake();
    return this.#loop;
  }

  isReady(): boolean {
    return !this.#stopping && this.#deps.source.isReady();
  }

  stats(): { held: number; inFlight: number; lanes: number } {
    return { held: this.#lanes.held, inFlight: this.#inFlight, lanes: this.#lanes.lanes };
  }

  /**
   * Stops taking messages, lets in-flight work finish within the grace period (then aborts it), waits for the
   * acks of what was delivered, and closes the source so the rest is redelivered elsewhere.
   */
  stop(graceMs = this.#cfg.shutdownGraceMs): Promise<StopReport> {
    this.#stopped ??= this.#shutdown(graceMs);
    return this.#stopped;
  }

  async #intake(): Promise<'stopped' | 'source-closed'> {
    const { source, log } = this.#deps;
    while (!this.#stopping) {
      if (!this.#lanes.canAdmit()) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        continue;
      }
      let msg: M | undefined;
      try {
        msg = await source.receive();
      } catch (error) {
        if (this.#stopping) break;
        this.#failures.warn('receive', { error: describeError(error) }, 'receive failed');
        await this.#sleep(1000);
        continue;
      }
      // A message that arrives once stopping has begun is left unacked: the broker gives it to someone else.
      if (this.#stopping) break;
      if (msg === undefined) {
        log.warn({}, 'the consumer closed; no more messages');
        return 'source-closed';
      }
      this.#admit(msg);
    }
    return 'stopped';
  }

  #admit(msg: M): void {
    const m = this.#deps.metrics;
    m.received.inc();
    if (this.#recentlyAcked.has(msg.id)) {
      m.duplicates.inc();
      this.#acks.add(this.#deps.source.ack(msg).catch(() => undefined));
      return;
    }
    const entry: Entry<M> = { msg, localAttempts: 0, discount: 0, headers: undefined, timer: undefined };
    const r = this.#lanes.admit(msg.id, msg.key, entry);
    if (r.duplicate) {
      m.duplicates.inc();
      return;
    }
    entry.discount = r.discount;
    this.#apply(r.effects);
  }

  #apply(effects: LaneEffect<Entry<M>>[]): void {
    for (const e of effects) {
      if (e.type === 'start') this.#attempt(e.value);
      else {
        this.#deps.source.release(e.value.msg);
        this.#deps.metrics.released.inc();
      }
    }
    this.#deps.metrics.held.set(this.#lanes.held);
    const wake = this.#wake;
    if (wake) {
      this.#wake = undefined;
      wake();
    }
  }

  /** Starts one HTTP attempt; its result comes back through #attempted (no promise or closure per attempt). */
  #attempt(e: Entry<M>): void {
    this.#work.begin();
    try {
      e.localAttempts++;
      e.headers ??= buildHeaders(e.msg, this.#cfg.request);
      this.#deps.metrics.inFlight.set(++this.#inFlight);
      this.#deps.fn.send(e.msg.payload, e.headers, this.#abort.signal, this.#attempted, e);
    } catch (error) {
      this.#work.failed(error);
    }
  }

  readonly #attempted = (e: Entry<M>, outcome: Outcome, durationMs: number): void => {
    try {
      const { metrics } = this.#deps;
      metrics.inFlight.set(--this.#inFlight);
      metrics.attempt(outcome, durationMs);
      const d = decide(
        {
          outcome,
          localAttempts: e.localAttempts,
          redeliveryCount: e.msg.redeliveryCount,
          discount: e.discount,
        },
        this.#cfg.statusActions,
        this.#cfg.retry,
        this.#random,
      );
      this.#act(e, outcome, d);
      this.#work.end();
    } catch (error) {
      this.#work.failed(error);
    }
  };

  #act(e: Entry<M>, outcome: Outcome, d: Decision): void {
    const { metrics } = this.#deps;
    const id = e.msg.id;
    switch (d.kind) {
      case 'ack':
        this.#ack(e);
        metrics.delivered.inc();
        this.#apply(this.#lanes.settle(id));
        return;
      case 'drop':
        this.#ack(e);
        metrics.dropped.inc();
        this.#failures.warn(
          `drop:${describeKind(outcome)}`,
          {
            trigger: this.#cfg.trigger,
            messageId: id,
            attempts: d.attempts,
            outcome: describeOutcome(outcome),
          },
          'message dropped by a status rule',
        );
        this.#apply(this.#lanes.settle(id));
        return;
      case 'retry': {
        metrics.retries.inc();
        this.#deps.log.debug(
          { messageId: id, attempts: d.attempts, retryInMs: d.delayMs, outcome: describeKind(outcome) },
          'retry scheduled',
        );
        this.#failures.warn(
          `retry:${describeKind(outcome)}`,
          {
            trigger: this.#cfg.trigger,
            messageId: id,
            attempts: d.attempts,
            retryInMs: d.delayMs,
            outcome: describeOutcome(outcome),
          },
          'delivery failed, will retry',
        );
        this.#apply(this.#lanes.attemptFailed(id));
        if (this.#stopping) return;
        e.timer = setTimeout(() => {
          e.timer = undefined;
          this.#apply(this.#lanes.retryDue(id));
        }, d.delayMs);
        return;
      }
      case 'dead-letter':
        this.#apply(this.#lanes.attemptFailed(id));
        this.#work.add(this.#deadLetter(e, outcome, d.attempts, d.reason));
        return;
      case 'abandon':
        return;
    }
  }

  async #deadLetter(e: Entry<M>, outcome: Outcome, attempts: number, reason: string): Promise<void> {
    const { metrics, log } = this.#deps;
    const msg = e.msg;
    const properties: Record<string, string> = {
      ...msg.properties,
      [DLQ_PROPS.topic]: msg.topic,
      [DLQ_PROPS.messageId]: msg.id,
      [DLQ_PROPS.subscription]: this.#cfg.subscription,
      [DLQ_PROPS.error]: describeOutcome(outcome).slice(0, 1024),
      [DLQ_PROPS.attempts]: String(attempts),
      [DLQ_PROPS.reason]: reason,
    };
    if (outcome.kind === 'status') properties[DLQ_PROPS.status] = String(outcome.status);
    for (let failures = 1; ; failures++) {
      try {
        this.#sink ??= this.#deps.openDeadLetter();
        const sink = await this.#sink;
        await sink.send({ payload: msg.payload, key: msg.key, properties, eventTime: msg.eventTime });
        break;
      } catch (error) {
        this.#sink = undefined;
        metrics.deadLetterFailures.inc();
        this.#failures.warn(
          'dead-letter',
          { messageId: msg.id, error: describeError(error) },
          'dead-letter publication failed, will retry; the message stays unacked',
        );
        if (this.#stopping) return;
        const slept = await this.#sleep(retryDelay(this.#cfg.retry, failures, undefined, this.#random));
        if (!slept) return;
      }
    }
    // Only now, with the broker's receipt for the copy, may the original go.
    this.#ack(e);
    metrics.deadLettered.inc();
    log.warn(
      { messageId: msg.id, attempts, reason, outcome: describeOutcome(outcome) },
      'message dead-lettered',
    );
    this.#apply(this.#lanes.settle(msg.id));
  }

  #ack(e: Entry<M>): void {
    const old = this.#ackedRing[this.#ackedNext];
    if (old !== undefined) this.#recentlyAcked.delete(old);
    this.#ackedRing[this.#ackedNext] = e.msg.id;
    this.#ackedNext = (this.#ackedNext + 1) % RECENTLY_ACKED;
    this.#recentlyAcked.add(e.msg.id);
    this.#deps.metrics.ageAtAck.observe(Math.max(0, this.#now() - e.msg.publishTime) / 1000);
    this.#acks.add(this.#deps.source.ack(e.msg));
  }

  /** Resolves true after ms, or false as soon as stopping begins. */
  #sleep(ms: number): Promise<boolean> {
    if (this.#stopping) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (value: boolean) => {
        clearTimeout(t);
        this.#sleepers.delete(wake);
        resolve(value);
      };
      const wake = () => done(false);
      const t = setTimeout(() => done(true), ms);
      this.#sleepers.add(wake);
    });
  }

  async #shutdown(graceMs: number): Promise<StopReport> {
    const { source, log } = this.#deps;
    this.#stopping = true;
    const left = this.#lanes.close();
    for (const e of left) if (e.timer) clearTimeout(e.timer);
    for (const wake of [...this.#sleepers]) wake();
    this.#apply([]);
    log.info(
      { inFlight: this.#work.count, abandoned: left.length, graceMs },
      'stopping: finishing in-flight deliveries',
    );

    let aborted = 0;
    const deadline = this.#now() + graceMs;
    while (this.#work.count > 0) {
      const remaining = deadline - this.#now();
      if (remaining <= 0) {
        aborted = this.#inFlight;
        this.#abort.abort();
        await this.#work.idle();
        break;
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.#work.idle(),
        new Promise((resolve) => {
          timer = setTimeout(resolve, remaining);
        }),
      ]);
      clearTimeout(timer);
    }
    await this.#acks.idle();
    await source.close().catch((error: unknown) => {
      log.warn({ error: describeError(error) }, 'closing the consumer failed');
    });
    if (this.#loop) await this.#loop;
    const sink = this.#sink;
    if (sink) await sink.then((s) => s.close()).catch(() => undefined);
    await this.#deps.fn.close();
    log.info({ aborted, abandoned: left.length }, 'stopped');
    return { aborted, abandoned: left.length };
  }
}

function describeKind(outcome: Outcome): string {
  return outcome.kind === 'status'
    ? String(outcome.status)
    : outcome.kind === 'network'
      ? outcome.error
      : 'aborted';
}

export function describeError(error: unknown): { code?: string; message: string } {
  if (error && typeof error === 'object') {
    const e = error as { code?: unknown; message?: unknown };
    return {
      ...(typeof e.code === 'string' ? { code: e.code } : {}),
      message: typeof e.message === 'string' ? e.message : String(error),
    };
  }
  return { message: String(error) };
}
