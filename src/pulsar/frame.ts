// Frame codec of the Pulsar binary protocol. Pure: bytes in, commands out, and back.
//
// Simple command:  [totalSize u32][commandSize u32][BaseCommand]
// Payload command: [totalSize u32][commandSize u32][BaseCommand]
//                  ([0x0e02 u16][size u32][BrokerEntryMetadata])?   only if the client asked for it
//                  ([0x0e01 u16][CRC32C u32])?                        checksum of everything after it
//                  [metadataSize u32][MessageMetadata][payload]
// All integers big-endian; totalSize counts every byte after itself.

import { crc32c } from './crc32c.ts';
import { FrameError, PulsarErrorCode } from './errors.ts';
import { type MessageMeta, parseMessageMetadata } from './metadata.ts';
import {
  BaseCommand,
  BaseCommand_Type,
  BrokerEntryMetadata,
  MessageMetadata,
} from './proto/generated/PulsarApi.ts';

export const MAGIC_CRC32C = 0x0e01;
export const MAGIC_BROKER_ENTRY_METADATA = 0x0e02;
/** Pulsar's default maxMessageSize (5 MiB) plus the protocol's 10 KiB of room for command and metadata. */
export const DEFAULT_MAX_FRAME_SIZE = 5 * 1024 * 1024 + 10 * 1024;
/** Bytes the frame header and metadata may add on top of the broker's max_message_size. */
export const FRAME_PADDING = 10 * 1024;

export interface Frame {
  command: BaseCommand;
  /** Payload commands only. */
  metadata?: MessageMeta;
  /** Payload commands only: the message (or batch) bytes, a view into the received buffer. */
  payload?: Uint8Array;
  brokerEntryMetadata?: BrokerEntryMetadata;
  /**
   * Set when a payload frame's checksum does not match (or its metadata cannot be read): the command itself is
   * intact (it is outside the checksummed range) so the caller knows which message to discard.
   */
  corrupt?: FrameError;
}

function u32(b: Uint8Array, off: number): number {
  return (
    (((b[off] as number) << 24) |
      ((b[off + 1] as number) << 16) |
      ((b[off + 2] as number) << 8) |
      (b[off + 3] as number)) >>>
    0
  );
}

function u16(b: Uint8Array, off: number): number {
  return ((b[off] as number) << 8) | (b[off + 1] as number);
}

function putU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = (v >>> 16) & 0xff;
  b[off + 2] = (v >>> 8) & 0xff;
  b[off + 3] = v & 0xff;
}

const COMMAND_NAMES = new Map<number, string>(Object.entries(BaseCommand_Type).map(([k, v]) => [v, k]));

/** The protocol name of a BaseCommand type ('SUBSCRIBE'), for errors and logs. */
export function commandName(type: number): string {
  return COMMAND_NAMES.get(type) ?? `type ${type}`;
}

/** Encodes a command without payload into one complete frame. */
export function encodeCommand(command: BaseCommand): Uint8Array {
  const cmd = BaseCommand.encode(command).finish();
  const frame = new Uint8Array(8 + cmd.length);
  putU32(frame, 0, 4 + cmd.length);
  putU32(frame, 4, cmd.length);
  frame.set(cmd, 8);
  return frame;
}

/**
 * ts-proto omits optional fields equal to their proto2 default, and num_messages_in_batch defaults to 1: a
 * batch of one message would then look like a single message to every consumer (Java included), which would
 * read the batch framing as payload. The field (11, varint 1) is appended; protobuf allows any field order.
 */
function withBatchOfOne(meta: Uint8Array): Uint8Array {
  const out = new Uint8Array(meta.length + 2);
  out.set(meta, 0);
  out[meta.length] = (11 << 3) | 0;
  out[meta.length + 1] = 1;
  return out;
}

/**
 * Encodes a payload command (SEND). Returns the frame as parts to be written in order: the header (sizes,
 * command, magic, checksum, metadata) and the payload parts themselves, which are not copied.
 */
export function encodePayloadCommand(
  command: BaseCommand,
  metadata: MessageMetadata,
  payload: Uint8Array | readonly Uint8Array[],
): Uint8Array[] {
  const parts = payload instanceof Uint8Array ? [payload] : payload;
  const cmd = BaseCommand.encode(command).finish();
  let meta: Uint8Array = MessageMetadata.encode(metadata).finish();
  if (metadata.numMessagesInBatch === 1) meta = withBatchOfOne(meta);
  let payloadSize = 0;
  for (const p of parts) payloadSize += p.length;
  const headerSize = 4 + 4 + cmd.length + 2 + 4 + 4 + meta.length;
  const header = new Uint8Array(headerSize);
  putU32(header, 0, headerSize - 4 + payloadSize);
  putU32(header, 4, cmd.length);
  header.set(cmd, 8);
  let off = 8 + cmd.length;
  header[off] = MAGIC_CRC32C >>> 8;
  header[off + 1] = MAGIC_CRC32C & 0xff;
  const crcOff = off + 2;
  off += 6;
  const checksummedStart = off;
  putU32(header, off, meta.length);
  header.set(meta, off + 4);
  let crc = crc32c(header, 0, checksummedStart, headerSize);
  for (const p of parts) crc = crc32c(p, crc);
  putU32(header, crcOff, crc);
  return [header, ...parts];
}

/**
 * Parses one frame body (the bytes after totalSize). Throws FrameError when the bytes are not a frame; a bad
 * checksum is not thrown but reported in `corrupt`, so one message is lost, not the connection.
 */
