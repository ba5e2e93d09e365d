// CRC32C known vectors (RFC 3720 appendix B.4 and the common "123456789" check value).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32c, crc32cBitwise } from '../../../src/pulsar/crc32c.ts';

test('CRC32C check value of "123456789" is 0xE3069283', () => {
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
});

test('CRC32C RFC 3720 vectors', () => {
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
});

test('CRC32C of the empty input is 0, and ranges chain like one pass', () => {
  assert.equal(crc32c(new Uint8Array(0)), 0);
  const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 31 + 7) & 0xff);
  const whole = crc32c(data);
  for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
    assert.equal(crc32c(data, crc32c(data, 0, 0, cut), cut, data.length), whole, `cut at ${cut}`);
  }
});

test('CRC32C word path equals the bitwise reference at every alignment, length and range', () => {
  const pool = new Uint8Array(4096 + 64);
  let x = 12345;
  for (let i = 0; i < pool.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    pool[i] = x >>> 24;
  }
  for (const offset of [0, 1, 2, 3, 5]) {
    for (const len of [0, 1, 15, 63, 64, 65, 79, 80, 127, 1000, 4096]) {
      const view = pool.subarray(offset, offset + len);
      assert.equal(crc32c(view), crc32cBitwise(view), `offset ${offset}, length ${len}`);
      if (len > 10) {
        const seed = crc32cBitwise(view, 0, 0, 3);
        assert.equal(
          crc32c(view, seed, 3, len - 2),
          crc32cBitwise(view, seed, 3, len - 2),
          `range of ${len}`,
        );
      }
    }
  }
});
