// Fast, presence-aware readers for the two messages decoded once per received message: MessageMetadata and
// SingleMessageMetadata (one per message of a batch). The ts-proto decoders fill proto2 defaults, so "absent"
// and "default" look alike (a batch of one vs. a single message), and they allocate bigints; these readers
// decode straight into plain numbers and strings. Field numbers are those of PulsarApi.proto. Pure.

import { FrameError, PulsarErrorCode } from './errors.ts';

export interface MessageMeta {
  producerName: string;
  sequenceId: number;
  publishTime: number;
  properties: Record<string, string>;
  partitionKey: string | undefined;
  partitionKeyB64: boolean;
  orderingKey: Uint8Array | undefined;
  /** 0 when absent. */
  eventTime: number;
  compression: number;
  uncompressedSize: number;
  /** -1 when the entry is a single message (field absent), else the number of messages in the batch. */
  numMessagesInBatch: number;
  encrypted: boolean;
  nullValue: boolean;
  /** -1 when absent. */
  markerType: number;
  deliverAtTime: number;
  /** Chunking (issue 5): set when the message is one chunk of a large message. */
  uuid: string | undefined;
  numChunksFromMsg: number;
  totalChunkMsgSize: number;
  chunkId: number;
}

export interface SingleMeta {
  properties: Record<string, string>;
  partitionKey: string | undefined;
  payloadSize: number;
  compactedOut: boolean;
  eventTime: number;
  orderingKey: Uint8Array | undefined;
  sequenceId: number;
  nullValue: boolean;
}

/** Shared by every message without properties: do not mutate. */
export const EMPTY_PROPERTIES: Record<string, string> = Object.freeze({}) as Record<string, string>;

const utf8 = new TextDecoder('utf-8');

function bad(what: string): FrameError {
  return new FrameError(PulsarErrorCode.FrameInvalid, `malformed ${what}`);
}

/** Cursor over protobuf bytes. Reused, so one allocation per decoder, not per field. */
class Reader {
  buf: Uint8Array = new Uint8Array(0);
  pos = 0;
  end = 0;
  what = '';

  reset(buf: Uint8Array, start: number, end: number, what: string): void {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.what = what;
  }

  /** Varint as a number (exact up to 2^53; callers only read values that fit). */
  varint(): number {
    const b = this.buf;
    let pos = this.pos;
    if (pos >= this.end) throw bad(this.what);
    let byte = b[pos++] as number;
    if (byte < 0x80) {
      this.pos = pos;
      return byte;
    }
    let result = byte & 0x7f;
    let shift = 7;
    let mul = 128;
    for (;;) {
      if (pos >= this.end) throw bad(this.what);
      byte = b[pos++] as number;
      if (shift < 28) result |= (byte & 0x7f) << shift;
      else result += (byte & 0x7f) * mul;
      if (byte < 0x80) break;
      shift += 7;
      mul *= 128;
      if (shift > 63) throw bad(this.what);
    }
    this.pos = pos;
    return shift < 28 ? result >>> 0 : result;
  }

  /** int32 encoded as varint. Negative values (10 bytes on the wire) are never valid here: read as -1. */
  int32(): number {
    const v = this.varint();
    return v > 0x7fffffff ? -1 : v;
  }

  lengthDelimited(): number {
    const len = this.varint();
    const start = this.pos;
    if (len > this.end - start) throw bad(this.what);
    this.pos = start + len;
    return start;
  }

  string(): string {
    const start = this.lengthDelimited();
    const end = this.pos;
    const b = this.buf;
    if (end - start < 48) {
      let s = '';
      for (let i = start; i < end; i++) {
        const c = b[i] as number;
        if (c >= 0x80) return utf8.decode(b.subarray(start, end));
        s += String.fromCharCode(c);
      }
      return s;
    }
    return utf8.decode(b.subarray(start, end));
  }

  bytes(): Uint8Array {
    const start = this.lengthDelimited();
    return this.buf.subarray(start, this.pos);
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.lengthDelimited();
        return;
      case 5:
        this.pos += 4;
        break;
      default:
        throw bad(`${this.what} (wire type ${wireType})`);
    }
    if (this.pos > this.end) throw bad(this.what);
  }

  /** A KeyValue sub-message, added to `into`. */
  keyValue(into: Record<string, string>): void {
    const start = this.lengthDelimited();
    const end = this.pos;
    const outerEnd = this.end;
    this.pos = start;
    this.end = end;
    let key = '';
    let value = '';
    while (this.pos < end) {
      const tag = this.varint();
      if (tag === 10) key = this.string();
      else if (tag === 18) value = this.string();
      else this.skip(tag & 7);
    }
    this.end = outerEnd;
    this.pos = end;
    into[key] = value;
  }
}

