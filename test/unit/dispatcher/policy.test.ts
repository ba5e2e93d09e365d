import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  attemptsSoFar,
  backoffDelay,
  DEFAULT_RETRY,
  DEFAULT_STATUS_ACTIONS,
  decide,
  type LaneEffect,
  Lanes,
  type LanesOptions,
  type Outcome,
  parseRetryAfter,
  retryDelay,
  statusActionsFromRules,
} from '../../../src/dispatcher/policy.ts';

const status = (s: number, retryAfterMs?: number): Outcome => ({ kind: 'status', status: s, retryAfterMs });
const net: Outcome = { kind: 'network', error: 'refused', message: 'connect ECONNREFUSED' };

describe('status actions', () => {
  test('default retries every non-2xx and every network error', () => {
    for (const o of [status(400), status(404), status(500), status(503), net]) {
      const d = decide(
        { outcome: o, localAttempts: 1, redeliveryCount: 0, discount: 0 },
        DEFAULT_STATUS_ACTIONS,
        DEFAULT_RETRY,
        () => 0,
      );
      assert.equal(d.kind, 'retry', JSON.stringify(o));
    }
    for (const s of [200, 201, 204, 299]) {
      const d = decide(
        { outcome: status(s), localAttempts: 1, redeliveryCount: 0, discount: 0 },
        DEFAULT_STATUS_ACTIONS,
        DEFAULT_RETRY,
        () => 0,
      );
      assert.equal(d.kind, 'ack');
    }
  });

  test('exact status beats its class whatever the order written', () => {
    const actions = statusActionsFromRules([
      { status: '4xx', action: 'deadLetter' },
      { status: '404', action: 'drop' },
      { status: '503', action: 'retry' },
      { status: '5xx', action: 'drop' },
    ]);
    const act = (o: Outcome) =>
      decide(
        { outcome: o, localAttempts: 1, redeliveryCount: 0, discount: 0 },
        actions,
        DEFAULT_RETRY,
        () => 0,
      ).kind;
    assert.equal(act(status(404)), 'drop');
    assert.equal(act(status(400)), 'dead-letter');
    assert.equal(act(status(503)), 'retry');
    assert.equal(act(status(500)), 'drop');
    assert.equal(act(status(302)), 'retry', 'unmatched statuses retry');
    assert.equal(act(net), 'retry', 'network errors retry');
  });
});

describe('retry schedule', () => {
  test('grows exponentially to the cap and never beyond', () => {
    const policy = { ...DEFAULT_RETRY, jitter: 0 };
    const delays = Array.from({ length: 12 }, (_, i) => backoffDelay(policy, i + 1, () => 0.5));
    assert.deepEqual(delays.slice(0, 5), [1000, 2000, 4000, 8000, 16000]);
    assert.equal(delays.at(-1), 90_000);
    for (let i = 1; i < delays.length; i++) assert.ok(delays[i]! >= delays[i - 1]!);
    assert.equal(
      backoffDelay(policy, 10_000, () => 0),
      90_000,
      'huge exponents stay finite',
    );
  });

  test('jitter only shortens, within its fraction', () => {
    for (const r of [0, 0.3, 0.999]) {
      const d = backoffDelay(DEFAULT_RETRY, 3, () => r);
      assert.ok(d <= 4000 && d >= 4000 * (1 - DEFAULT_RETRY.jitter), String(d));
    }
  });

  test('Retry-After is honoured up to the cap', () => {
    assert.equal(
      retryDelay(DEFAULT_RETRY, 1, 7_000, () => 0),
      7_000,
    );
    assert.equal(
      retryDelay(DEFAULT_RETRY, 1, 600_000, () => 0),
      90_000,
    );
    const d = decide(
      { outcome: status(429, 3000), localAttempts: 5, redeliveryCount: 0, discount: 0 },
      DEFAULT_STATUS_ACTIONS,
      DEFAULT_RETRY,
      () => 0,
    );
    assert.deepEqual(d, { kind: 'retry', delayMs: 3000, attempts: 5 });
  });

  test('Retry-After parsing: seconds, HTTP date, garbage', () => {
    const now = Date.parse('2024-05-01T10:00:00Z');
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter('Wed, 01 May 2024 10:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Wed, 01 May 2024 09:00:00 GMT', now), 0);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter('-5', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });
});

