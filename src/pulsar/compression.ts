// Compression seam, keyed by the protocol's CompressionType. This module ships only NONE; issue 5 registers
// LZ4, ZLIB, ZSTD and SNAPPY codecs with registerCompressionCodec(). The consumer calls decompress() on every
// entry whose metadata names a codec, the producer calls compress() on every batch when its
// `compressionType` option is set.

import { PulsarError, PulsarErrorCode } from './errors.ts';
import { CompressionType } from './proto/generated/PulsarApi.ts';

export type CompressionName = 'NONE' | 'LZ4' | 'ZLIB' | 'ZSTD' | 'SNAPPY';

export const COMPRESSION_TYPES: Record<CompressionName, number> = {
  NONE: CompressionType.NONE,
  LZ4: CompressionType.LZ4,
  ZLIB: CompressionType.ZLIB,
  ZSTD: CompressionType.ZSTD,
  SNAPPY: CompressionType.SNAPPY,
};

export interface CompressionCodec {
  compress(data: Uint8Array): Uint8Array;
  /** `uncompressedSize` is the metadata's uncompressed_size. */
  decompress(data: Uint8Array, uncompressedSize: number): Uint8Array;
}

const codecs = new Map<number, CompressionCodec>();

export function registerCompressionCodec(type: number, codec: CompressionCodec): void {
  codecs.set(type, codec);
}

function codecFor(type: number): CompressionCodec {
  const codec = codecs.get(type);
  if (!codec) {
    const name = Object.entries(COMPRESSION_TYPES).find(([, v]) => v === type)?.[0] ?? `type ${type}`;
    throw new PulsarError(
      PulsarErrorCode.UnsupportedCompression,
      `no codec registered for compression ${name}`,
    );
  }
  return codec;
}

export function decompress(type: number, data: Uint8Array, uncompressedSize: number): Uint8Array {
  if (type === CompressionType.NONE) return data;
  return codecFor(type).decompress(data, uncompressedSize);
}

export function compress(type: number, data: Uint8Array): Uint8Array {
  if (type === CompressionType.NONE) return data;
  return codecFor(type).compress(data);
}
