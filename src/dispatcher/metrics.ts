// Prometheus metrics of the dispatcher. One registry per process; every series carries the trigger
// (namespace/name) because `run -f` may run several triggers in one process. Label children are resolved once
// and cached: the hot path only increments.

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { type Outcome, statusClass } from './policy.ts';

export class DispatcherMetrics {
  readonly registry: Registry;
  readonly received: Counter<'trigger'>;
  readonly delivered: Counter<'trigger'>;
  readonly attempts: Counter<'trigger' | 'outcome' | 'status_class'>;
  readonly retries: Counter<'trigger'>;
  readonly dropped: Counter<'trigger'>;
  readonly deadLettered: Counter<'trigger'>;
  readonly deadLetterFailures: Counter<'trigger'>;
  readonly released: Counter<'trigger'>;
  readonly duplicates: Counter<'trigger'>;
  readonly inFlight: Gauge<'trigger'>;
  readonly held: Gauge<'trigger'>;
  readonly latency: Histogram<'trigger'>;
  readonly ageAtAck: Histogram<'trigger'>;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registry = new Registry();
    this.registry = registry;
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new Counter<L>({ name, help, labelNames, registers: [registry] });
    this.received = counter('kpt_dispatcher_messages_received_total', 'Messages taken from the consumer.', [
      'trigger',
    ]);
    this.delivered = counter(
      'kpt_dispatcher_messages_delivered_total',
      'Messages the function answered 2xx to, then acked.',
      ['trigger'],
    );
    this.attempts = counter(
      'kpt_dispatcher_delivery_attempts_total',
      'HTTP attempts by outcome (success, status, refused, reset, timeout, dns, tls, other, aborted) and status class.',
      ['trigger', 'outcome', 'status_class'],
    );
    this.retries = counter('kpt_dispatcher_retries_total', 'Failed attempts scheduled for a retry.', [
      'trigger',
    ]);
    this.dropped = counter(
      'kpt_dispatcher_messages_dropped_total',
      'Messages acked without delivery because a status rule said drop.',
      ['trigger'],
    );
    this.deadLettered = counter(
      'kpt_dispatcher_messages_dead_lettered_total',
      'Messages published to the dead-letter topic, then acked.',
      ['trigger'],
    );
    this.deadLetterFailures = counter(
      'kpt_dispatcher_dead_letter_failures_total',
      'Dead-letter publications that failed (retried).',
      ['trigger'],
    );
    this.released = counter(
      'kpt_dispatcher_messages_released_total',
      'Messages handed back to the broker unattempted because their key was stuck with a full lane.',
      ['trigger'],
    );
    this.duplicates = counter(
      'kpt_dispatcher_duplicates_ignored_total',
      'Redelivered copies of a message already being delivered (after a reconnect).',
      ['trigger'],
    );
    this.inFlight = new Gauge({
      name: 'kpt_dispatcher_in_flight',
      help: 'HTTP requests to the function in flight.',
      labelNames: ['trigger'],
      registers: [registry],
    });
    this.held = new Gauge({
      name: 'kpt_dispatcher_messages_held',
      help: 'Messages taken from the consumer and not yet acked (in flight, waiting to retry, parked).',
      labelNames: ['trigger'],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: 'kpt_dispatcher_delivery_duration_seconds',
      help: 'Duration of one HTTP attempt.',
      labelNames: ['trigger'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180],
      registers: [registry],
    });
    this.ageAtAck = new Histogram({
      name: 'kpt_dispatcher_message_age_at_ack_seconds',
      help: 'Time from publish to ack (delivered, dropped or dead-lettered).',
      labelNames: ['trigger'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400],
      registers: [registry],
    });
    if (options.defaultMetrics !== false)
      collectDefaultMetrics({ register: registry, prefix: 'kpt_dispatcher_' });
  }

  forTrigger(trigger: string): TriggerMetrics {
    return new TriggerMetrics(this, trigger);
  }
}

/** The series of one trigger, with label children resolved once. */
export class TriggerMetrics {
  readonly received: { inc(n?: number): void };
  readonly delivered: { inc(n?: number): void };
  readonly retries: { inc(n?: number): void };
  readonly dropped: { inc(n?: number): void };
  readonly deadLettered: { inc(n?: number): void };
  readonly deadLetterFailures: { inc(n?: number): void };
  readonly released: { inc(n?: number): void };
  readonly duplicates: { inc(n?: number): void };
  readonly inFlight: { set(n: number): void };
  readonly held: { set(n: number): void };
  readonly latency: { observe(v: number): void };
  readonly ageAtAck: { observe(v: number): void };
  readonly #m: DispatcherMetrics;
  readonly #trigger: string;
  readonly #attempts = new Map<string, { inc(n?: number): void }>();

  constructor(m: DispatcherMetrics, trigger: string) {
    this.#m = m;
    this.#trigger = trigger;
    const l = { trigger };
    this.received = m.received.labels(l);
    this.delivered = m.delivered.labels(l);
    this.retries = m.retries.labels(l);
    this.dropped = m.dropped.labels(l);
    this.deadLettered = m.deadLettered.labels(l);
    this.deadLetterFailures = m.deadLetterFailures.labels(l);
    this.released = m.released.labels(l);
    this.duplicates = m.duplicates.labels(l);
    this.inFlight = m.inFlight.labels(l);
    this.held = m.held.labels(l);
    this.latency = m.latency.labels(l);
    this.ageAtAck = m.ageAtAck.labels(l);
  }

  attempt(outcome: Outcome, durationMs: number): void {
    const name =
      outcome.kind === 'status'
        ? outcome.status >= 200 && outcome.status <= 299
          ? 'success'
          : 'status'
        : outcome.kind === 'network'
          ? outcome.error
          : 'aborted';
    const cls = statusClass(outcome);
    const k = `${name}/${cls}`;
    let child = this.#attempts.get(k);
    if (!child) {
      child = this.#m.attempts.labels({ trigger: this.#trigger, outcome: name, status_class: cls });
      this.#attempts.set(k, child);
    }
    child.inc();
    if (outcome.kind !== 'aborted') this.latency.observe(durationMs / 1000);
  }
}
