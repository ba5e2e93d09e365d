// Fuzzing of the Pulsar frame decoder: random and mutated frames through the stream splitter (FrameDecoder), the
// frame parser (decodeFrame, which decodes the BaseCommand, the broker entry metadata, the checksum and the
// MessageMetadata) and what the connection and the consumer read next (the command's name and request id, the
// batch's single-message metadata). Shared by the CI run (test/unit/pulsar/fuzz.test.ts) and `make fuzz`
// (scripts/fuzz-frames.ts).
//
// Inputs are built from valid frames made with the project's own encoders and mutated (bit flips, bytes set to
// edge values, truncation, length fields off by ±1 or made huge, duplicated or spliced parts, checksums fixed
// after a mutation so the metadata parser is reached). Input i of a run is a pure function of (seed, i): a
// finding is reproduced with fuzzInput(seed, i).

import * as cmds from '../../src/pulsar/commands.ts';
import { crc32c } from '../../src/pulsar/crc32c.ts';
import { FrameError, PulsarErrorCode } from '../../src/pulsar/errors.ts';
import {
  commandName,
  decodeFrame,
  encodeCommand,
  encodePayloadCommand,
  FrameDecoder,
  MAGIC_BROKER_ENTRY_METADATA,
  MAGIC_CRC32C,
} from '../../src/pulsar/frame.ts';
import { parseSingleMessageMetadata } from '../../src/pulsar/metadata.ts';
import {
  type BaseCommand,
  BaseCommand_Type,
  BrokerEntryMetadata,
  CommandLookupTopicResponse_LookupType,
  type MessageMetadata,
  ServerError,
  SingleMessageMetadata,
} from '../../src/pulsar/proto/generated/PulsarApi.ts';

/** The codes the decoder may refuse bytes with; any other exception is a finding. */
export const EXPECTED_CODES: ReadonlySet<string> = new Set([
  PulsarErrorCode.FrameInvalid,
  PulsarErrorCode.FrameTooLarge,
  PulsarErrorCode.ChecksumMismatch,
]);

/** The decoders' limit in the fuzz runs: small, so that "huge" length fields are exercised cheaply too. */
export const FUZZ_MAX_FRAME_SIZE = 64 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// Deterministic randomness

