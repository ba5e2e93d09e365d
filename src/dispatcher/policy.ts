// The delivery policy: what to do with a message after each delivery attempt, how long to wait before the next
// one, and which message may be attempted when. Pure: no I/O, no timers; the clock and the random source are
// injected, so unit tests drive every path without a network and without waiting.

import type { StatusAction, StatusRule } from '../trigger/settings.ts';

// ---------------------------------------------------------------------------------------------------------------
// Outcomes and actions

/**
 * Why an attempt ended without a usable HTTP status: a network failure, or a redirect the dispatcher does not
 * follow (`redirect_limit`: more than MAX_REDIRECTS hops; `redirect_refused`: https→http, another scheme, or an
 * unreadable Location). Stable codes: they name the metric series and are what callers branch on. Told apart
 * because operators act differently on each.
 */
export type NetworkErrorKind =
  | 'refused'
  | 'reset'
  | 'timeout'
  | 'dns'
  | 'tls'
  | 'other'
  | 'redirect_limit'
  | 'redirect_refused';

export type Outcome =
  | { kind: 'status'; status: number; retryAfterMs?: number | undefined; body?: string | undefined }
  | { kind: 'network'; error: NetworkErrorKind; message: string }
  /** The attempt was cancelled by a shutdown: no decision, the message is left to be redelivered. */
  | { kind: 'aborted' };

/** The settings' actions (src/trigger/settings.ts): retry, drop (ack and count), deadLetter. */
export type Action = StatusAction;

export interface StatusRange {
  from: number;
  to: number;
  action: Action;
}

/** Status → action, per trigger. The narrowest matching range wins; `otherwise` covers every other non-2xx. */
export interface StatusActions {
  rules: readonly StatusRange[];
  network: Action;
  otherwise: Action;
}

/** The default: every non-2xx and every network error is retried (nothing is ever dropped silently). */
export const DEFAULT_STATUS_ACTIONS: StatusActions = { rules: [], network: 'retry', otherwise: 'retry' };

/**
 * The settings' rules (`404=drop,4xx=deadLetter`, already validated by the settings codec) as ranges, narrowest
 * first, so an exact status beats its class whatever order the user wrote them in.
 */
export function statusActionsFromRules(rules: readonly StatusRule[]): StatusActions {
  const ranges: StatusRange[] = [];
  for (const r of rules) {
    const cls = /^([1-5])xx$/.exec(r.status);
    if (cls) ranges.push({ from: Number(cls[1]) * 100, to: Number(cls[1]) * 100 + 99, action: r.action });
    else if (/^\d{3}$/.test(r.status))
      ranges.push({ from: Number(r.status), to: Number(r.status), action: r.action });
  }
  ranges.sort((a, b) => a.to - a.from - (b.to - b.from) || a.from - b.from);
  return { rules: ranges, network: 'retry', otherwise: 'retry' };
}

export function isSuccess(status: number): boolean {
  return status >= 200 && status <= 299;
}

export function actionFor(actions: StatusActions, outcome: Outcome): Action {
  if (outcome.kind === 'network') return actions.network;
  if (outcome.kind === 'aborted') return 'retry';
  for (const rule of actions.rules) {
    if (outcome.status >= rule.from && outcome.status <= rule.to) return rule.action;
  }
  return actions.otherwise;
}

export function statusClass(outcome: Outcome): string {
  return outcome.kind === 'status' ? `${Math.floor(outcome.status / 100)}xx` : 'none';
}

// ---------------------------------------------------------------------------------------------------------------
// Retry schedule

export interface RetryPolicy {
  /** First delay. Default 1 s (the seed's ERROR_BACKOFF_DELAY_INITIAL). */
  initialDelayMs: number;
  /** Cap, also the cap on Retry-After. Default 90 s (the seed's ERROR_BACKOFF_DELAY_MAX). */
  maxDelayMs: number;
  /**
   * Growth per failure. Default 2. ERROR_BACKOFF_FACTOR (the seed added it, in seconds, to the delay after each
   * failure) is read as this multiplier: the seed's 1 s start with factor 5 gave 1, 6, 11 ... 90 s; here it gives
   * 1, 5, 25, 90 s. The cap (ERROR_BACKOFF_DELAY_MAX) keeps the seed's meaning.
   */
  multiplier: number;
  /** Fraction of each delay that is randomised away (0..1), so replicas that failed together do not retry together. */
  jitter: number;
  /** Attempts before a message is dead-lettered; 0 means never (retry until the function recovers). */
  maxAttempts: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  initialDelayMs: 1_000,
  maxDelayMs: 90_000,
  multiplier: 2,
  jitter: 0.2,
  maxAttempts: 0,
};

