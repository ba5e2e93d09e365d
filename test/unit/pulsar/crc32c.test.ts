// CRC32C known vectors (RFC 3720 appendix B.4 and the common "123456789" check value).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32c } from '../../../src/pulsar/crc32c.ts';

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