export function decodeFrame(body: Uint8Array): Frame {
  if (body.length < 4) {
    throw new FrameError(PulsarErrorCode.FrameInvalid, `frame of ${body.length} bytes has no command size`);
  }
  const cmdSize = u32(body, 0);
  if (cmdSize > body.length - 4) {
    throw new FrameError(
      PulsarErrorCode.FrameInvalid,
      `command size ${cmdSize} exceeds the frame's ${body.length - 4} remaining bytes`,
    );
  }
  let command: BaseCommand;
  try {
    command = BaseCommand.decode(body.subarray(4, 4 + cmdSize));
  } catch (e) {
    throw new FrameError(
      PulsarErrorCode.FrameInvalid,
      `undecodable command: ${(e as Error).message}`,
      {},
      { cause: e },
    );
  }
  let off = 4 + cmdSize;
  if (off === body.length) return { command };

  const frame: Frame = { command };
  const what = () => commandName(command.type);
  if (off + 2 <= body.length && u16(body, off) === MAGIC_BROKER_ENTRY_METADATA) {
    if (off + 6 > body.length) {
      throw new FrameError(PulsarErrorCode.FrameInvalid, `${what()}: truncated broker entry metadata`);
    }
    const size = u32(body, off + 2);
    if (size > body.length - off - 6) {
      throw new FrameError(
        PulsarErrorCode.FrameInvalid,
        `${what()}: broker entry metadata size ${size} too large`,
      );
    }
    try {
      frame.brokerEntryMetadata = BrokerEntryMetadata.decode(body.subarray(off + 6, off + 6 + size));
    } catch (e) {
      throw new FrameError(
        PulsarErrorCode.FrameInvalid,
        `${what()}: undecodable broker entry metadata`,
        {},
        { cause: e },
      );
    }
    off += 6 + size;
  }
  if (off + 2 <= body.length && u16(body, off) === MAGIC_CRC32C) {
    if (off + 6 > body.length)
      throw new FrameError(PulsarErrorCode.FrameInvalid, `${what()}: truncated checksum`);
    const expected = u32(body, off + 2);
    off += 6;
    const actual = crc32c(body, 0, off, body.length);
    if (actual !== expected) {
      frame.corrupt = new FrameError(
        PulsarErrorCode.ChecksumMismatch,
        `${what()}: CRC32C mismatch (frame says ${expected.toString(16)}, computed ${actual.toString(16)})`,
      );
      return frame;
    }
  }
  if (off + 4 > body.length) {
    frame.corrupt = new FrameError(PulsarErrorCode.FrameInvalid, `${what()}: truncated metadata size`);
    return frame;
  }
  const metaSize = u32(body, off);
  if (metaSize > body.length - off - 4) {
    frame.corrupt = new FrameError(
      PulsarErrorCode.FrameInvalid,
      `${what()}: metadata size ${metaSize} too large`,
    );
    return frame;
  }
  try {
    frame.metadata = parseMessageMetadata(body, off + 4, off + 4 + metaSize);
  } catch (e) {
    frame.corrupt = new FrameError(
      PulsarErrorCode.FrameInvalid,
      `${what()}: undecodable message metadata: ${(e as Error).message}`,
      {},
      { cause: e },
    );
    return frame;
  }
  frame.payload = body.subarray(off + 4 + metaSize);
  return frame;
}

/**
 * Splits a byte stream into frame bodies. Bodies that arrive whole inside one chunk are views (no copy);
 * a body split over chunks is copied once into a buffer of its exact size.
 */
export class FrameDecoder {
  maxFrameSize: number;
  #body: Uint8Array | null = null;
  #filled = 0;
  readonly #header = new Uint8Array(4);
  #headerFilled = 0;

  constructor(maxFrameSize = DEFAULT_MAX_FRAME_SIZE) {
    this.maxFrameSize = maxFrameSize;
  }

  /** True when no partial frame is buffered. */
  get idle(): boolean {
    return this.#body === null && this.#headerFilled === 0;
  }

  /** Feeds bytes; calls onBody for each complete frame body. Throws FrameError on an impossible size. */
  push(chunk: Uint8Array, onBody: (body: Uint8Array) => void): void {
    let off = 0;
    const len = chunk.length;
    while (off < len) {
      const body = this.#body;
      if (body !== null) {
        const n = Math.min(body.length - this.#filled, len - off);
        body.set(chunk.subarray(off, off + n), this.#filled);
        this.#filled += n;
        off += n;
        if (this.#filled === body.length) {
          this.#body = null;
          onBody(body);
        }
        continue;
      }
      let size: number;
      if (this.#headerFilled > 0 || len - off < 4) {
        while (this.#headerFilled < 4 && off < len)
          this.#header[this.#headerFilled++] = chunk[off++] as number;
        if (this.#headerFilled < 4) return;
        this.#headerFilled = 0;
        size = u32(this.#header, 0);
      } else {
        size = u32(chunk, off);
        off += 4;
      }
      this.#checkSize(size);
      if (len - off >= size) {
        const whole = chunk.subarray(off, off + size);
        off += size;
        onBody(whole);
      } else {
        this.#body = new Uint8Array(size);
        this.#filled = 0;
      }
    }
  }

  #checkSize(size: number): void {
    if (size < 4)
      throw new FrameError(PulsarErrorCode.FrameInvalid, `frame size ${size} is below the minimum of 4`);
    if (size > this.maxFrameSize) {
      throw new FrameError(
        PulsarErrorCode.FrameTooLarge,
        `frame size ${size} exceeds the max frame size ${this.maxFrameSize}`,
      );
    }
  }
}