/** Delay after the `failures`-th failed attempt (1-based), with the jitter taken off the top: grows, never exceeds the cap. */
export function backoffDelay(policy: RetryPolicy, failures: number, random: () => number): number {
  const n = Math.max(1, failures);
  const raw = policy.initialDelayMs * policy.multiplier ** (n - 1);
  const capped = Math.min(policy.maxDelayMs, Number.isFinite(raw) ? raw : policy.maxDelayMs);
  return Math.round(capped * (1 - policy.jitter * random()));
}

/** Retry-After: delta-seconds or an HTTP date. Returns milliseconds from now, or undefined if absent or unreadable. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  if (!/[a-z]/i.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

/** The function's Retry-After wins over our own schedule (it knows when it will be ready), up to the cap. */
export function retryDelay(
  policy: RetryPolicy,
  failures: number,
  retryAfterMs: number | undefined,
  random: () => number,
): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, policy.maxDelayMs);
  return backoffDelay(policy, failures, random);
}

// ---------------------------------------------------------------------------------------------------------------
// Decision after an attempt

export interface AttemptRecord {
  outcome: Outcome;
  /** Attempts made by this process, including this one. */
  localAttempts: number;
  /** The broker's redelivery count when this process received the message. */
  redeliveryCount: number;
  /** Redeliveries this process caused itself (overflow releases) and that were not delivery attempts. */
  discount: number;
}

export type Decision =
  | { kind: 'ack' }
  | { kind: 'drop'; attempts: number }
  | { kind: 'retry'; delayMs: number; attempts: number }
  | { kind: 'dead-letter'; attempts: number; reason: 'budget' | 'rule' }
  | { kind: 'abandon' };

/**
 * Attempts so far survive a restart through the broker's redelivery count: each redelivery stands for at least
 * one attempt made by an earlier holder of the message (a crashed or stopped dispatcher). Redeliveries we caused
 * ourselves without attempting (overflow releases) are discounted.
 */
export function attemptsSoFar(
  r: Pick<AttemptRecord, 'localAttempts' | 'redeliveryCount' | 'discount'>,
): number {
  return r.localAttempts + Math.max(0, r.redeliveryCount - r.discount);
}

/** Shared: the common decision allocates nothing. */
const ACK: Decision = { kind: 'ack' };

export function decide(
  record: AttemptRecord,
  actions: StatusActions,
  retry: RetryPolicy,
  random: () => number,
): Decision {
  const { outcome } = record;
  if (outcome.kind === 'aborted') return { kind: 'abandon' };
  if (outcome.kind === 'status' && isSuccess(outcome.status)) return ACK;
  const attempts = attemptsSoFar(record);
  const action = actionFor(actions, outcome);
  if (action === 'drop') return { kind: 'drop', attempts };
  if (action === 'deadLetter') return { kind: 'dead-letter', attempts, reason: 'rule' };
  if (retry.maxAttempts > 0 && attempts >= retry.maxAttempts) {
    return { kind: 'dead-letter', attempts, reason: 'budget' };
  }
  const retryAfterMs = outcome.kind === 'status' ? outcome.retryAfterMs : undefined;
  return { kind: 'retry', delayMs: retryDelay(retry, record.localAttempts, retryAfterMs, random), attempts };
}