/** A 32-bit mix of two numbers (splitmix-like), to seed one input from (run seed, index). */
function mix(a: number, b: number): number {
  let h = (a ^ Math.imul(b + 0x9e3779b9, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** mulberry32: small, fast, good enough to pick mutations. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  u32(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** 0 <= n < max */
  below(max: number): number {
    return max <= 0 ? 0 : this.u32() % max;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)] as T;
  }
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The corpus: valid frames and where their length fields and checksum are

export interface Seed {
  name: string;
  bytes: Uint8Array;
  /** Offsets of the big-endian u32 length fields (totalSize, commandSize, metadata sizes...). */
  lengths: number[];
  /** The checksum field and the range it covers (payload frames). */
  crc?: { at: number; from: number } | undefined;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function u32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

function putU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = (v >>> 16) & 0xff;
  b[off + 2] = (v >>> 8) & 0xff;
  b[off + 3] = v & 0xff;
}

function simple(name: string, command: BaseCommand): Seed {
  return { name, bytes: encodeCommand(command), lengths: [0, 4] };
}

function meta(over: Partial<MessageMetadata> = {}): MessageMetadata {
  return {
    producerName: 'fuzz-producer',
    sequenceId: 42n,
    publishTime: 1_700_000_000_000n,
    properties: [],
    replicateTo: [],
    encryptionKeys: [],
    ...over,
  };
}

/** A payload frame, with the offsets of its length fields and checksum; optionally with broker entry metadata. */
function payloadFrame(
  name: string,
  command: BaseCommand,
  metadata: MessageMetadata,
  payload: Uint8Array,
  opts: { brokerEntry?: boolean; batchSizes?: number[] } = {},
): Seed {
  let bytes = concat(encodePayloadCommand(command, metadata, payload));
  const cmdSize = u32(bytes, 4);
  let magicAt = 8 + cmdSize;
  const lengths = [0, 4];
  if (opts.brokerEntry) {
    const bem = BrokerEntryMetadata.encode({ brokerTimestamp: 1_700_000_000_123n, index: 77n }).finish();
    const head = new Uint8Array(6);
    head[0] = MAGIC_BROKER_ENTRY_METADATA >>> 8;
    head[1] = MAGIC_BROKER_ENTRY_METADATA & 0xff;
    putU32(head, 2, bem.length);
    bytes = concat([bytes.subarray(0, magicAt), head, bem, bytes.subarray(magicAt)]);
    putU32(bytes, 0, bytes.length - 4);
    lengths.push(magicAt + 2);
    magicAt += 6 + bem.length;
  }
  if (((bytes[magicAt]! << 8) | bytes[magicAt + 1]!) !== MAGIC_CRC32C)
    throw new Error(`${name}: no checksum`);
  const metaSizeAt = magicAt + 6;
  lengths.push(metaSizeAt);
  // The single-message metadata sizes of a batch, in the payload after the metadata.
  let off = metaSizeAt + 4 + u32(bytes, metaSizeAt);
  for (const size of opts.batchSizes ?? []) {
    lengths.push(off);
    off += 4 + u32(bytes, off) + size;
  }
  return { name, bytes, lengths, crc: { at: magicAt + 2, from: magicAt + 6 } };
}

/** A batch payload: for each message, [size u32][SingleMessageMetadata][payload]. */
function batch(messages: { payload: Uint8Array; key?: string; properties?: Record<string, string> }[]): {
  bytes: Uint8Array;
  sizes: number[];
} {
  const parts: Uint8Array[] = [];
  for (const m of messages) {
    const sm = SingleMessageMetadata.encode({
      properties: cmds.toKeyValues(m.properties),
      partitionKey: m.key,
      payloadSize: m.payload.length,
      eventTime: 1_700_000_000_500n,
    }).finish();
    const size = new Uint8Array(4);
    putU32(size, 0, sm.length);
    parts.push(size, sm, m.payload);
  }
  return { bytes: concat(parts), sizes: messages.map((m) => m.payload.length) };
}

const te = new TextEncoder();
const messageId = { ledgerId: 123n, entryId: 456n, partition: -1, batchIndex: -1, ackSet: [] };

function message(consumerId = 9n): BaseCommand {
  return {
    type: BaseCommand_Type.MESSAGE,
    message: { consumerId, messageId: { ...messageId }, redeliveryCount: 2, ackSet: [] },
  };
}

/** Valid frames of every kind the client sends and receives, built with the project's encoders. */
export function corpus(): Seed[] {
  const threeInBatch = batch([
    { payload: te.encode('{"a":1}'), key: 'k1', properties: { p: 'v' } },
    { payload: new Uint8Array(0) },
    { payload: Uint8Array.from([0, 1, 2, 0xff]), key: 'k3' },
  ]);
  return [
    { name: 'PING', bytes: cmds.PING_FRAME, lengths: [0, 4] },
    { name: 'PONG', bytes: cmds.PONG_FRAME, lengths: [0, 4] },
    simple('CONNECT', cmds.connect({ authMethodName: 'token', authData: te.encode('secret') })),
    simple('FLOW', cmds.flow(7n, 500)),
    simple('LOOKUP', cmds.lookup('persistent://public/default/fuzz', 3n, true)),
    simple('PARTITIONED_METADATA', cmds.partitionedMetadata('persistent://public/default/fuzz', 4n)),
    simple(
      'SUBSCRIBE',
      cmds.subscribe({
        topic: 'persistent://public/default/fuzz',
        subscription: 'sub',
        subscriptionType: 'Key_Shared',
        consumerId: 1n,
        requestId: 5n,
        initialPosition: 'Earliest',
        durable: true,
        keySharedPolicy: { mode: 'Sticky', ranges: [[0, 100]] },
      }),
    ),
    simple('ACK', cmds.ack(1n, 0, [{ ...messageId, ackSet: [3n, -1n] }])),
    simple('REDELIVER', cmds.redeliver(1n, [{ ...messageId }])),
    simple('SEEK', cmds.seek(1n, 6n, 1_700_000_000_000n)),
    simple(
      'PRODUCER',
      cmds.producer({ topic: 'persistent://public/default/fuzz', producerId: 2n, requestId: 7n }),
    ),
    simple('CLOSE_PRODUCER', cmds.closeProducer(2n, 8n)),
    simple('GET_LAST_MESSAGE_ID', cmds.getLastMessageId(1n, 9n)),
    simple('CONNECTED', {
      type: BaseCommand_Type.CONNECTED,
      connected: {
        serverVersion: 'Pulsar Server4.0.8',
        protocolVersion: 21,
        maxMessageSize: 5 * 1024 * 1024,
      },
    }),
    simple('SUCCESS', { type: BaseCommand_Type.SUCCESS, success: { requestId: 5n } }),
    simple('ERROR', {
      type: BaseCommand_Type.ERROR,
      error: { requestId: 5n, error: ServerError.TopicNotFound, message: 'Topic not found' },
    }),
    simple('LOOKUP_RESPONSE', {
      type: BaseCommand_Type.LOOKUP_RESPONSE,
      lookupTopicResponse: {
        requestId: 3n,
        brokerServiceUrl: 'pulsar://127.0.0.1:6650',
        response: CommandLookupTopicResponse_LookupType.Connect,
        authoritative: true,
      },
    }),
    simple('PARTITIONED_METADATA_RESPONSE', {
      type: BaseCommand_Type.PARTITIONED_METADATA_RESPONSE,
      partitionMetadataResponse: { requestId: 4n, partitions: 3 },
    }),
    simple('PRODUCER_SUCCESS', {
      type: BaseCommand_Type.PRODUCER_SUCCESS,
      producerSuccess: { requestId: 7n, producerName: 'standalone-0-1', lastSequenceId: -1n },
    }),
    simple('SEND_RECEIPT', {
      type: BaseCommand_Type.SEND_RECEIPT,
      sendReceipt: { producerId: 2n, sequenceId: 1n, messageId: { ...messageId } },
    }),
    simple('CLOSE_CONSUMER', {
      type: BaseCommand_Type.CLOSE_CONSUMER,
      closeConsumer: { consumerId: 1n, requestId: 0n },
    }),
    simple('ACTIVE_CONSUMER_CHANGE', {
      type: BaseCommand_Type.ACTIVE_CONSUMER_CHANGE,
      activeConsumerChange: { consumerId: 1n, isActive: true },
    }),
    simple('GET_LAST_MESSAGE_ID_RESPONSE', {
      type: BaseCommand_Type.GET_LAST_MESSAGE_ID_RESPONSE,
      getLastMessageIdResponse: { requestId: 9n, lastMessageId: { ...messageId } },
    }),
    simple('AUTH_CHALLENGE', {
      type: BaseCommand_Type.AUTH_CHALLENGE,
      authChallenge: { challenge: { authMethodName: 'token', authData: Buffer.from('refresh') } },
    }),
    payloadFrame(
      'MESSAGE single',
      message(),
      meta({
        partitionKey: 'key-1',
        eventTime: 1_700_000_000_001n,
        properties: cmds.toKeyValues({ a: 'b' }),
      }),
      te.encode('hello fuzz'),
    ),
    payloadFrame('MESSAGE empty', message(), meta(), new Uint8Array(0)),
    payloadFrame('MESSAGE batch of 3', message(), meta({ numMessagesInBatch: 3 }), threeInBatch.bytes, {
      batchSizes: threeInBatch.sizes,
    }),
    payloadFrame(
      'MESSAGE batch of 1 with broker entry metadata',
      message(),
      meta({ numMessagesInBatch: 1 }),
      batch([{ payload: te.encode('solo') }]).bytes,
      { brokerEntry: true, batchSizes: [4] },
    ),
    payloadFrame(
      'MESSAGE chunk',
      message(),
      meta({ uuid: 'fuzz-uuid', numChunksFromMsg: 3, totalChunkMsgSize: 30, chunkId: 1 }),
      te.encode('0123456789'),
    ),
    payloadFrame(
      'MESSAGE compressed',
      message(),
      meta({ compression: 1, uncompressedSize: 64 }),
      te.encode('lz4?'),
    ),
    payloadFrame(
      'SEND',
      cmds.send(1n, 2n, 1),
      meta({ numMessagesInBatch: 1 }),
      batch([{ payload: te.encode('A') }]).bytes,
      {
        batchSizes: [1],
      },
    ),
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Mutations

const EDGE_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x0e, 0x02];

function edgeLength(rng: Rng, current: number, frameLength: number): number {
  return (
    rng.pick([
      current + 1,
      current - 1,
      0,
      1,
      3,
      4,
      frameLength,
      frameLength + 1,
      FUZZ_MAX_FRAME_SIZE,
      FUZZ_MAX_FRAME_SIZE + 1,
      0x7fffffff,
      0x80000000,
      0xffffffff,
      current * 2,
      rng.u32(),
    ]) >>> 0
  );
}

type Mutation = (rng: Rng, b: Uint8Array, seed: Seed) => Uint8Array;

const MUTATIONS: readonly [string, Mutation][] = [
  [
    'bitflip',
    (rng, b) => {
      const n = 1 + rng.below(8);
      for (let i = 0; i < n && b.length > 0; i++) b[rng.below(b.length)]! ^= 1 << rng.below(8);
      return b;
    },
  ],
  [
    'edge-bytes',
    (rng, b) => {
      const n = 1 + rng.below(4);
      for (let i = 0; i < n && b.length > 0; i++) b[rng.below(b.length)] = rng.pick(EDGE_BYTES);
      return b;
    },
  ],
  ['truncate', (rng, b) => b.subarray(0, rng.below(b.length + 1))],
  [
    'length-field',
    (rng, b, seed) => {
      const at = rng.pick(seed.lengths);
      if (at + 4 <= b.length) putU32(b, at, edgeLength(rng, u32(b, at), b.length));
      return b;
    },
  ],
  [
    'duplicate-part',
    (rng, b) => {
      if (b.length === 0) return b;
      const from = rng.below(b.length);
      const to = from + 1 + rng.below(Math.min(64, b.length - from));
      const at = rng.below(b.length + 1);
      return concat([b.subarray(0, at), b.slice(from, to), b.subarray(at)]);
    },
  ],
  [
    'remove-part',
    (rng, b) => {
      if (b.length === 0) return b;
      const from = rng.below(b.length);
      const to = from + 1 + rng.below(Math.min(32, b.length - from));
      return concat([b.subarray(0, from), b.subarray(to)]);
    },
  ],
  ['random-tail', (rng, b) => concat([b.subarray(0, rng.below(b.length + 1)), rng.bytes(rng.below(64))])],
];

/** After mutating the checksummed range, the checksum is made right again, so the metadata parser is reached. */
function fixChecksum(b: Uint8Array, seed: Seed): void {
  const crc = seed.crc;
  if (!crc || crc.from > b.length) return;
  putU32(b, crc.at, crc32c(b, 0, crc.from, b.length));
}

export interface FuzzInput {
  /** What was done, for the report of a finding. */
  recipe: string;
  bytes: Uint8Array;
  /** Feed the decoder in chunks of this many bytes. */
  chunk: number;
}

let cachedCorpus: Seed[] | undefined;

/** Input `index` of the run `seed`: the same bytes every time. */
export function fuzzInput(seed: number, index: number): FuzzInput {
  if (!cachedCorpus) cachedCorpus = corpus();
  const seeds = cachedCorpus;
  const rng = new Rng(mix(seed, index));
  const kind = rng.below(100);
  let recipe: string;
  let bytes: Uint8Array;
  if (kind < 5) {
    bytes = rng.bytes(rng.below(512));
    recipe = 'random bytes';
  } else if (kind < 10) {
    // Random bytes behind a plausible size: reach decodeFrame rather than the size check.
    const body = rng.bytes(4 + rng.below(512));
    bytes = new Uint8Array(body.length + 4);
    putU32(bytes, 0, body.length);
    bytes.set(body, 4);
    recipe = 'random body';
  } else {
    const base = rng.pick(seeds);
    const parts = [base];
    // Sometimes several frames in a row: the splitter's boundaries and duplicated frames.
    while (rng.chance(0.15) && parts.length < 4) parts.push(rng.chance(0.5) ? base : rng.pick(seeds));
    bytes = concat(parts.map((p) => p.bytes));
    const steps: string[] = [parts.map((p) => p.name).join(' + ')];
    const n = kind < 20 ? 0 : 1 + rng.below(3);
    for (let i = 0; i < n; i++) {
      const [name, mutate] = rng.pick(MUTATIONS);
      bytes = mutate(rng, bytes, base);
      steps.push(name);
    }
    if (n > 0 && rng.chance(0.5)) {
      fixChecksum(bytes, base);
      steps.push('checksum fixed');
    }
    recipe = steps.join(', ');
  }
  const chunk = rng.chance(0.5) ? Math.max(1, bytes.length) : 1 + rng.below(Math.max(1, bytes.length));
  return { recipe, bytes, chunk };
}

// ---------------------------------------------------------------------------------------------------------------
// Running one input

export type Result = 'decoded' | 'corrupt' | 'incomplete' | `refused ${string}` | 'batch refused';

/** What the consumer does with a batch payload: each message's size, metadata and payload, within the bytes. */
function walkBatch(payload: Uint8Array, n: number): boolean {
  let off = 0;
  const end = payload.length;
  for (let i = 0; i < n; i++) {
    if (off + 4 > end) return false;
    const smSize = u32(payload, off);
    off += 4;
    if (smSize > end - off) return false;
    const sm = parseSingleMessageMetadata(payload, off, off + smSize);
    off += smSize;
    if (sm.payloadSize > end - off) return false;
    off += sm.payloadSize;
  }
  return true;
}

/**
 * Feeds one input through the decoder and what reads its frames. Returns how it ended; throws whatever else was
 * thrown (a finding).
 */
export function runInput(input: FuzzInput): Result {
  const d = new FrameDecoder(FUZZ_MAX_FRAME_SIZE);
  let frames = 0;
  let corrupt = false;
  let batchRefused = false;
  const onBody = (body: Uint8Array): void => {
    const f = decodeFrame(body);
    frames++;
    // What the connection reads of every command.
    commandName(f.command.type);
    cmds.responseRequestId(f.command);
    if (f.corrupt) {
      if (!(f.corrupt instanceof FrameError) || !EXPECTED_CODES.has(f.corrupt.code)) throw f.corrupt;
      corrupt = true;
      return;
    }
    if (f.metadata && f.payload && f.metadata.numMessagesInBatch >= 0) {
      try {
        if (!walkBatch(f.payload, f.metadata.numMessagesInBatch)) batchRefused = true;
      } catch (e) {
        if (!(e instanceof FrameError) || !EXPECTED_CODES.has(e.code)) throw e;
        batchRefused = true;
      }
    }
  };
  const { bytes, chunk } = input;
  try {
    for (let i = 0; i < bytes.length; i += chunk) d.push(bytes.subarray(i, i + chunk), onBody);
  } catch (e) {
    if (e instanceof FrameError && EXPECTED_CODES.has(e.code)) return `refused ${e.code}`;
    throw e;
  }
  if (corrupt) return 'corrupt';
  if (batchRefused) return 'batch refused';
  return frames > 0 ? 'decoded' : 'incomplete';
}

// ---------------------------------------------------------------------------------------------------------------
// A run

export interface FuzzStats {
  ran: number;
  /** Inputs by how they ended: decoded, corrupt (a frame flagged, the connection kept), refused <code>, ... */
  results: Record<string, number>;
}

export interface Finding {
  seed: number;
  index: number;
  recipe: string;
  hex: string;
  error: string;
}

export function describeFinding(seed: number, index: number, error: unknown): Finding {
  const input = fuzzInput(seed, index);
  const hex = Buffer.from(input.bytes.subarray(0, 512)).toString('hex');
  const e = error as { name?: string; code?: string; message?: string; stack?: string };
  return {
    seed,
    index,
    recipe: input.recipe,
    hex: input.bytes.length > 512 ? `${hex}… (${input.bytes.length} bytes)` : hex,
    error: e?.stack ?? `${e?.name ?? 'Error'}${e?.code ? ` ${e.code}` : ''}: ${e?.message ?? String(error)}`,
  };
}

/**
 * Runs inputs [from, to) of `seed`. Stops at the first finding and returns it. `onProgress(index)` is called
 * before each input (the hang watchdog of `make fuzz` reads it).
 */
export function runFuzz(
  seed: number,
  from: number,
  to: number,
  stats: FuzzStats,
  onProgress?: (index: number) => void,
): Finding | undefined {
  for (let i = from; i < to; i++) {
    onProgress?.(i);
    let result: Result;
    try {
      result = runInput(fuzzInput(seed, i));
    } catch (error) {
      return describeFinding(seed, i, error);
    }
    stats.ran++;
    stats.results[result] = (stats.results[result] ?? 0) + 1;
  }
  return undefined;
}
