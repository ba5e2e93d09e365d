// LZ4 as Pulsar uses it: one raw LZ4 block (no frame, no checksum), the size coming from the metadata.
// Compression uses lz4js's block compressor; decompression is a bounds-checked block decoder written here, so
// a hostile block can neither write past the output nor loop on a huge match length.

import lz4 from 'lz4js';
import { checkClaimedSize, checkResultSize, decompressError } from './limits.ts';

const MIN_MATCH = 4;
const HASH_TABLE_SIZE = 1 << 16;

/** Worst-case size of a compressed block of `n` bytes. */
export function lz4CompressBound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}

/** A block made only of literals (what LZ4 produces for incompressible input). */
function literalBlock(src: Uint8Array): Uint8Array {
  const n = src.length;
  const out = new Uint8Array(lz4CompressBound(n));
  let o = 0;
  if (n >= 15) {
    out[o++] = 0xf0;
    let rest = n - 15;
    while (rest >= 255) {
      out[o++] = 255;
      rest -= 255;
    }
    out[o++] = rest;
  } else {
    out[o++] = n << 4;
  }
  out.set(src, o);
  return out.subarray(0, o + n);
}

export function lz4Compress(src: Uint8Array): Uint8Array {
  if (src.length === 0) return new Uint8Array([0]);
  const dst = new Uint8Array(lz4CompressBound(src.length));
  const written = lz4.compressBlock(src, dst, 0, src.length, new Uint32Array(HASH_TABLE_SIZE));
  if (written === 0) return literalBlock(src);
  return dst.subarray(0, written);
}

export function lz4Decompress(src: Uint8Array, uncompressedSize: number): Uint8Array {
  checkClaimedSize('LZ4', uncompressedSize, src.length);
  const dst = new Uint8Array(uncompressedSize);
  const sEnd = src.length;
  const dEnd = dst.length;
  let s = 0;
  let d = 0;
  const corrupt = (why: string) =>
    decompressError('LZ4', `${why} at input offset ${s}`, { uncompressedSize, compressedSize: sEnd });
  while (s < sEnd) {
    const token = src[s++] as number;
    let literals = token >>> 4;
    if (literals === 15) {
      let b = 255;
      while (b === 255) {
        if (s >= sEnd) throw corrupt('truncated literal length');
        b = src[s++] as number;
        literals += b;
      }
    }
    if (literals > sEnd - s) throw corrupt('literals past the end of the input');
    if (literals > dEnd - d) throw corrupt('literals past the declared size');
    dst.set(src.subarray(s, s + literals), d);
    s += literals;
    d += literals;
    if (s >= sEnd) break; // the last sequence has literals only
    if (s + 2 > sEnd) throw corrupt('truncated match offset');
    const offset = (src[s] as number) | ((src[s + 1] as number) << 8);
    s += 2;
    if (offset === 0 || offset > d) throw corrupt(`invalid match offset ${offset}`);
    let matchLength = token & 15;
    if (matchLength === 15) {
      let b = 255;
      while (b === 255) {
        if (s >= sEnd) throw corrupt('truncated match length');
        b = src[s++] as number;
        matchLength += b;
        if (matchLength > dEnd) throw corrupt('match past the declared size');
      }
    }
    matchLength += MIN_MATCH;
    if (matchLength > dEnd - d) throw corrupt('match past the declared size');
    if (offset >= matchLength) {
      dst.copyWithin(d, d - offset, d - offset + matchLength);
      d += matchLength;
    } else {
      // Overlapping copy: repeats the last `offset` bytes.
      for (let i = 0; i < matchLength; i++, d++) dst[d] = dst[d - offset] as number;
    }
  }
  checkResultSize('LZ4', d, uncompressedSize);
  return dst;
}
