// Registers LZ4, ZLIB, ZSTD and SNAPPY with the compression seam (compression.ts). Importing this module is
// enough; the client imports it, so every PulsarClient can read and write every codec.

import { COMPRESSION_TYPES, type CompressionCodec, registerCompressionCodec } from '../compression.ts';
import { lz4Compress, lz4Decompress } from './lz4.ts';
import { snappyCompress, snappyDecompress } from './snappy.ts';
import { zlibCompress, zlibDecompress, zstdCompress, zstdDecompress } from './zlib.ts';

export { DEFAULT_MAX_UNCOMPRESSED_SIZE, getMaxUncompressedSize, setMaxUncompressedSize } from './limits.ts';

export const CODECS: Record<'LZ4' | 'ZLIB' | 'ZSTD' | 'SNAPPY', CompressionCodec> = {
  LZ4: { compress: lz4Compress, decompress: lz4Decompress },
  ZLIB: { compress: zlibCompress, decompress: zlibDecompress },
  ZSTD: { compress: zstdCompress, decompress: zstdDecompress },
  SNAPPY: { compress: snappyCompress, decompress: snappyDecompress },
};

export function registerAllCodecs(): void {
  for (const [name, codec] of Object.entries(CODECS)) {
    registerCompressionCodec(COMPRESSION_TYPES[name as keyof typeof CODECS], codec);
  }
}

registerAllCodecs();