/** A one-line description of an outcome, for logs and the dead-letter properties. */
export function describeOutcome(outcome: Outcome): string {
  switch (outcome.kind) {
    case 'status':
      return `HTTP ${outcome.status}${outcome.body ? `: ${outcome.body}` : ''}`;
    case 'network':
      return `${outcome.error}: ${outcome.message}`;
    case 'aborted':
      return 'aborted by shutdown';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Ordering lanes

export type OrderingMode = 'none' | 'key' | 'strict';

export interface LanesOptions {
  ordering: OrderingMode;
  /** HTTP requests in flight at most. */
  concurrency: number;
  /** Messages held (taken from the consumer, not yet acked or released) at most: bounds memory. */
  maxHeld: number;
  /** Messages parked behind a key's current message at most (ordering 'key'). */
  maxParkedPerKey: number;
  /** How long a released message's id is remembered, so later messages of its key wait for it (ordering 'key'). */
  overflowMemoryMs: number;
  /** Released ids remembered at most, whatever the number of keys. */
  maxOverflowMemory: number;
  now: () => number;
}

export type HeldState = 'parked' | 'ready' | 'active' | 'waiting' | 'blocked';

/**
 * - start: attempt this message now (an HTTP slot was taken for it; give it back with attemptFailed or settle).
 * - release: hand the message back to the broker (nack) without attempting it: its key is stuck in retries and
 *   already has as many messages parked as allowed. It comes back later, in order.
 */
export type LaneEffect<T> =
  | { type: 'start'; id: string; value: T }
  | { type: 'release'; id: string; value: T };

interface Held<T> {
  id: string;
  lane: string | undefined;
  value: T;
  state: HeldState;
  discount: number;
  /** Order of first arrival; kept across releases so a returning message knows which ones are older. */
  seq: number;
}

interface Lane<T> {
  head: Held<T>;
  parked: Held<T>[];
  /** The head has failed at least once: the lane is stuck until it settles. */
  failing: boolean;
}

interface Released {
  bounces: number;
  at: number;
  seq: number;
}

export interface AdmitResult<T> {
  effects: LaneEffect<T>[];
  /** The id is already held (a redelivery after a reconnect): ignore this copy, the held one will be acked. */
  duplicate: boolean;
  /** Redeliveries of this message caused by our own releases. */
  discount: number;
}

/** A FIFO with O(1) shift, for the ready queue. */
class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;
  get length(): number {
    return this.#items.length - this.#head;
  }
  push(item: T): void {
    this.#items.push(item);
  }
  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
  drain(): T[] {
    const out = this.#items.slice(this.#head) as T[];
    this.#items = [];
    this.#head = 0;
    return out;
  }
}

/**
 * Which held message may be attempted when. Ordering 'none': every message on its own. 'key': one message at a
 * time per key, keys in parallel, keyless messages in parallel. 'strict': one at a time.
 *
 * Memory is bounded twice: the runner takes a message from the consumer only when canAdmit(), and a key stuck in
 * retries parks at most maxParkedPerKey messages; the next ones of that key are released to the broker rather than
 * blocking the consumer, so other keys keep flowing. A key that is merely slow (not failing) with a full lane
 * blocks intake instead (backpressure), because releasing would only churn.
 */
export class Lanes<T> {
  readonly #opts: LanesOptions;
  readonly #held = new Map<string, Held<T>>();
  readonly #lanes = new Map<string, Lane<T>>();
  readonly #ready = new Fifo<Held<T>>();
  readonly #released = new Map<string, Map<string, Released>>();
  #releasedCount = 0;
  #active = 0;
  #seq = 0;
  #blocked: Held<T> | undefined;
  #closed = false;

  constructor(opts: LanesOptions) {
    this.#opts = opts;
  }

  get held(): number {
    return this.#held.size;
  }
  get active(): number {
    return this.#active;
  }
  get lanes(): number {
    return this.#lanes.size;
  }
  get isBlocked(): boolean {
    return this.#blocked !== undefined;
  }
  get closed(): boolean {
    return this.#closed;
  }
  stateOf(id: string): HeldState | undefined {
    return this.#held.get(id)?.state;
  }

  /** May the runner take one more message from the consumer? */
  canAdmit(): boolean {
    return !this.#closed && this.#blocked === undefined && this.#held.size < this.#opts.maxHeld;
  }

  admit(id: string, key: string | undefined, value: T): AdmitResult<T> {
    if (this.#held.has(id)) return { effects: [], duplicate: true, discount: 0 };
    const lane = this.#laneOf(key);
    const h: Held<T> = { id, lane, value, state: 'ready', discount: 0, seq: this.#seq++ };
    if (lane !== undefined && this.#opts.ordering === 'key') {
      const released = this.#releasedOf(lane);
      if (released) {
        const mine = released.get(id);
        if (!mine) {
          // Older messages of this key are out with the broker: this one must not overtake them.
          return { effects: [this.#release(h)], duplicate: false, discount: 0 };
        }
        h.discount = mine.bounces;
        h.seq = mine.seq;
        let older = false;
        for (const r of released.values()) if (r.seq < mine.seq) older = true;
        if (older) {
          // Back before an older released message of its key (nacks reach the broker at different times).
          return { effects: [this.#release(h)], duplicate: false, discount: h.discount };
        }
        released.delete(id);
        this.#releasedCount--;
        if (released.size === 0) this.#released.delete(lane);
      }
    }
    return { effects: this.#pump(this.#place(h)), duplicate: false, discount: h.discount };
  }

  /** The attempt failed and will be retried or dead-lettered: give the HTTP slot back, keep the lane. */
  attemptFailed(id: string): LaneEffect<T>[] {
    const h = this.#held.get(id);
    if (h?.state !== 'active') return [];
    h.state = 'waiting';
    this.#active--;
    const effects: LaneEffect<T>[] = [];
    if (h.lane !== undefined) {
      const lane = this.#lanes.get(h.lane);
      if (lane && lane.head === h) lane.failing = true;
      // The blocked message was waiting for this lane, which is now stuck: let it go so intake resumes.
      if (lane?.failing && this.#blocked && this.#blocked.lane === h.lane && this.#opts.ordering === 'key') {
        const b = this.#blocked;
        this.#blocked = undefined;
        this.#held.delete(b.id);
        effects.push(this.#release(b));
      }
    }
    return this.#pump(effects);
  }

  /** A failed message's backoff is over: queue it for a slot. */
  retryDue(id: string): LaneEffect<T>[] {
    const h = this.#held.get(id);
    if (h?.state !== 'waiting') return [];
    h.state = 'ready';
    this.#ready.push(h);
    return this.#pump();
  }

  /** Acked, dropped or dead-lettered: the message leaves, its lane moves on. */
  settle(id: string): LaneEffect<T>[] {
    const h = this.#held.get(id);
    if (!h || (h.state !== 'active' && h.state !== 'waiting')) return [];
    if (h.state === 'active') this.#active--;
    this.#held.delete(id);
    const effects: LaneEffect<T>[] = [];
    if (h.lane !== undefined) {
      const lane = this.#lanes.get(h.lane);
      if (lane && lane.head === h) {
        const next = lane.parked.shift();
        if (next) {
          lane.head = next;
          lane.failing = false;
          next.state = 'ready';
          this.#ready.push(next);
        } else {
          this.#lanes.delete(h.lane);
        }
      }
      const b = this.#blocked;
      if (b && b.lane === h.lane) {
        this.#blocked = undefined;
        this.#held.delete(b.id);
        effects.push(...this.#place(b));
      }
    }
    return this.#pump(effects);
  }

  /**
   * Shutdown: no message starts any more. Returns every held message that is not being attempted right now
   * (parked, ready, waiting, blocked); they leave the lanes and are left to the broker to redeliver.
   */
  close(): T[] {
    this.#closed = true;
    const out: T[] = [];
    for (const h of [...this.#held.values()]) {
      if (h.state !== 'active') {
        out.push(h.value);
        this.#held.delete(h.id);
      }
    }
    this.#ready.drain();
    this.#lanes.clear();
    this.#blocked = undefined;
    return out;
  }

  /** Ids held right now, with their state (for diagnostics and tests). */
  snapshot(): { id: string; state: HeldState; lane: string | undefined }[] {
    return [...this.#held.values()].map((h) => ({ id: h.id, state: h.state, lane: h.lane }));
  }

  #laneOf(key: string | undefined): string | undefined {
    switch (this.#opts.ordering) {
      case 'none':
        return undefined;
      case 'strict':
        return '';
      case 'key':
        return key === undefined || key === '' ? undefined : key;
    }
  }

  #place(h: Held<T>): LaneEffect<T>[] {
    this.#held.set(h.id, h);
    if (h.lane === undefined) {
      h.state = 'ready';
      this.#ready.push(h);
      return [];
    }
    const lane = this.#lanes.get(h.lane);
    if (!lane) {
      this.#lanes.set(h.lane, { head: h, parked: [], failing: false });
      h.state = 'ready';
      this.#ready.push(h);
      return [];
    }
    // Strict ordering has one lane: its parking is bounded by maxHeld through canAdmit().
    const cap = this.#opts.ordering === 'strict' ? Number.POSITIVE_INFINITY : this.#opts.maxParkedPerKey;
    if (lane.parked.length < cap) {
      h.state = 'parked';
      lane.parked.push(h);
      return [];
    }
    if (lane.failing) {
      this.#held.delete(h.id);
      return [this.#release(h)];
    }
    h.state = 'blocked';
    this.#blocked = h;
    return [];
  }

  #release(h: Held<T>): LaneEffect<T> {
    const lane = h.lane;
    if (lane !== undefined && this.#releasedCount < this.#opts.maxOverflowMemory) {
      let m = this.#released.get(lane);
      if (!m) {
        m = new Map();
        this.#released.set(lane, m);
      }
      if (!m.has(h.id)) this.#releasedCount++;
      m.set(h.id, { bounces: h.discount + 1, at: this.#opts.now(), seq: h.seq });
    }
    return { type: 'release', id: h.id, value: h.value };
  }

  /** The released ids of a lane still expected back; forgets those gone too long (redelivered elsewhere). */
  #releasedOf(lane: string): Map<string, Released> | undefined {
    const m = this.#released.get(lane);
    if (!m) return undefined;
    const oldest = this.#opts.now() - this.#opts.overflowMemoryMs;
    for (const [id, r] of m) {
      if (r.at < oldest) {
        m.delete(id);
        this.#releasedCount--;
      }
    }
    if (m.size === 0) {
      this.#released.delete(lane);
      return undefined;
    }
    return m;
  }

  /** Starts what the free slots allow; the effects are added to `effects` (one array per call, not two). */
  #pump(effects: LaneEffect<T>[] = []): LaneEffect<T>[] {
    if (this.#closed) return effects;
    while (this.#active < this.#opts.concurrency) {
      const h = this.#ready.shift();
      if (!h) break;
      h.state = 'active';
      this.#active++;
      effects.push({ type: 'start', id: h.id, value: h.value });
    }
    return effects;
  }
}
