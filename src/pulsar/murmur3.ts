// MurmurHash3, x86 32-bit variant, and the partition router of the Java client's RoundRobinPartition mode:
// a keyed message goes to (hash(key) & 0x7fffffff) % partitions, so the same key lands on the same partition
// whichever client produced it; messages without a key go round-robin. Two hashing schemes, as in the Java
// client's ProducerBuilder.hashingScheme(): Murmur3_32Hash (murmur3_32 of the UTF-8 bytes, seed 0, as
// Pulsar's Key_Shared hashes keys) and JavaStringHash (String.hashCode()). JavaStringHash is our default because
// it is the Java producer's default: a key produced by either client lands on the same partition. Pure.

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function mixK1(k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

/** MurmurHash3 x86_32 of `bytes`, as an unsigned 32-bit integer. */
export function murmur3_32(bytes: Uint8Array, seed = 0): number {
  const len = bytes.length;
  const blocks = len & ~3;
  let h = seed | 0;
  for (let i = 0; i < blocks; i += 4) {
    const k =
      (bytes[i] as number) |
      ((bytes[i + 1] as number) << 8) |
      ((bytes[i + 2] as number) << 16) |
      ((bytes[i + 3] as number) << 24);
    h ^= mixK1(k);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let tail = 0;
  for (let i = len - 1; i >= blocks; i--) tail = (tail << 8) | (bytes[i] as number);
  if (len & 3) h ^= mixK1(tail);
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const encoder = new TextEncoder();

export type HashingScheme = 'Murmur3_32Hash' | 'JavaStringHash';

/** java.lang.String#hashCode(): over UTF-16 code units, as a signed 32-bit integer. */
export function javaStringHash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}

/** The partition the Java client's router picks for `key` with the given hashing scheme. */
export function partitionForKey(
  key: string | Uint8Array,
  partitions: number,
  scheme: HashingScheme = 'JavaStringHash',
): number {
  if (scheme === 'JavaStringHash') {
    const s = typeof key === 'string' ? key : new TextDecoder().decode(key);
    return (javaStringHash(s) & 0x7fffffff) % partitions;
  }
  const bytes = typeof key === 'string' ? encoder.encode(key) : key;
  return (murmur3_32(bytes) & 0x7fffffff) % partitions;
}

/** Chooses a partition per message: by key hash, or round-robin for messages without a key. */
export class PartitionRouter {
  #next: number;
  readonly scheme: HashingScheme;

  /** `start` is the first round-robin partition (the Java client starts at a random one). */
  constructor(scheme: HashingScheme = 'JavaStringHash', start = Math.floor(Math.random() * 0x7fffffff)) {
    this.scheme = scheme;
    this.#next = start;
  }

  choose(key: string | undefined, partitions: number): number {
    if (partitions <= 1) return 0;
    if (key !== undefined && key !== '') return partitionForKey(key, partitions, this.scheme);
    const p = this.#next % partitions;
    this.#next = (this.#next + 1) % 0x7fffffff;
    return p;
  }
}
