import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Timers, WorkQueue } from '../../../src/controller/workqueue.ts';

function fakeTimers() {
  const pending: { fn: () => void; ms: number }[] = [];
  const timers: Timers = {
    setTimeout: (fn, ms) => {
      const t = { fn, ms };
      pending.push(t);
      return t;
    },
    clearTimeout: (h) => {
      const i = pending.indexOf(h as (typeof pending)[number]);
      if (i >= 0) pending.splice(i, 1);
    },
  };
  return { timers, pending };
}

test('a key is queued once, and one added while processing comes back after done', async () => {
  const q = new WorkQueue();
  q.add('ns/a');
  q.add('ns/a');
  q.add('ns/b');
  assert.equal(q.depth(), 2);
  const k = await q.get();
  assert.equal(k, 'ns/a');
  q.add('ns/a'); // while processing: not handed to another worker
  assert.equal(q.depth(), 1);
  assert.equal(await q.get(), 'ns/b');
  q.done('ns/a');
  assert.equal(await q.get(), 'ns/a');
});

test('failures back off exponentially per key and forget resets', () => {
  const { timers, pending } = fakeTimers();
  const q = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 1000, timers });
  const delays = [1, 2, 3, 4, 5].map(() => {
    const d = q.addRateLimited('k');
    pending.shift()?.fn();
    return d;
  });
  assert.deepEqual(delays, [100, 200, 400, 800, 1000]);
  assert.equal(q.addRateLimited('other'), 100);
  q.forget('k');
  assert.equal(q.retries('k'), 0);
});

test('shutdown releases waiting workers', async () => {
  const q = new WorkQueue();
  const waiting = q.get();
  q.shutdown();
  assert.equal(await waiting, undefined);
  q.add('x');
  assert.equal(await q.get(), undefined);
});
