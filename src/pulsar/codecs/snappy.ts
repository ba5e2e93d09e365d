// SNAPPY as Pulsar uses it: a raw Snappy block (varint uncompressed length, then elements), no framing.
// The block's own length header is read and checked against the metadata and the limit before snappyjs
// allocates anything.

import snappy from 'snappyjs';
import { checkClaimedSize, checkResultSize, decompressError } from './limits.ts';

export function snappyCompress(src: Uint8Array): Uint8Array {
  return snappy.compress(src);
}

/** The uncompressed length a Snappy block declares (its leading varint), or -1 when unreadable. */
export function snappyDeclaredLength(src: Uint8Array): number {
  let result = 0;
  let mul = 1;
  for (let i = 0; i < 5 && i < src.length; i++) {
    const b = src[i] as number;
    result += (b & 0x7f) * mul;
    if (b < 0x80) return result;
    mul *= 128;
  }
  return -1;
}

export function snappyDecompress(src: Uint8Array, uncompressedSize: number): Uint8Array {
  checkClaimedSize('SNAPPY', uncompressedSize, src.length);
  const declared = snappyDeclaredLength(src);
  if (declared !== uncompressedSize) {
    throw decompressError('SNAPPY', `block declares ${declared} bytes, metadata says ${uncompressedSize}`, {
      uncompressedSize,
      declared,
    });
  }
  let out: Uint8Array;
  try {
    out = snappy.uncompress(src, uncompressedSize);
  } catch (e) {
    throw decompressError('SNAPPY', (e as Error).message, { uncompressedSize });
  }
  checkResultSize('SNAPPY', out.length, uncompressedSize);
  return out;
}