describe('budget and dead letter', () => {
  const retry = { ...DEFAULT_RETRY, maxAttempts: 3 };
  test('dead-letters once the budget is spent, counting broker redeliveries', () => {
    const at = (local: number, redeliveries: number, discount = 0) =>
      decide(
        { outcome: status(500), localAttempts: local, redeliveryCount: redeliveries, discount },
        DEFAULT_STATUS_ACTIONS,
        retry,
        () => 0,
      );
    assert.equal(at(1, 0).kind, 'retry');
    assert.equal(at(2, 0).kind, 'retry');
    assert.deepEqual(at(3, 0), { kind: 'dead-letter', attempts: 3, reason: 'budget' });
    // A restarted dispatcher: two earlier holders attempted it, this is the third attempt.
    assert.equal(at(1, 2).kind, 'dead-letter');
    // Redeliveries we caused by releasing the message without attempting it do not count.
    assert.equal(at(1, 2, 2).kind, 'retry');
    assert.equal(attemptsSoFar({ localAttempts: 1, redeliveryCount: 1, discount: 4 }), 1);
  });

  test('a rule may dead-letter or drop at once; 0 means retry forever', () => {
    const r = {
      value: statusActionsFromRules([
        { status: '400', action: 'deadLetter' },
        { status: '410', action: 'drop' },
      ]),
    };
    const d = (s: number) =>
      decide(
        { outcome: status(s), localAttempts: 1, redeliveryCount: 0, discount: 0 },
        r.value,
        DEFAULT_RETRY,
        () => 0,
      );
    assert.deepEqual(d(400), { kind: 'dead-letter', attempts: 1, reason: 'rule' });
    assert.deepEqual(d(410), { kind: 'drop', attempts: 1 });
    const forever = decide(
      { outcome: status(500), localAttempts: 10_000, redeliveryCount: 50, discount: 0 },
      DEFAULT_STATUS_ACTIONS,
      DEFAULT_RETRY,
      () => 0,
    );
    assert.equal(forever.kind, 'retry');
  });

  test('an aborted attempt is abandoned, never acked', () => {
    const d = decide(
      { outcome: { kind: 'aborted' }, localAttempts: 1, redeliveryCount: 0, discount: 0 },
      DEFAULT_STATUS_ACTIONS,
      retry,
      () => 0,
    );
    assert.equal(d.kind, 'abandon');
  });
});

// ---------------------------------------------------------------------------------------------------------------

function lanes(opts: Partial<LanesOptions> = {}, clock = { t: 0 }) {
  return new Lanes<string>({
    ordering: 'key',
    concurrency: 4,
    maxHeld: 100,
    maxParkedPerKey: 2,
    overflowMemoryMs: 10_000,
    maxOverflowMemory: 1000,
    now: () => clock.t,
    ...opts,
  });
}
const started = (effects: LaneEffect<string>[]) => effects.filter((e) => e.type === 'start').map((e) => e.id);
const released = (effects: LaneEffect<string>[]) =>
  effects.filter((e) => e.type === 'release').map((e) => e.id);

