// Size checks shared by the codecs: a compressed entry says how big it is once decompressed
// (MessageMetadata.uncompressed_size); that claim is checked against a limit before anything is allocated,
// and the decompressed result must match it exactly.

import { PulsarError, PulsarErrorCode } from '../errors.ts';

/** Default ceiling for one decompressed entry: well above any broker's maxMessageSize, far below memory. */
export const DEFAULT_MAX_UNCOMPRESSED_SIZE = 64 * 1024 * 1024;

let maxUncompressedSize = DEFAULT_MAX_UNCOMPRESSED_SIZE;

/** Sets the ceiling (bytes) for one decompressed entry. */
export function setMaxUncompressedSize(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new PulsarError(
      PulsarErrorCode.InvalidArgument,
      `max uncompressed size must be a positive integer, got ${bytes}`,
    );
  }
  maxUncompressedSize = bytes;
}

export function getMaxUncompressedSize(): number {
  return maxUncompressedSize;
}

export function decompressError(
  codec: string,
  why: string,
  context: Record<string, unknown> = {},
): PulsarError {
  return new PulsarError(PulsarErrorCode.DecompressionFailed, `${codec} decompression failed: ${why}`, {
    codec,
    ...context,
  });
}

/** Throws unless `size` is a sane uncompressed size for this codec. */
export function checkClaimedSize(codec: string, size: number, compressedLength: number): void {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw decompressError(codec, `invalid uncompressed size ${size}`, { uncompressedSize: size });
  }
  if (size > maxUncompressedSize) {
    throw decompressError(
      codec,
      `uncompressed size ${size} exceeds the limit of ${maxUncompressedSize} bytes`,
      { uncompressedSize: size, limit: maxUncompressedSize, compressedSize: compressedLength },
    );
  }
}

export function checkResultSize(codec: string, actual: number, expected: number): void {
  if (actual !== expected) {
    throw decompressError(codec, `decompressed to ${actual} bytes, metadata says ${expected}`, {
      uncompressedSize: expected,
      actualSize: actual,
    });
  }
}
