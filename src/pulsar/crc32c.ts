// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of Pulsar payload frames.
//
// Slicing-by-16: sixteen 256-entry tables in one Int32Array (table t at t * 256), sixteen bytes per step.
// On little-endian hosts (every platform Node ships for but s390x) the bytes are read four at a time through an
// Int32Array view of the same memory once the position is 4-byte aligned: two loads per 8 bytes instead of
// eight was the difference between ~1.0 and ~2.0 GB/s on the consume path (see bench/client.ts). Unaligned heads,
// tails and big-endian hosts use the one-table byte loop.

const POLY = 0x82f63b78;
/** Inputs shorter than this use the byte loop (a view per call costs more than it saves). */
const WORDS_MIN = 64;

const T = new Int32Array(256 * 16);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[n] = c;
}
for (let t = 1; t < 16; t++) {
  for (let n = 0; n < 256; n++) {
    const p = (T[(t - 1) * 256 + n] as number) >>> 0;
    T[t * 256 + n] = (p >>> 8) ^ (T[p & 0xff] as number);
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Continues a CRC32C over bytes[start, end). Start with `crc = 0`; feed consecutive ranges by passing the
 * previous result. Returns an unsigned 32-bit value.
 */
export function crc32c(bytes: Uint8Array, crc = 0, start = 0, end = bytes.length): number {
  let c = ~crc;
  let i = start;
  if (LITTLE_ENDIAN && end - i >= WORDS_MIN) {
    const base = bytes.byteOffset;
    while (((base + i) & 3) !== 0) {
      c = (T[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
      i++;
    }
    const words = ((end - i) >>> 4) << 2;
    const w = new Int32Array(bytes.buffer, base + i, words);
    for (let k = 0; k < words; k += 4) {
      const a = c ^ (w[k] as number);
      const b = w[k + 1] as number;
      const d = w[k + 2] as number;
      const e = w[k + 3] as number;
      c =
        (T[3840 + (a & 0xff)] as number) ^
        (T[3584 + ((a >>> 8) & 0xff)] as number) ^
        (T[3328 + ((a >>> 16) & 0xff)] as number) ^
        (T[3072 + (a >>> 24)] as number) ^
        (T[2816 + (b & 0xff)] as number) ^
        (T[2560 + ((b >>> 8) & 0xff)] as number) ^
        (T[2304 + ((b >>> 16) & 0xff)] as number) ^
        (T[2048 + (b >>> 24)] as number) ^
        (T[1792 + (d & 0xff)] as number) ^
        (T[1536 + ((d >>> 8) & 0xff)] as number) ^
        (T[1280 + ((d >>> 16) & 0xff)] as number) ^
        (T[1024 + (d >>> 24)] as number) ^
        (T[768 + (e & 0xff)] as number) ^
        (T[512 + ((e >>> 8) & 0xff)] as number) ^
        (T[256 + ((e >>> 16) & 0xff)] as number) ^
        (T[e >>> 24] as number);
    }
    i += words * 4;
  }
  while (i < end) {
    c = (T[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
    i++;
  }
  return ~c >>> 0;
}

/** Bit-at-a-time reference (no tables), for tests. */
export function crc32cBitwise(bytes: Uint8Array, crc = 0, start = 0, end = bytes.length): number {
  let c = ~crc >>> 0;
  for (let i = start; i < end; i++) {
    c ^= bytes[i] as number;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  }
  return ~c >>> 0;
}