const reader = new Reader();

export function parseMessageMetadata(buf: Uint8Array, start = 0, end = buf.length): MessageMeta {
  const r = reader;
  r.reset(buf, start, end, 'MessageMetadata');
  const m: MessageMeta = {
    producerName: '',
    sequenceId: 0,
    publishTime: 0,
    properties: EMPTY_PROPERTIES,
    partitionKey: undefined,
    partitionKeyB64: false,
    orderingKey: undefined,
    eventTime: 0,
    compression: 0,
    uncompressedSize: 0,
    numMessagesInBatch: -1,
    encrypted: false,
    nullValue: false,
    markerType: -1,
    deliverAtTime: 0,
    uuid: undefined,
    numChunksFromMsg: 0,
    totalChunkMsgSize: 0,
    chunkId: 0,
  };
  while (r.pos < r.end) {
    const tag = r.varint();
    switch (tag) {
      case 10:
        m.producerName = r.string();
        break;
      case 16:
        m.sequenceId = r.varint();
        break;
      case 24:
        m.publishTime = r.varint();
        break;
      case 34:
        if (m.properties === EMPTY_PROPERTIES) m.properties = {};
        r.keyValue(m.properties);
        break;
      case 50:
        m.partitionKey = r.string();
        break;
      case 64:
        m.compression = r.varint();
        break;
      case 72:
        m.uncompressedSize = r.varint();
        break;
      case 88:
        m.numMessagesInBatch = r.int32();
        break;
      case 96:
        m.eventTime = r.varint();
        break;
      case 106:
        m.encrypted = true;
        r.skip(2);
        break;
      case 136: // 17 partition_key_b64_encoded
        m.partitionKeyB64 = r.varint() !== 0;
        break;
      case 146: // 18 ordering_key
        m.orderingKey = r.bytes();
        break;
      case 152: // 19 deliver_at_time
        m.deliverAtTime = r.varint();
        break;
      case 160: // 20 marker_type
        m.markerType = r.int32();
        break;
      case 200: // 25 null_value
        m.nullValue = r.varint() !== 0;
        break;
      case 210: // 26 uuid
        m.uuid = r.string();
        break;
      case 216: // 27 num_chunks_from_msg
        m.numChunksFromMsg = r.int32();
        break;
      case 224: // 28 total_chunk_msg_size
        m.totalChunkMsgSize = r.int32();
        break;
      case 232: // 29 chunk_id
        m.chunkId = r.int32();
        break;
      default:
        if (tag === 0 || tag >>> 3 === 0) throw bad('MessageMetadata (field 0)');
        r.skip(tag & 7);
    }
  }
  return m;
}

/**
 * Reads the SingleMessageMetadata of a batch entry starting at `start` (after its 4-byte size), up to `end`.
 */
export function parseSingleMessageMetadata(buf: Uint8Array, start: number, end: number): SingleMeta {
  const r = reader;
  r.reset(buf, start, end, 'SingleMessageMetadata');
  const m: SingleMeta = {
    properties: EMPTY_PROPERTIES,
    partitionKey: undefined,
    payloadSize: -1,
    compactedOut: false,
    eventTime: 0,
    orderingKey: undefined,
    sequenceId: 0,
    nullValue: false,
  };
  while (r.pos < r.end) {
    const tag = r.varint();
    switch (tag) {
      case 10:
        if (m.properties === EMPTY_PROPERTIES) m.properties = {};
        r.keyValue(m.properties);
        break;
      case 18:
        m.partitionKey = r.string();
        break;
      case 24:
        m.payloadSize = r.int32();
        break;
      case 32:
        m.compactedOut = r.varint() !== 0;
        break;
      case 40:
        m.eventTime = r.varint();
        break;
      case 58:
        m.orderingKey = r.bytes();
        break;
      case 64:
        m.sequenceId = r.varint();
        break;
      case 72:
        m.nullValue = r.varint() !== 0;
        break;
      default:
        if (tag === 0 || tag >>> 3 === 0) throw bad('SingleMessageMetadata (field 0)');
        r.skip(tag & 7);
    }
  }
  if (m.payloadSize < 0) throw bad('SingleMessageMetadata (no payload_size)');
  return m;
}
