// Message ids: ledger, entry, partition and (for messages of a batch) the index in the batch.

import { PulsarError, PulsarErrorCode } from './errors.ts';
import { MessageIdData } from './proto/generated/PulsarApi.ts';

const U64_MAX = (1n << 64n) - 1n;

function signed(v: bigint): bigint {
  return BigInt.asIntN(64, v);
}

export class MessageId {
  /** Unsigned 64-bit values as on the wire (the earliest position is 2^64-1, i.e. -1 signed). */
  readonly ledgerId: bigint;
  readonly entryId: bigint;
  readonly partition: number;
  /** -1 unless the message came in a batch. */
  readonly batchIndex: number;
  /** Number of messages in the batch (0 when not batched or unknown). */
  readonly batchSize: number;

  constructor(ledgerId: bigint, entryId: bigint, partition = -1, batchIndex = -1, batchSize = 0) {
    this.ledgerId = ledgerId < 0n ? BigInt.asUintN(64, ledgerId) : ledgerId;
    this.entryId = entryId < 0n ? BigInt.asUintN(64, entryId) : entryId;
    this.partition = partition;
    this.batchIndex = batchIndex;
    this.batchSize = batchSize;
  }

  /** The oldest position of a topic. */
  static readonly earliest = new MessageId(U64_MAX, U64_MAX);
  /** The position after the newest message of a topic. */
  static readonly latest = new MessageId((1n << 63n) - 1n, (1n << 63n) - 1n);

  /** Stable string form `ledger:entry:partition:batchIndex` (signed, so earliest is `-1:-1:-1:-1`). */
  toString(): string {
    return `${signed(this.ledgerId)}:${signed(this.entryId)}:${this.partition}:${this.batchIndex}`;
  }

  static fromString(s: string): MessageId {
    const m = /^(-?\d+):(-?\d+):(-?\d+):(-?\d+)$/.exec(s);
    if (!m) {
      throw new PulsarError(
        PulsarErrorCode.InvalidArgument,
        `invalid message id '${s}': expected ledger:entry:partition:batchIndex`,
      );
    }
    return new MessageId(BigInt(m[1] as string), BigInt(m[2] as string), Number(m[3]), Number(m[4]));
  }

  /** The protocol's MessageIdData encoding (what other Pulsar clients' toByteArray produce). */
  serialize(): Uint8Array {
    return MessageIdData.encode(this.toData()).finish();
  }

  static deserialize(bytes: Uint8Array): MessageId {
    let d: MessageIdData;
    try {
      d = MessageIdData.decode(bytes);
    } catch (e) {
      throw new PulsarError(
        PulsarErrorCode.InvalidArgument,
        'undecodable serialized message id',
        {},
        { cause: e },
      );
    }
    return MessageId.fromData(d);
  }

  static fromData(d: MessageIdData, partition?: number): MessageId {
    return new MessageId(
      d.ledgerId,
      d.entryId,
      partition ?? d.partition ?? -1,
      d.batchIndex ?? -1,
      d.batchSize ?? 0,
    );
  }

  toData(ackSet?: bigint[]): MessageIdData {
    const d: MessageIdData = {
      ledgerId: this.ledgerId,
      entryId: this.entryId,
      partition: this.partition,
      batchIndex: this.batchIndex,
      ackSet: ackSet ?? [],
    };
    if (this.batchSize > 0) d.batchSize = this.batchSize;
    return d;
  }

  equals(other: MessageId): boolean {
    return this.compare(other) === 0 && this.partition === other.partition;
  }

  /** Orders by ledger, entry, then batch index (partition is not compared: ids of one partition only). */
  compare(other: MessageId): number {
    const a = signed(this.ledgerId);
    const b = signed(other.ledgerId);
    if (a !== b) return a < b ? -1 : 1;
    const c = signed(this.entryId);
    const d = signed(other.entryId);
    if (c !== d) return c < d ? -1 : 1;
    return this.batchIndex - other.batchIndex;
  }
}
