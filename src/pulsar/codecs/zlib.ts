// ZLIB (deflate with the zlib header, as java.util.zip.Deflater writes it, possibly without a final block) and ZSTD (one zstd frame), both
// from node:zlib. Decompression stops at the declared size (maxOutputLength), so a bomb is cut off, not
// allocated. ZSTD falls back to fzstd where node:zlib has no zstd.

import zlib from 'node:zlib';
import { decompress as fzstdDecompress } from 'fzstd';
import { checkClaimedSize, checkResultSize, decompressError } from './limits.ts';

function view(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function zlibCompress(src: Uint8Array): Uint8Array {
  return view(zlib.deflateSync(src));
}

export function zlibDecompress(src: Uint8Array, uncompressedSize: number): Uint8Array {
  checkClaimedSize('ZLIB', uncompressedSize, src.length);
  let out: Buffer;
  try {
    // One byte more than declared, so an entry longer than its claim is detected rather than truncated.
    // The Java client deflates with SYNC_FLUSH, not FINISH: its streams have no final block, so inflate
    // must accept a stream that just ends (the exact size check below still catches truncation).
    out = zlib.inflateSync(src, {
      maxOutputLength: Math.max(1, uncompressedSize + 1),
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
    });
  } catch (e) {
    throw decompressError('ZLIB', (e as Error).message, { uncompressedSize });
  }
  checkResultSize('ZLIB', out.length, uncompressedSize);
  return view(out);
}

const nativeZstd =
  typeof zlib.zstdCompressSync === 'function' && typeof zlib.zstdDecompressSync === 'function';

export function zstdCompress(src: Uint8Array): Uint8Array {
  if (!nativeZstd) {
    throw decompressError('ZSTD', 'compression needs Node.js with zlib.zstdCompressSync (22.15+/24)');
  }
  return view(zlib.zstdCompressSync(src));
}

export function zstdDecompress(src: Uint8Array, uncompressedSize: number): Uint8Array {
  checkClaimedSize('ZSTD', uncompressedSize, src.length);
  let out: Uint8Array;
  try {
    if (nativeZstd) {
      out = view(zlib.zstdDecompressSync(src, { maxOutputLength: Math.max(1, uncompressedSize + 1) }));
    } else {
      out = fzstdDecompress(src, new Uint8Array(uncompressedSize));
    }
  } catch (e) {
    throw decompressError('ZSTD', (e as Error).message, { uncompressedSize });
  }
  checkResultSize('ZSTD', out.length, uncompressedSize);
  return out;
}
