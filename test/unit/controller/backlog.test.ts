import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type BacklogFigures, BacklogPoller } from '../../../src/controller/backlog.ts';
import type { Timers } from '../../../src/controller/workqueue.ts';

/** A virtual clock: timers fire only when advance() passes their time. */
function virtualClock() {
  let now = 0;
  let seq = 0;
  const pending: { at: number; seq: number; fn: () => void }[] = [];
  const timers: Timers = {
    setTimeout: (fn, ms) => {
      const t = { at: now + ms, seq: seq++, fn };
      pending.push(t);
      return t;
    },
    clearTimeout: (h) => {
      const i = pending.indexOf(h as (typeof pending)[number]);
      if (i >= 0) pending.splice(i, 1);
    },
  };
  const flush = () => new Promise<void>((r) => setImmediate(r));
  return {
    timers,
    now: () => now,
    async advance(ms: number) {
      const end = now + ms;
      for (;;) {
        await flush();
        pending.sort((a, b) => a.at - b.at || a.seq - b.seq);
        const t = pending[0];
        if (!t || t.at > end) break;
        pending.shift();
        now = t.at;
        t.fn();
      }
      now = end;
      await flush();
    },
  };
}

const figures = (backlog: number): BacklogFigures => ({ backlog, msgRateOut: 0, consumers: 1 });

test('each tracked trigger is read once per interval, spread over it', async () => {
  const clock = virtualClock();
  const reads: { key: string; at: number }[] = [];
  const poller = new BacklogPoller({
    read: async (key) => {
      reads.push({ key, at: clock.now() });
      return figures(0);
    },
    intervalMs: 30_000,
    timers: clock.timers,
    now: clock.now,
    onChange: () => {},
  });
  for (let i = 0; i < 10; i++) poller.track(`ns/t${i}`);
  poller.start();
  await clock.advance(29_999);
  assert.equal(reads.length, 10, 'one read per trigger in the first interval');
  assert.deepEqual(
    reads.map((r) => r.at),
    [0, 3000, 6000, 9000, 12000, 15000, 18000, 21000, 24000, 27000],
    'spread evenly, not a burst',
  );
  await clock.advance(30_000);
  assert.equal(reads.length, 20, 'and once in the next');
  assert.equal(poller.reads, 20);
  poller.stop();
  await clock.advance(60_000);
  assert.equal(reads.length, 20, 'nothing after stop');
});

test('onChange fires for new and changed figures only; untracked triggers are forgotten', async () => {
  const clock = virtualClock();
  const backlog = new Map([
    ['ns/a', 5],
    ['ns/b', 7],
  ]);
  const changed: string[] = [];
  const poller = new BacklogPoller({
    read: async (key) => figures(backlog.get(key) ?? 0),
    intervalMs: 10_000,
    timers: clock.timers,
    now: clock.now,
    onChange: (k) => changed.push(k),
  });
  poller.track('ns/a');
  poller.track('ns/b');
  poller.start();
  await clock.advance(9_999);
  assert.deepEqual(changed.sort(), ['ns/a', 'ns/b'], 'first figures are a change');
  assert.equal(poller.figures('ns/a')?.figures.backlog, 5);
  changed.length = 0;
  backlog.set('ns/b', 0);
  await clock.advance(10_000);
  assert.deepEqual(changed, ['ns/b'], 'only the trigger whose backlog moved');
  poller.untrack('ns/a');
  assert.equal(poller.figures('ns/a'), undefined);
  assert.equal(poller.isTracked('ns/a'), false);
  poller.stop();
});

test('at most `concurrency` reads in flight; a slow read holds the next start, a failed one keeps the last figures', async () => {
  const clock = virtualClock();
  let inFlight = 0;
  let peak = 0;
  const release: (() => void)[] = [];
  const errors: string[] = [];
  let fail = false;
  const poller = new BacklogPoller({
    read: (key) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      return new Promise<BacklogFigures>((resolve, reject) => {
        release.push(() => {
          inFlight--;
          if (fail) reject(new Error('admin down'));
          else resolve(figures(1));
        });
        void key;
      });
    },
    intervalMs: 1000,
    concurrency: 2,
    timers: clock.timers,
    now: clock.now,
    onChange: () => {},
    onError: (k) => errors.push(k),
  });
  for (let i = 0; i < 4; i++) poller.track(`ns/t${i}`);
  poller.start();
  await clock.advance(999);
  assert.equal(peak, 2, 'two in flight, the others wait');
  assert.equal(poller.reads, 2);
  release.shift()?.();
  await clock.advance(0);
  assert.equal(poller.reads, 3, 'a finished read lets the next start');
  for (const r of release.splice(0)) r();
  await clock.advance(0);
  for (const r of release.splice(0)) r();
  await clock.advance(0);
  assert.equal(poller.figures('ns/t0')?.figures.backlog, 1);
  fail = true;
  await clock.advance(1000);
  for (let i = 0; i < 4 && release.length > 0; i++) {
    for (const r of release.splice(0)) r();
    await clock.advance(0);
  }
  assert.ok(errors.length >= 1, 'failures reported');
  assert.equal(poller.figures('ns/t0')?.figures.backlog, 1, 'the last figures are kept');
  poller.stop();
});
