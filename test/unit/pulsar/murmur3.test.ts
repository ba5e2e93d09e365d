import assert from 'node:assert/strict';
import { test } from 'node:test';
import { javaStringHash, murmur3_32, PartitionRouter, partitionForKey } from '../../../src/pulsar/murmur3.ts';

const utf8 = (s: string) => new TextEncoder().encode(s);

test('murmur3_32 matches the published x86_32 vectors', () => {
  // Reference values of MurmurHash3_x86_32 (SMHasher), every tail length 0..3 covered.
  assert.equal(murmur3_32(utf8(''), 0), 0);
  assert.equal(murmur3_32(utf8(''), 1), 0x514e28b7);
  assert.equal(murmur3_32(utf8(''), 0xffffffff), 0x81f16f39);
  assert.equal(murmur3_32(new Uint8Array([0, 0, 0, 0]), 0), 0x2362f9de);
  assert.equal(murmur3_32(new Uint8Array([0x21, 0x43, 0x65, 0x87]), 0), 0xf55b516b);
  assert.equal(murmur3_32(new Uint8Array([0x21, 0x43, 0x65]), 0), 0x7e4a8634);
  assert.equal(murmur3_32(new Uint8Array([0x21, 0x43]), 0), 0xa0f7b07a);
  assert.equal(murmur3_32(new Uint8Array([0x21]), 0), 0x72661cf4);
  assert.equal(murmur3_32(utf8('hello'), 0), 0x248bfa47);
  assert.equal(murmur3_32(utf8('The quick brown fox jumps over the lazy dog'), 0), 0x2e4ff723);
});

test('partitionForKey (Murmur3_32Hash): stable, in range, non-negative, and key bytes are UTF-8', () => {
  const m = 'Murmur3_32Hash';
  for (let i = 0; i < 1000; i++) {
    const p = partitionForKey(`key-${i}`, 4, m);
    assert.ok(p >= 0 && p < 4);
    assert.equal(partitionForKey(`key-${i}`, 4, m), p);
  }
  assert.equal(partitionForKey('é', 7, m), partitionForKey(utf8('é'), 7, m));
  // A hash with the top bit set: & 0x7fffffff before the modulo, like the Java client.
  const h = murmur3_32(utf8('hello'));
  assert.equal(partitionForKey('hello', 5, m), (h & 0x7fffffff) % 5);
});

test('the default scheme is JavaStringHash, the Java producer default', () => {
  assert.equal(partitionForKey('hello', 7), partitionForKey('hello', 7, 'JavaStringHash'));
  assert.equal(new PartitionRouter().scheme, 'JavaStringHash');
});

test('PartitionRouter: keys hash, no key goes round-robin over every partition', () => {
  const r = new PartitionRouter('Murmur3_32Hash', 2);
  assert.deepEqual(
    [0, 1, 2, 3, 4].map(() => r.choose(undefined, 4)),
    [2, 3, 0, 1, 2],
  );
  assert.equal(r.choose('abc', 4), partitionForKey('abc', 4));
  assert.equal(r.choose(undefined, 1), 0);
  const counts = [0, 0, 0];
  for (let i = 0; i < 300; i++) {
    const p = r.choose(`k${i}`, 3);
    counts[p] = (counts[p] ?? 0) + 1;
  }
  assert.ok(
    counts.every((c) => c > 50),
    `keys spread over partitions: ${counts}`,
  );
});

test('JavaStringHash: String.hashCode() over UTF-16 code units', () => {
  assert.equal(javaStringHash(''), 0);
  assert.equal(javaStringHash('hello'), 99162322);
  assert.equal(javaStringHash('polygenelubricants'), -2147483648);
  assert.equal(javaStringHash('key-2-ü'), javaStringHash('key-2-\u00fc'));
  assert.equal(partitionForKey('hello', 7, 'JavaStringHash'), 99162322 % 7);
  // Integer.MIN_VALUE & MAX_VALUE = 0.
  assert.equal(partitionForKey('polygenelubricants', 5, 'JavaStringHash'), 0);
  const r = new PartitionRouter('JavaStringHash');
  assert.equal(r.choose('hello', 7), 99162322 % 7);
});