describe('lanes', () => {
  test('key: one at a time per key, keys and keyless in parallel', () => {
    const l = lanes();
    assert.deepEqual(started(l.admit('a1', 'a', 'a1').effects), ['a1']);
    assert.deepEqual(started(l.admit('a2', 'a', 'a2').effects), []);
    assert.deepEqual(started(l.admit('b1', 'b', 'b1').effects), ['b1']);
    assert.deepEqual(started(l.admit('n1', undefined, 'n1').effects), ['n1']);
    assert.deepEqual(started(l.admit('n2', undefined, 'n2').effects), ['n2']);
    assert.equal(l.active, 4);
    assert.equal(l.stateOf('a2'), 'parked');
    assert.deepEqual(started(l.settle('a1')), ['a2']);
    assert.equal(l.held, 4);
  });

  test('concurrency bounds slots; a message in backoff gives its slot back', () => {
    const l = lanes({ ordering: 'none', concurrency: 2 });
    l.admit('1', undefined, '1');
    l.admit('2', undefined, '2');
    assert.deepEqual(started(l.admit('3', undefined, '3').effects), []);
    assert.equal(l.stateOf('3'), 'ready');
    assert.deepEqual(started(l.attemptFailed('1')), ['3']);
    assert.equal(l.stateOf('1'), 'waiting');
    assert.deepEqual(started(l.retryDue('1')), []);
    assert.deepEqual(started(l.settle('2')), ['1']);
  });

  test('strict: one at a time in arrival order, intake bounded by maxHeld', () => {
    const l = lanes({ ordering: 'strict', maxHeld: 3 });
    assert.deepEqual(started(l.admit('1', 'x', '1').effects), ['1']);
    assert.deepEqual(started(l.admit('2', 'y', '2').effects), []);
    assert.deepEqual(started(l.admit('3', undefined, '3').effects), []);
    assert.equal(l.canAdmit(), false);
    l.attemptFailed('1');
    assert.deepEqual(started(l.retryDue('1')), ['1'], 'the failed head goes first again');
    assert.deepEqual(started(l.settle('1')), ['2']);
    assert.deepEqual(started(l.settle('2')), ['3']);
  });

  test('a stuck key parks a bounded number, releases the rest in order, other keys pass', () => {
    const clock = { t: 0 };
    const l = lanes({}, clock);
    l.admit('a1', 'a', 'a1');
    l.attemptFailed('a1'); // a is stuck
    l.admit('a2', 'a', 'a2');
    l.admit('a3', 'a', 'a3');
    assert.deepEqual(released(l.admit('a4', 'a', 'a4').effects), ['a4']);
    assert.deepEqual(started(l.admit('b1', 'b', 'b1').effects), ['b1'], 'another key passes');
    assert.ok(l.canAdmit());
    // a stays stuck; a5 must not overtake a4, which is out with the broker.
    assert.deepEqual(released(l.admit('a5', 'a', 'a5').effects), ['a5']);
    // a recovers.
    l.retryDue('a1');
    l.settle('a1');
    assert.equal(l.stateOf('a2'), 'active');
    // a4 comes back first (the broker replays in order): parked behind a2, a3? a3 is parked, so a4 parks too.
    const back = l.admit('a4', 'a', 'a4');
    assert.equal(back.discount, 1, 'one redelivery was ours');
    assert.equal(l.stateOf('a4'), 'parked');
    l.settle('a2');
    const a5 = l.admit('a5', 'a', 'a5');
    assert.equal(released(a5.effects).length, 0);
    assert.equal(l.stateOf('a5'), 'parked');
    const order: string[] = [];
    for (const id of ['a3', 'a4', 'a5']) {
      assert.equal(l.stateOf(id), 'active');
      order.push(id);
      l.settle(id);
    }
    assert.deepEqual(order, ['a3', 'a4', 'a5']);
    assert.equal(l.held, 1, 'only b1 left');
  });

  test('released ids are forgotten after a while (redelivered to another consumer)', () => {
    const clock = { t: 0 };
    const l = lanes({ maxParkedPerKey: 0 }, clock);
    l.admit('a1', 'a', 'a1');
    l.attemptFailed('a1');
    assert.deepEqual(released(l.admit('a2', 'a', 'a2').effects), ['a2']);
    l.retryDue('a1');
    l.settle('a1');
    assert.deepEqual(released(l.admit('a3', 'a', 'a3').effects), ['a3'], 'a2 still expected');
    clock.t = 20_000;
    assert.deepEqual(started(l.admit('a4', 'a', 'a4').effects), ['a4']);
  });

  test('a slow but healthy key with a full lane blocks intake instead of churning', () => {
    const l = lanes({ maxParkedPerKey: 1 });
    l.admit('a1', 'a', 'a1');
    l.admit('a2', 'a', 'a2');
    const r = l.admit('a3', 'a', 'a3');
    assert.deepEqual(r.effects, []);
    assert.equal(l.stateOf('a3'), 'blocked');
    assert.equal(l.canAdmit(), false);
    l.settle('a1');
    assert.equal(l.stateOf('a3'), 'parked');
    assert.ok(l.canAdmit());
    // Now the head fails while another is blocked: the blocked one is released so intake resumes.
    l.admit('a4', 'a', 'a4');
    assert.equal(l.stateOf('a4'), 'blocked');
    assert.deepEqual(released(l.attemptFailed('a2')), ['a4']);
    assert.ok(l.canAdmit());
  });

  test('duplicates of a held message are recognised', () => {
    const l = lanes();
    l.admit('a1', 'a', 'a1');
    assert.equal(l.admit('a1', 'a', 'a1').duplicate, true);
    assert.equal(l.held, 1);
  });

  test('close hands back everything not in flight and starts nothing more', () => {
    const l = lanes({ concurrency: 1 });
    l.admit('1', undefined, '1');
    l.admit('2', undefined, '2');
    l.admit('a1', 'a', 'a1');
    const left = l.close();
    assert.deepEqual(left.sort(), ['2', 'a1']);
    assert.deepEqual(l.settle('1'), []);
    assert.equal(l.held, 0);
    assert.equal(l.canAdmit(), false);
  });

  test('random operation sequences keep the invariants', () => {
    let seed = 42;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const l = lanes({ concurrency: 3, maxHeld: 20, maxParkedPerKey: 2 });
    const delivered = new Map<string, number[]>();
    let next = 0;
    const out = new Set<string>();
    const apply = (effects: LaneEffect<string>[]) => {
      for (const e of effects) if (e.type === 'release') out.add(e.id);
    };
    for (let step = 0; step < 5000; step++) {
      const snap = l.snapshot();
      assert.ok(l.active <= 3 && l.held <= 21);
      const activeByLane = new Map<string, number>();
      for (const s of snap) {
        if (s.lane !== undefined && (s.state === 'active' || s.state === 'waiting'))
          activeByLane.set(s.lane, (activeByLane.get(s.lane) ?? 0) + 1);
      }
      for (const n of activeByLane.values()) assert.ok(n <= 1, 'one message per key at a time');
      const r = rnd();
      if (r < 0.4 && l.canAdmit()) {
        if (out.size > 0 && rnd() < 0.5) {
          const id = [...out][0]!;
          out.delete(id);
          apply(l.admit(id, id.split(':')[0], id).effects);
        } else {
          const key = `k${Math.floor(rnd() * 4)}`;
          const id = `${key}:${next++}`;
          apply(l.admit(id, key, id).effects);
        }
      } else {
        const actives = snap.filter((s) => s.state === 'active' || s.state === 'waiting');
        const pick = actives[Math.floor(rnd() * actives.length)];
        if (!pick) continue;
        if (pick.state === 'waiting') apply(l.retryDue(pick.id));
        else if (rnd() < 0.3) apply(l.attemptFailed(pick.id));
        else {
          const [key, n] = pick.id.split(':') as [string, string];
          const seq = delivered.get(key) ?? [];
          seq.push(Number(n));
          delivered.set(key, seq);
          apply(l.settle(pick.id));
        }
      }
    }
    let total = 0;
    for (const seq of delivered.values()) {
      total += seq.length;
      for (let i = 1; i < seq.length; i++)
        assert.ok(seq[i]! > seq[i - 1]!, `per-key order: ${seq.join(',')}`);
    }
    assert.ok(total > 100, 'the simulation delivered something');
  });
});
