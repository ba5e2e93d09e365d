// Prometheus metrics of the dispatcher. One registry per process; every series carries the trigger
// (namespace/name) because `run -f` may run several triggers in one process. The hot path only adds to plain
// numbers: counters and gauges reach prom-client when the registry is read (its collect() hook), because a
// prom-client label child hashes its labels on every inc()/set() (measured: ~2 % of the dispatcher's CPU at full
// load plus the garbage). Histograms are observed as they happen.

// prom-client's classes from their own files: its index also loads the cluster aggregator (node:cluster), the
// Pushgateway (node:http and node:https clients) and Summary; ~5 MiB of idle RSS for nothing used here.
import Counter from 'prom-client/lib/counter.js';
import collectDefaultMetrics from 'prom-client/lib/defaultMetrics.js';
import Gauge from 'prom-client/lib/gauge.js';
import Histogram from 'prom-client/lib/histogram.js';
import Registry from 'prom-client/lib/registry.js';
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
  readonly #triggers: TriggerMetrics[] = [];

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registry = new Registry();
    this.registry = registry;
    const triggers = this.#triggers;
    const flush = () => {
      for (const t of triggers) t.flush();
    };
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new Counter<L>({ name, help, labelNames, registers: [registry], collect: flush });
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
      'HTTP attempts by outcome (success, status, refused, reset, timeout, dns, tls, other, redirect_limit, redirect_refused, aborted) and status class.',
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
      collect: flush,
    });
    this.held = new Gauge({
      name: 'kpt_dispatcher_messages_held',
      help: 'Messages taken from the consumer and not yet acked (in flight, waiting to retry, parked).',
      labelNames: ['trigger'],
      registers: [registry],
      collect: flush,
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
    const t = new TriggerMetrics(this, trigger);
    this.#triggers.push(t);
    return t;
  }
}

/** A counter's increments since the last collection. */
class Pending {
  n = 0;
  inc(n = 1): void {
    this.n += n;
  }
}

/** A gauge's current value, read at collection. */
class Current {
  value = 0;
  set(n: number): void {
    this.value = n;
  }
}

/** The series of one trigger. */
export class TriggerMetrics {
  readonly received = new Pending();
  readonly delivered = new Pending();
  readonly retries = new Pending();
  readonly dropped = new Pending();
  readonly deadLettered = new Pending();
  readonly deadLetterFailures = new Pending();
  readonly released = new Pending();
  readonly duplicates = new Pending();
  readonly inFlight = new Current();
  readonly held = new Current();
  readonly latency: { observe(v: number): void };
  readonly ageAtAck: { observe(v: number): void };
  readonly #m: DispatcherMetrics;
  readonly #trigger: string;
  readonly #labels: { trigger: string };
  readonly #attempts = new Map<string, { outcome: string; cls: string; pending: Pending }>();
  readonly #byStatus = new Map<number, Pending>();

  constructor(m: DispatcherMetrics, trigger: string) {
    this.#m = m;
    this.#trigger = trigger;
    this.#labels = { trigger };
    this.latency = m.latency.labels(this.#labels);
    this.ageAtAck = m.ageAtAck.labels(this.#labels);
    // Every series exists from the start (at 0), as with label children created up front.
    this.flush();
  }

  attempt(outcome: Outcome, durationMs: number): void {
    // Per message: an HTTP status finds its series by number, without building the key string.
    if (outcome.kind === 'status') {
      let byStatus = this.#byStatus.get(outcome.status);
      if (!byStatus) {
        byStatus = this.#series(outcome);
        this.#byStatus.set(outcome.status, byStatus);
      }
      byStatus.n++;
      this.latency.observe(durationMs / 1000);
      return;
    }
    this.#series(outcome).n++;
    if (outcome.kind !== 'aborted') this.latency.observe(durationMs / 1000);
  }

  #series(outcome: Outcome): Pending {
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
    let a = this.#attempts.get(k);
    if (!a) {
      a = { outcome: name, cls, pending: new Pending() };
      this.#attempts.set(k, a);
    }
    return a.pending;
  }

  /** Hands what was counted since the last call to prom-client (called when the registry is read). */
  flush(): void {
    const m = this.#m;
    const l = this.#labels;
    const counters: [Counter<'trigger'>, Pending][] = [
      [m.received, this.received],
      [m.delivered, this.delivered],
      [m.retries, this.retries],
      [m.dropped, this.dropped],
      [m.deadLettered, this.deadLettered],
      [m.deadLetterFailures, this.deadLetterFailures],
      [m.released, this.released],
      [m.duplicates, this.duplicates],
    ];
    for (const [c, p] of counters) {
      c.inc(l, p.n);
      p.n = 0;
    }
    for (const a of this.#attempts.values()) {
      m.attempts.inc({ trigger: this.#trigger, outcome: a.outcome, status_class: a.cls }, a.pending.n);
      a.pending.n = 0;
    }
    m.inFlight.set(l, this.inFlight.value);
    m.held.set(l, this.held.value);
  }
}
