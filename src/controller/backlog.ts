// How far behind each trigger is: its subscription's figures from the Pulsar admin API (backlog, oldest message in
// the backlog, dispatch rate, consumers, dead-lettered), read at a bounded rate and handed to reconcile as one more
// cache. Every tracked trigger is read once per interval, spread evenly over it and at most `concurrency` reads at
// a time, so 1000 triggers at the default 30 s cost 2000 reads a minute, never a burst of 1000. A trigger whose
// figures changed is queued for reconcile (onChange), which writes them into the status; unchanged figures cost
// nothing. Timers and the clock are injected (the work queue's Timers), so the schedule is unit-tested without
// waiting.

import type { Timers } from './workqueue.ts';

export interface BacklogFigures {
  backlog: number;
  msgRateOut: number;
  consumers: number;
  /** Partitions of the topic (0: not partitioned, or not there yet). */
  partitions?: number | undefined;
  /** Publish time (RFC 3339) of the oldest message in the backlog; undefined when it is empty. */
  oldestPublishTime?: string | undefined;
  /** Messages on the dead-letter topic; undefined when the trigger has none. */
  deadLettered?: number | undefined;
}

/** One read of a trigger's figures (the Pulsar admin API at the edge; a fake in unit tests). */
export type ReadFigures = (key: string) => Promise<BacklogFigures>;

export interface BacklogPollerOptions {
  read: ReadFigures;
  intervalMs: number;
  /** Reads in flight at most. */
  concurrency?: number;
  timers: Timers;
  now: () => number;
  /** The figures of this trigger changed (or could not be read any more): reconcile it. */
  onChange: (key: string) => void;
  /** A read failed; the last figures are kept, marked as not current. */
  onError?: (key: string, error: unknown) => void;
}

export interface Observed {
  figures: BacklogFigures;
  /** When they were read (ms since the epoch, from `now`). */
  at: number;
}

export class BacklogPoller {
  private readonly o: BacklogPollerOptions;
  private readonly concurrency: number;
  private readonly tracked = new Set<string>();
  private readonly observed = new Map<string, Observed>();
  /** Keys due for a read this round, in order; `next` is the index of the next one to start. */
  private round: string[] = [];
  private next = 0;
  private inFlight = 0;
  private tick: unknown;
  private roundTimer: unknown;
  private stopped = true;
  /** Reads started, for the admin-API load figure (calls per minute). */
  reads = 0;

  constructor(options: BacklogPollerOptions) {
    this.o = options;
    this.concurrency = Math.max(1, options.concurrency ?? 4);
  }

  /** Starts tracking a trigger (idempotent); its first read comes with the next round. */
  track(key: string): void {
    this.tracked.add(key);
  }

  /** Stops tracking a trigger and forgets its figures. */
  untrack(key: string): void {
    this.tracked.delete(key);
    this.observed.delete(key);
  }

  isTracked(key: string): boolean {
    return this.tracked.has(key);
  }

  figures(key: string): Observed | undefined {
    return this.observed.get(key);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.startRound();
  }

  stop(): void {
    this.stopped = true;
    if (this.tick !== undefined) this.o.timers.clearTimeout(this.tick);
    if (this.roundTimer !== undefined) this.o.timers.clearTimeout(this.roundTimer);
    this.tick = undefined;
    this.roundTimer = undefined;
  }

  /** A round reads every tracked trigger once, one every intervalMs / n, and the next round starts after intervalMs. */
  private startRound(): void {
    if (this.stopped) return;
    this.round = [...this.tracked];
    this.next = 0;
    this.roundTimer = this.o.timers.setTimeout(() => this.startRound(), this.o.intervalMs);
    this.schedule();
  }

  private spacing(): number {
    return this.round.length > 0 ? this.o.intervalMs / this.round.length : this.o.intervalMs;
  }

  private schedule(): void {
    if (this.stopped || this.tick !== undefined) return;
    if (this.next >= this.round.length || this.inFlight >= this.concurrency) return;
    const key = this.round[this.next++]!;
    void this.readOne(key);
    if (this.next < this.round.length) {
      this.tick = this.o.timers.setTimeout(() => {
        this.tick = undefined;
        this.schedule();
      }, this.spacing());
    }
  }

  private async readOne(key: string): Promise<void> {
    if (!this.tracked.has(key)) return;
    this.inFlight++;
    this.reads++;
    try {
      const figures = await this.o.read(key);
      if (!this.tracked.has(key)) return;
      const before = this.observed.get(key);
      this.observed.set(key, { figures, at: this.o.now() });
      if (!before || !sameFigures(before.figures, figures)) this.o.onChange(key);
    } catch (e) {
      this.o.onError?.(key, e);
    } finally {
      this.inFlight--;
      this.schedule();
    }
  }
}

export function sameFigures(a: BacklogFigures, b: BacklogFigures): boolean {
  return (
    a.backlog === b.backlog &&
    a.msgRateOut === b.msgRateOut &&
    a.consumers === b.consumers &&
    a.partitions === b.partitions &&
    a.oldestPublishTime === b.oldestPublishTime &&
    a.deadLettered === b.deadLettered
  );
}
