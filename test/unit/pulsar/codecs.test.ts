import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { CODECS, getMaxUncompressedSize, setMaxUncompressedSize } from '../../../src/pulsar/codecs/index.ts';
import { lz4Decompress } from '../../../src/pulsar/codecs/lz4.ts';
import { compress, decompress } from '../../../src/pulsar/compression.ts';
import { PulsarError, PulsarErrorCode } from '../../../src/pulsar/errors.ts';
import { CompressionType } from '../../../src/pulsar/proto/generated/PulsarApi.ts';

const NAMES = ['LZ4', 'ZLIB', 'ZSTD', 'SNAPPY'] as const;
const TYPES = {
  LZ4: CompressionType.LZ4,
  ZLIB: CompressionType.ZLIB,
  ZSTD: CompressionType.ZSTD,
  SNAPPY: CompressionType.SNAPPY,
};

function samples(): Uint8Array[] {
  const text = new TextEncoder().encode('kubeless pulsar trigger '.repeat(5000));
  const runs = new Uint8Array(100_000).fill(7);
  const mixed = new Uint8Array(70_000);
  for (let i = 0; i < mixed.length; i++) mixed[i] = (i * 31) % 251 > 200 ? i & 0xff : 65;
  return [new Uint8Array(0), new Uint8Array([1]), randomBytes(13), randomBytes(200_000), text, runs, mixed];
}

for (const name of NAMES) {
  test(`${name}: round trip through the registered codec`, () => {
    for (const input of samples()) {
      const packed = compress(TYPES[name], input);
      const out = decompress(TYPES[name], packed, input.length);
      assert.deepEqual(Buffer.from(out), Buffer.from(input));
    }
  });

  test(`${name}: round trip of arbitrary bytes`, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat(20), (bytes, reps) => {
        const input = new Uint8Array(bytes.length * (reps + 1));
        for (let i = 0; i <= reps; i++) input.set(bytes, i * bytes.length);
        const out = CODECS[name].decompress(CODECS[name].compress(input), input.length);
        assert.deepEqual(Buffer.from(out), Buffer.from(input));
      }),
      { numRuns: 150 },
    );
  });

  test(`${name}: a claimed size above the limit is rejected before allocating`, () => {
    const packed = CODECS[name].compress(new Uint8Array(100));
    assert.throws(
      () => CODECS[name].decompress(packed, 2 ** 40),
      (e: unknown) =>
        e instanceof PulsarError &&
        e.code === PulsarErrorCode.DecompressionFailed &&
        e.context.codec === name &&
        /exceeds the limit/.test(e.message),
    );
  });

  test(`${name}: a size that does not match the data is rejected`, () => {
    const input = new TextEncoder().encode('abcdefgh'.repeat(100));
    const packed = CODECS[name].compress(input);
    for (const wrong of [input.length - 1, input.length + 1]) {
      assert.throws(
        () => CODECS[name].decompress(packed, wrong),
        (e: unknown) => e instanceof PulsarError && e.code === PulsarErrorCode.DecompressionFailed,
      );
    }
  });

  test(`${name}: garbage never throws anything but a DecompressionFailed error`, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(5000), (bytes, size) => {
        try {
          const out = CODECS[name].decompress(bytes, size);
          assert.equal(out.length, size);
        } catch (e) {
          assert.ok(e instanceof PulsarError, String(e));
          assert.equal(e.code, PulsarErrorCode.DecompressionFailed);
        }
      }),
      { numRuns: 300 },
    );
  });
}

test('the size limit is configurable', () => {
  const before = getMaxUncompressedSize();
  try {
    setMaxUncompressedSize(1000);
    const packed = CODECS.ZLIB.compress(new Uint8Array(1001));
    assert.throws(() => CODECS.ZLIB.decompress(packed, 1001), /exceeds the limit of 1000/);
    assert.equal(CODECS.ZLIB.decompress(CODECS.ZLIB.compress(new Uint8Array(1000)), 1000).length, 1000);
    assert.throws(() => setMaxUncompressedSize(0), PulsarError);
  } finally {
    setMaxUncompressedSize(before);
  }
});

test('LZ4: decodes a hand-made block with an overlapping match (a run)', () => {
  // token 0x1f: 1 literal 'a', match length 15+ext; offset 1; ext 5 → match 15+5+4 = 24; then 'b' as last literal.
  const block = new Uint8Array([0x1f, 0x61, 0x01, 0x00, 0x05, 0x10, 0x62]);
  const out = lz4Decompress(block, 26);
  assert.equal(Buffer.from(out).toString(), `${'a'.repeat(25)}b`);
});

test('LZ4: a match reaching before the start of the output is rejected', () => {
  const block = new Uint8Array([0x10, 0x61, 0x05, 0x00]);
  assert.throws(() => lz4Decompress(block, 10), /invalid match offset 5/);
});

test('LZ4: a match length beyond the declared size stops early', () => {
  const block = new Uint8Array(10_000).fill(0xff);
  block.set([0x1f, 0x61, 0x01, 0x00], 0);
  assert.throws(() => lz4Decompress(block, 100), /match past the declared size/);
});

test('ZLIB: a sync-flushed stream without a final block (as the Java client writes it) is read', async () => {
  const zlib = await import('node:zlib');
  const input = new TextEncoder().encode('java deflater sync flush '.repeat(200));
  const full = zlib.deflateSync(input);
  // A SYNC_FLUSH stream: the deflate data up to an empty stored block, no final block, no adler32.
  const d = zlib.createDeflate();
  const chunks: Buffer[] = [];
  d.on('data', (c: Buffer) => chunks.push(c));
  d.write(input);
  await new Promise<void>((r) => d.flush(zlib.constants.Z_SYNC_FLUSH, () => r()));
  const synced = Buffer.concat(chunks);
  d.close();
  assert.notDeepEqual(synced, full);
  assert.deepEqual(Buffer.from(CODECS.ZLIB.decompress(synced, input.length)), Buffer.from(input));
  assert.throws(
    () => CODECS.ZLIB.decompress(synced.subarray(0, synced.length - 20), input.length),
    PulsarError,
  );
});
