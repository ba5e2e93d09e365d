import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { ChunkAssembler, type ChunkInfo } from '../../../src/pulsar/chunks.ts';

type Id = number;
const same = (a: Id, b: Id) => a === b;

function split(payload: Uint8Array, n: number): Uint8Array[] {
  const size = Math.ceil(payload.length / n);
  return Array.from({ length: n }, (_, i) => payload.subarray(i * size, (i + 1) * size));
}

function info(
  uuid: string,
  chunkId: number,
  numChunks: number,
  totalSize: number,
  publishTime = 0,
): ChunkInfo {
  return { uuid, chunkId, numChunks, totalSize, publishTime };
}

test('chunks in order are reassembled byte-exact, with every chunk id', () => {
  const a = new ChunkAssembler<Id>(same);
  const payload = randomBytes(100_000);
  const parts = split(payload, 7);
  let done: ReturnType<typeof a.add>['complete'];
  parts.forEach((p, i) => {
    const r = a.add(100 + i, info('u1', i, 7, payload.length), p, 0);
    assert.deepEqual(r.actions, []);
    if (i < 6) assert.equal(r.complete, undefined);
    else done = r.complete;
  });
  assert.ok(done);
  assert.deepEqual(Buffer.from(done.payload), payload);
  assert.deepEqual(done.ids, [100, 101, 102, 103, 104, 105, 106]);
  assert.equal(a.pendingMessages, 0);
  assert.equal(a.pendingBytes, 0);
});

test('interleaved chunk sets of two producers are both reassembled', () => {
  const a = new ChunkAssembler<Id>(same);
  const x = randomBytes(3000);
  const y = randomBytes(5000);
  const xs = split(x, 3);
  const ys = split(y, 3);
  const out = new Map<string, Uint8Array>();
  let id = 0;
  for (let i = 0; i < 3; i++) {
    for (const [uuid, parts, total] of [
      ['x', xs, x.length],
      ['y', ys, y.length],
    ] as const) {
      const r = a.add(id++, info(uuid, i, 3, total), parts[i] as Uint8Array, 0);
      if (r.complete) out.set(r.complete.uuid, r.complete.payload);
    }
  }
  assert.deepEqual(Buffer.from(out.get('x') as Uint8Array), x);
  assert.deepEqual(Buffer.from(out.get('y') as Uint8Array), y);
});

test('an incomplete set expires: its chunks are acked and its memory released', () => {
  const a = new ChunkAssembler<Id>(same, { expireMs: 1000 });
  a.add(1, info('u', 0, 3, 30), new Uint8Array(10), 0);
  a.add(2, info('u', 1, 3, 30), new Uint8Array(10), 500);
  assert.equal(a.pendingBytes, 30);
  assert.deepEqual(a.expire(1000), []);
  const expired = a.expire(1001);
  assert.equal(expired.length, 1);
  assert.equal(expired[0]?.decision, 'ack');
  assert.deepEqual(expired[0]?.ids, [1, 2]);
  assert.match(expired[0]?.reason ?? '', /incomplete after 1000 ms \(2 of 3 chunks\)/);
  assert.equal(a.pendingMessages, 0);
  assert.equal(a.pendingBytes, 0);
  // The last chunk arriving later has no set any more: too old → acked.
  const late = a.add(3, info('u', 2, 3, 30, 0), new Uint8Array(10), 2000);
  assert.equal(late.complete, undefined);
  assert.deepEqual(
    late.actions.map((x) => [x.decision, x.ids]),
    [['ack', [3]]],
  );
});

test('expiry can redeliver instead of ack', () => {
  const a = new ChunkAssembler<Id>(same, { expireMs: 10, onExpire: 'redeliver' });
  a.add(1, info('u', 0, 2, 2), new Uint8Array(1), 0);
  assert.equal(a.expire(11)[0]?.decision, 'redeliver');
});

test('memory is bounded: the oldest set is evicted and redelivered', () => {
  const a = new ChunkAssembler<Id>(same, { maxPendingMessages: 2, maxPendingBytes: 1000 });
  a.add(1, info('a', 0, 2, 400), new Uint8Array(200), 0);
  a.add(2, info('b', 0, 2, 400), new Uint8Array(200), 0);
  const r = a.add(3, info('c', 0, 2, 400), new Uint8Array(200), 0);
  assert.deepEqual(
    r.actions.map((x) => [x.decision, x.uuid, x.ids]),
    [['redeliver', 'a', [1]]],
  );
  assert.equal(a.pendingMessages, 2);
  // Bytes bound: a 900-byte set needs both others gone.
  const big = a.add(4, info('d', 0, 2, 900), new Uint8Array(450), 0);
  assert.deepEqual(
    big.actions.map((x) => x.uuid),
    ['b', 'c'],
  );
  assert.equal(a.pendingBytes, 900);
  assert.ok(a.pendingBytes <= a.maxPendingBytes);
});

test('a claimed size above the limit is refused before allocating', () => {
  const a = new ChunkAssembler<Id>(same, { maxMessageBytes: 1024 });
  const r = a.add(1, info('huge', 0, 2, 2 ** 45), new Uint8Array(10), 0);
  assert.equal(r.actions[0]?.decision, 'discard');
  assert.match(r.actions[0]?.reason ?? '', /exceeds the limit of 1024/);
  assert.equal(a.pendingBytes, 0);
});

test('chunks larger than the announced total are refused', () => {
  const a = new ChunkAssembler<Id>(same);
  a.add(1, info('u', 0, 2, 10), new Uint8Array(8), 0);
  const r = a.add(2, info('u', 1, 2, 10), new Uint8Array(8), 0);
  assert.equal(r.complete, undefined);
  assert.deepEqual(r.actions[0]?.ids, [1, 2]);
  assert.equal(a.pendingBytes, 0);
  const short = new ChunkAssembler<Id>(same);
  short.add(1, info('s', 0, 2, 10), new Uint8Array(3), 0);
  const r2 = short.add(2, info('s', 1, 2, 10), new Uint8Array(3), 0);
  assert.equal(r2.complete, undefined);
  assert.match(r2.actions[0]?.reason ?? '', /hold 6 bytes, the announced total is 10/);
});

test('duplicates: the same entry again is ignored, a resent copy is acked', () => {
  const a = new ChunkAssembler<Id>(same);
  a.add(1, info('u', 0, 3, 3), new Uint8Array([1]), 0);
  assert.deepEqual(a.add(1, info('u', 0, 3, 3), new Uint8Array([1]), 0).actions[0]?.decision, 'discard');
  assert.deepEqual(a.add(9, info('u', 0, 3, 3), new Uint8Array([1]), 0).actions[0]?.decision, 'ack');
  a.add(2, info('u', 1, 3, 3), new Uint8Array([2]), 0);
  const r = a.add(3, info('u', 2, 3, 3), new Uint8Array([3]), 0);
  assert.deepEqual([...(r.complete?.payload ?? [])], [1, 2, 3]);
});

test('a gap drops the set and redelivers it so it can be read again in order', () => {
  const a = new ChunkAssembler<Id>(same);
  a.add(1, info('u', 0, 4, 4), new Uint8Array(1), 0);
  const r = a.add(3, info('u', 2, 4, 4), new Uint8Array(1), 0);
  assert.deepEqual(
    r.actions.map((x) => [x.decision, x.ids]),
    [['redeliver', [1, 3]]],
  );
  assert.equal(a.pendingMessages, 0);
  const orphan = a.add(7, info('v', 1, 2, 2), new Uint8Array(1), 0);
  assert.deepEqual(orphan.actions[0]?.decision, 'redeliver');
});

test('a broken set never leaks: many abandoned sets stay within the bounds', () => {
  const a = new ChunkAssembler<Id>(same, { maxPendingMessages: 5, maxPendingBytes: 50_000, expireMs: 100 });
  let released = 0;
  for (let i = 0; i < 1000; i++) {
    const r = a.add(i, info(`u${i}`, 0, 3, 10_000), new Uint8Array(3000), i);
    released += r.actions.reduce((n, x) => n + x.ids.length, 0);
    assert.ok(a.pendingMessages <= 5);
    assert.ok(a.pendingBytes <= 50_000);
  }
  released += a.expire(10_000).reduce((n, x) => n + x.ids.length, 0);
  assert.equal(released, 1000);
  assert.equal(a.pendingBytes, 0);
});
