// Producer: PRODUCER, SEND with receipts, batching by count, bytes and delay (optionally one batch per key),
// sequence ids, a bounded pending queue (send() waits when it is full), and resend of every unacknowledged send
// after a reconnect.

import { Backoff, isRetriable, type PulsarClient } from './client.ts';
import * as cmds from './commands.ts';
import { COMPRESSION_TYPES, type CompressionName, compress } from './compression.ts';
import type { Connection, ProducerHandler } from './connection.ts';
import { PulsarError, PulsarErrorCode, ServerError } from './errors.ts';
import { encodePayloadCommand } from './frame.ts';
import { MessageId } from './message-id.ts';
import type { HashingScheme } from './murmur3.ts';
import type {
  CommandSendError,
  CommandSendReceipt,
  CompressionType,
  MessageMetadata,
} from './proto/generated/PulsarApi.ts';
import { parseTopicName } from './topic.ts';

export interface ProducerOptions {
  topic: string;
  producerName?: string;
  /** Messages per batch; 1 disables batching. Default 1000. */
  batchingMaxMessages?: number;
  /** Bytes of payload per batch. Default 128 KiB. */
  batchingMaxBytes?: number;
  /** How long a batch waits for more messages. Default 10 ms. */
  batchingMaxDelayMs?: number;
  /**
   * One open batch per message key (the Java client's BatcherBuilder.KEY_BASED), each bounded by the count and
   * bytes limits on its own and all sent by the delay. A batch carries the key of its first message, and a
   * Key_Shared subscription gives the whole batch to that key's consumer: only batches of one key keep every key
   * with its own consumer. Messages without a key share one batch without a key. Default false: one batch of
   * whatever keys come.
   */
  batchingByKey?: boolean;
  /** Messages sent and not yet acknowledged by the broker; send() waits beyond this. Default 1000. */
  maxPendingMessages?: number;
  /** LZ4, ZLIB, ZSTD or SNAPPY compress each batch (or single message); default NONE. */
  compressionType?: CompressionName;
  /** Partitioned topics: how often new partitions are looked for. Default 60 s; 0 disables. */
  autoUpdatePartitionsIntervalMs?: number;
  /**
   * Partitioned topics: the key hash that picks a keyed message's partition. Default 'JavaStringHash', the
   * Java producer's own default, so both clients put a key on the same partition; 'Murmur3_32Hash' matches a Java
   * producer set to it.
   */
  hashingScheme?: HashingScheme;
}

export interface OutgoingMessage {
  payload: Uint8Array;
  key?: string | undefined;
  properties?: Record<string, string> | undefined;
  /** Milliseconds since the epoch. */
  eventTime?: number | undefined;
}

interface Callback {
  resolve: (id: MessageId) => void;
  reject: (e: Error) => void;
}

/** One SEND on the wire (a single message or a batch), kept until its receipt for a possible resend. */
interface OpSend {
  sequenceId: number;
  highestSequenceId: number;
  numMessages: number;
  batched: boolean;
  parts: Uint8Array[];
  callbacks: Callback[];
}

type State = 'connecting' | 'ready' | 'closing' | 'closed';

/** An open batch of one key (batchingByKey): its messages are numbered and encoded when it is sent. */
interface KeyBatch {
  key: string | undefined;
  messages: OutgoingMessage[];
  callbacks: Callback[];
  bytes: number;
}

const textEncoder = new TextEncoder();

/** Growable byte buffer for batch payloads: [u32 size][SingleMessageMetadata][payload]... */
class BatchBuffer {
  buf = new Uint8Array(64 * 1024);
  len = 0;

  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  byte(v: number): void {
    this.buf[this.len++] = v;
  }

  varint(v: number): void {
    while (v > 0x7f) {
      this.buf[this.len++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.len++] = v;
  }

  u32At(off: number, v: number): void {
    this.buf[off] = v >>> 24;
    this.buf[off + 1] = (v >>> 16) & 0xff;
    this.buf[off + 2] = (v >>> 8) & 0xff;
    this.buf[off + 3] = v & 0xff;
  }

  bytesField(tag: number, b: Uint8Array): void {
    this.ensure(b.length + 16);
    this.byte(tag);
    this.varint(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** Appends one message with its SingleMessageMetadata (fields 1 properties, 2 key, 3 size, 5 event time, 8 seq). */
  append(m: OutgoingMessage, sequenceId: number): void {
    this.ensure(64 + m.payload.length);
    const start = this.len;
    this.len += 4;
    if (m.properties) {
      for (const k in m.properties) {
        const kb = textEncoder.encode(k);
        const vb = textEncoder.encode(String(m.properties[k]));
        this.ensure(kb.length + vb.length + 16);
        this.byte(0x0a);
        this.varint(kb.length + vb.length + 2 + varintSize(kb.length) + varintSize(vb.length));
        this.bytesField(0x0a, kb);
        this.bytesField(0x12, vb);
      }
    }
    if (m.key !== undefined) this.bytesField(0x12, textEncoder.encode(m.key));
    this.ensure(32 + m.payload.length);
    this.byte(0x18);
    this.varint(m.payload.length);
    if (m.eventTime !== undefined && m.eventTime > 0) {
      this.byte(0x28);
      this.varint(m.eventTime);
    }
    this.byte(0x40);
    this.varint(sequenceId);
    this.u32At(start, this.len - start - 4);
    this.buf.set(m.payload, this.len);
    this.len += m.payload.length;
  }

  take(): Uint8Array {
    const out = this.buf.slice(0, this.len);
    this.len = 0;
    return out;
  }
}

function varintSize(v: number): number {
  let n = 1;
  while (v > 0x7f) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

export class Producer implements ProducerHandler {
  readonly topic: string;
  readonly #client: PulsarClient;
  readonly #id: bigint;
  readonly #maxMessages: number;
  readonly #maxBytes: number;
  readonly #maxDelay: number;
  readonly #maxPending: number;
  readonly #byKey: boolean;
  readonly #compression: number;
  readonly #backoff: Backoff;
  #name: string | undefined;
  #cnx: Connection | null = null;
  #state: State = 'connecting';
  #epoch = 0n;
  #nextSeq = 0;
  #pendingCount = 0;
  readonly #spaceWaiters: (() => void)[] = [];
  readonly #inflight: OpSend[] = [];
  #inflightHead = 0;
  // Open batch.
  readonly #batch = new BatchBuffer();
  #batchCallbacks: Callback[] = [];
  #batchFirstSeq = 0;
  #batchBytes = 0;
  /** The key of the open batch's first message: the batch's key, as the broker routes it on Key_Shared. */
  #batchKey: string | undefined;
  /** batchingByKey: the open batches, in the order of their first message. */
  readonly #keyBatches = new Map<string | undefined, KeyBatch>();
  #batchTimer: NodeJS.Timeout | null = null;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #flushWaiters: (() => void)[] = [];
  #connectedOnce = false;

  constructor(client: PulsarClient, opts: ProducerOptions, id: bigint) {
    this.#client = client;
    this.#id = id;
    this.topic = parseTopicName(opts?.topic).full;
    this.#name = opts.producerName;
    this.#maxMessages = Math.max(1, opts.batchingMaxMessages ?? 1000);
    this.#maxBytes = Math.max(1, opts.batchingMaxBytes ?? 128 * 1024);
    this.#maxDelay = Math.max(0, opts.batchingMaxDelayMs ?? 10);
    this.#maxPending = Math.max(1, opts.maxPendingMessages ?? 1000);
    this.#byKey = opts.batchingByKey === true;
    const c = opts.compressionType ?? 'NONE';
    if (!(c in COMPRESSION_TYPES)) {
      throw new PulsarError(
        PulsarErrorCode.InvalidArgument,
        `createProducer: unknown compressionType '${c}'`,
        {
          topic: this.topic,
        },
      );
    }
    this.#compression = COMPRESSION_TYPES[c];
    this.#backoff = new Backoff(client.initialBackoffMs, client.maxBackoffMs);
  }

  get producerName(): string | undefined {
    return this.#name;
  }

  /** Messages sent and not yet acknowledged (including the open batch). */
  get pending(): number {
    return this.#pendingCount;
  }

  get #where() {
    return { topic: this.topic, producer: this.#name };
  }

  /** @internal */
  async start(): Promise<void> {
    const partitions = await this.#client.partitions(this.topic);
    if (partitions > 0) {
      throw new PulsarError(
        PulsarErrorCode.InvalidArgument,
        `createProducer ${this.topic}: partitioned topics (${partitions} partitions) are not supported yet`,
        this.#where,
      );
    }
    const deadline = Date.now() + this.#client.operationTimeoutMs;
    for (;;) {
      try {
        await this.#connectOnce();
        return;
      } catch (e) {
        const delay = this.#backoff.next();
        if (!isRetriable(e, false) || Date.now() + delay > deadline) {
          this.#state = 'closed';
          throw e;
        }
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  async #connectOnce(): Promise<void> {
    const address = await this.#client.lookup(this.topic);
    const cnx = await this.#client.getConnection(address);
    const requestId = cnx.newRequestId();
    cnx.registerProducer(this.#id, this);
    let answer: Awaited<ReturnType<Connection['request']>>;
    try {
      answer = await cnx.request(
        cmds.producer({
          topic: this.topic,
          producerId: this.#id,
          requestId,
          producerName: this.#name,
          epoch: this.#epoch,
        }),
        requestId,
        { topic: this.topic },
      );
    } catch (e) {
      cnx.unregisterProducer(this.#id);
      throw e;
    }
    const ok = answer.producerSuccess;
    if (this.#state === 'closed') {
      cnx.unregisterProducer(this.#id);
      return;
    }
    if (ok) {
      this.#name = ok.producerName;
      if (!this.#connectedOnce) {
        const last = ok.lastSequenceId;
        this.#nextSeq = last !== undefined && last >= 0n ? Number(last) + 1 : 0;
      }
    }
    this.#cnx = cnx;
    if (this.#state === 'connecting') this.#state = 'ready';
    this.#backoff.reset();
    if (this.#connectedOnce)
      this.#client.logger.info(
        { ...this.#where, resend: this.#inflight.length - this.#inflightHead },
        'producer reconnected',
      );
    this.#connectedOnce = true;
    // Resend everything not yet acknowledged, in order.
    for (let i = this.#inflightHead; i < this.#inflight.length; i++)
      cnx.sendParts((this.#inflight[i] as OpSend).parts);
  }

  #scheduleReconnect(reason: PulsarError): void {
    if (this.#state === 'closed') return;
    if (this.#state === 'ready') this.#state = 'connecting';
    this.#cnx = null;
    this.#epoch++;
    if (this.#reconnectTimer) return;
    const delay = this.#backoff.next();
    this.#client.logger.warn(
      { ...this.#where, err: reason.message, delay },
      'producer disconnected, reconnecting',
    );
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (this.#state === 'closed') return;
      this.#connectOnce().catch((e: unknown) => this.#scheduleReconnect(e as PulsarError));
    }, delay);
  }

  onConnectionClosed(error: PulsarError): void {
    this.#scheduleReconnect(error);
  }

  onCloseProducer(): void {
    this.#cnx?.unregisterProducer(this.#id);
    this.#scheduleReconnect(
      new PulsarError(
        PulsarErrorCode.ConnectionClosed,
        'the broker closed the producer (CLOSE_PRODUCER)',
        this.#where,
      ),
    );
  }

  onSendReceipt(r: CommandSendReceipt): void {
    const op = this.#inflight[this.#inflightHead];
    const seq = Number(r.sequenceId);
    if (!op || seq < op.sequenceId) return; // a duplicate receipt of a resent message
    if (seq > op.sequenceId) {
      // A receipt skipped a send we are waiting for: reconnect and resend from the oldest.
      this.#client.logger.warn(
        { ...this.#where, expected: op.sequenceId, got: seq },
        'out-of-order send receipt',
      );
      this.#cnx?.close();
      return;
    }
    this.#shiftInflight();
    const d = r.messageId;
    const ledger = d?.ledgerId ?? -1n;
    const entry = d?.entryId ?? -1n;
    const partition = d?.partition ?? -1;
    const cbs = op.callbacks;
    if (op.batched) {
      for (let i = 0; i < cbs.length; i++)
        (cbs[i] as Callback).resolve(new MessageId(ledger, entry, partition, i, cbs.length));
    } else {
      (cbs[0] as Callback).resolve(new MessageId(ledger, entry, partition, -1, 0));
    }
    this.#release(op.numMessages);
  }

  onSendError(e: CommandSendError): void {
    const op = this.#inflight[this.#inflightHead];
    if (!op || Number(e.sequenceId) !== op.sequenceId) return;
    const name = cmds.serverErrorName(e.error);
    if (name === 'ChecksumError') {
      this.#cnx?.close(); // corrupted on the way: reconnect and resend
      return;
    }
    this.#shiftInflight();
    const err = new ServerError(e.error, name, e.message, { command: 'SEND', topic: this.topic });
    for (const cb of op.callbacks) cb.reject(err);
    this.#release(op.numMessages);
  }

  #shiftInflight(): void {
    this.#inflight[this.#inflightHead] = undefined as unknown as OpSend;
    this.#inflightHead++;
    if (this.#inflightHead === this.#inflight.length) {
      this.#inflight.length = 0;
      this.#inflightHead = 0;
    } else if (this.#inflightHead > 1024) {
      this.#inflight.splice(0, this.#inflightHead);
      this.#inflightHead = 0;
    }
  }

  #release(n: number): void {
    this.#pendingCount -= n;
    while (this.#spaceWaiters.length > 0 && this.#pendingCount < this.#maxPending) {
      (this.#spaceWaiters.shift() as () => void)();
    }
    if (this.#pendingCount === 0) for (const w of this.#flushWaiters.splice(0)) w();
  }

  /**
   * Sends a message; resolves with its id once the broker has stored it. Waits (backpressure) while
   * maxPendingMessages messages are unacknowledged.
   */
  async send(msg: OutgoingMessage): Promise<MessageId> {
    if (this.#state === 'closed' || this.#state === 'closing') throw this.#closedErr('send');
    if (!msg || !(msg.payload instanceof Uint8Array)) {
      throw new PulsarError(
        PulsarErrorCode.InvalidArgument,
        'send: payload must be a Uint8Array',
        this.#where,
      );
    }
    while (this.#pendingCount >= this.#maxPending) {
      await new Promise<void>((r) => this.#spaceWaiters.push(r));
      if (this.#isClosed()) throw this.#closedErr('send');
    }
    this.#pendingCount++;
    return new Promise<MessageId>((resolve, reject) => {
      const cb = { resolve, reject };
      if (this.#maxMessages <= 1) this.#sendSingle(msg, cb);
      else if (this.#byKey) this.#addToKeyBatch(msg, cb);
      else this.#addToBatch(msg, cb);
    });
  }

  #sendSingle(m: OutgoingMessage, cb: Callback): void {
    const seq = this.#nextSeq++;
    const meta: MessageMetadata = {
      producerName: this.#name ?? '',
      sequenceId: BigInt(seq),
      publishTime: BigInt(Date.now()),
      properties: cmds.toKeyValues(m.properties),
      replicateTo: [],
      encryptionKeys: [],
      partitionKey: m.key,
      eventTime: m.eventTime !== undefined && m.eventTime > 0 ? BigInt(m.eventTime) : undefined,
    };
    let payload = m.payload;
    if (this.#compression !== 0) {
      meta.compression = this.#compression as CompressionType;
      meta.uncompressedSize = payload.length;
      payload = compress(this.#compression, payload);
    }
    this.#dispatch({
      sequenceId: seq,
      highestSequenceId: seq,
      numMessages: 1,
      batched: false,
      parts: encodePayloadCommand(cmds.send(this.#id, BigInt(seq), 1), meta, payload),
      callbacks: [cb],
    });
  }

  #addToBatch(m: OutgoingMessage, cb: Callback): void {
    if (this.#batchCallbacks.length > 0 && this.#batchBytes + m.payload.length > this.#maxBytes)
      this.#flushBatch();
    const seq = this.#nextSeq++;
    if (this.#batchCallbacks.length === 0) {
      this.#batchFirstSeq = seq;
      this.#batchKey = m.key;
    }
    this.#batch.append(m, seq);
    this.#batchBytes += m.payload.length;
    this.#batchCallbacks.push(cb);
    if (this.#batchCallbacks.length >= this.#maxMessages || this.#batchBytes >= this.#maxBytes) {
      this.#flushBatch();
    } else if (!this.#batchTimer) {
      this.#batchTimer = setTimeout(() => {
        this.#batchTimer = null;
        this.#flushBatch();
      }, this.#maxDelay);
    }
  }

  #addToKeyBatch(m: OutgoingMessage, cb: Callback): void {
    let batch = this.#keyBatches.get(m.key);
    if (batch && batch.bytes + m.payload.length > this.#maxBytes) {
      this.#sendKeyBatch(batch);
      batch = undefined;
    }
    if (!batch) {
      batch = { key: m.key, messages: [], callbacks: [], bytes: 0 };
      this.#keyBatches.set(m.key, batch);
    }
    batch.messages.push(m);
    batch.callbacks.push(cb);
    batch.bytes += m.payload.length;
    if (batch.messages.length >= this.#maxMessages || batch.bytes >= this.#maxBytes) {
      this.#sendKeyBatch(batch);
      if (this.#keyBatches.size === 0) this.#stopBatchTimer();
    } else if (!this.#batchTimer) {
      this.#batchTimer = setTimeout(() => {
        this.#batchTimer = null;
        this.#flushBatch();
      }, this.#maxDelay);
    }
  }

  /**
   * Sends one key's open batch. Its messages get their sequence ids now, consecutive, so every SEND covers one
   * range above the previous one: receipts, resends and the broker's deduplication see the order they expect,
   * whichever key's batch goes first.
   */
  #sendKeyBatch(batch: KeyBatch): void {
    this.#keyBatches.delete(batch.key);
    const first = this.#nextSeq;
    this.#nextSeq += batch.messages.length;
    for (let i = 0; i < batch.messages.length; i++)
      this.#batch.append(batch.messages[i] as OutgoingMessage, first + i);
    this.#sendBatch(first, batch.callbacks, batch.key);
  }

  #stopBatchTimer(): void {
    if (this.#batchTimer) {
      clearTimeout(this.#batchTimer);
      this.#batchTimer = null;
    }
  }

  /** Sends every open batch: the one batch, or with batchingByKey each key's in the order of its first message. */
  #flushBatch(): void {
    this.#stopBatchTimer();
    if (this.#byKey) {
      for (const batch of [...this.#keyBatches.values()]) this.#sendKeyBatch(batch);
      return;
    }
    if (this.#batchCallbacks.length === 0) return;
    const callbacks = this.#batchCallbacks;
    this.#batchCallbacks = [];
    this.#batchBytes = 0;
    this.#sendBatch(this.#batchFirstSeq, callbacks, this.#batchKey);
  }

  /**
   * Sends the messages in the batch buffer as one entry, sequence ids from `first`. The entry's metadata carries
   * `key` (its first message's) as the Java client's batches do: the broker reads only the entry's key to pick the
   * Key_Shared consumer of the whole batch.
   */
  #sendBatch(first: number, callbacks: Callback[], key: string | undefined): void {
    const n = callbacks.length;
    const last = first + n - 1;
    let payload = this.#batch.take();
    const meta: MessageMetadata = {
      producerName: this.#name ?? '',
      sequenceId: BigInt(first),
      publishTime: BigInt(Date.now()),
      properties: [],
      replicateTo: [],
      encryptionKeys: [],
      partitionKey: key,
      numMessagesInBatch: n,
      highestSequenceId: BigInt(last),
    };
    if (this.#compression !== 0) {
      meta.compression = this.#compression as CompressionType;
      meta.uncompressedSize = payload.length;
      payload = compress(this.#compression, payload);
    }
    this.#dispatch({
      sequenceId: first,
      highestSequenceId: last,
      numMessages: n,
      batched: true,
      parts: encodePayloadCommand(cmds.send(this.#id, BigInt(first), n, BigInt(last)), meta, payload),
      callbacks,
    });
  }

  #dispatch(op: OpSend): void {
    let size = 0;
    for (const p of op.parts) size += p.length;
    const max = (this.#cnx?.maxMessageSize ?? 5 * 1024 * 1024) + 10 * 1024;
    if (size - 4 > max) {
      const err = new PulsarError(
        PulsarErrorCode.SendFailed,
        `send: message of ${size} bytes exceeds the broker's max message size`,
        this.#where,
      );
      for (const cb of op.callbacks) cb.reject(err);
      this.#release(op.numMessages);
      return;
    }
    this.#inflight.push(op);
    if (this.#state === 'ready' && this.#cnx) this.#cnx.sendParts(op.parts);
    // Otherwise the reconnect resends it.
  }

  /** Sends the open batch and waits until every pending message is acknowledged. */
  async flush(): Promise<void> {
    this.#flushBatch();
    if (this.#pendingCount === 0) return;
    await new Promise<void>((r) => this.#flushWaiters.push(r));
  }

  #isClosed(): boolean {
    return this.#state === 'closed';
  }

  #closedErr(what: string): PulsarError {
    return new PulsarError(
      PulsarErrorCode.AlreadyClosed,
      `${what}: producer on ${this.topic} is closed`,
      this.#where,
    );
  }

  /** Flushes, then closes the producer on the broker. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'closing') return;
    this.#state = 'closing';
    try {
      await this.flush();
    } finally {
      const cnx = this.#cnx;
      if (cnx) {
        const requestId = cnx.newRequestId();
        try {
          await cnx.request(cmds.closeProducer(this.#id, requestId), requestId, { topic: this.topic });
        } catch (e) {
          this.#client.logger.warn({ ...this.#where, err: (e as Error).message }, 'CLOSE_PRODUCER failed');
        }
        cnx.unregisterProducer(this.#id);
      }
      this.#shutdown();
    }
  }

  #shutdown(): void {
    this.#state = 'closed';
    this.#cnx = null;
    if (this.#batchTimer) clearTimeout(this.#batchTimer);
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    const err = this.#closedErr('send');
    for (let i = this.#inflightHead; i < this.#inflight.length; i++) {
      for (const cb of (this.#inflight[i] as OpSend).callbacks) cb.reject(err);
    }
    for (const cb of this.#batchCallbacks) cb.reject(err);
    for (const batch of this.#keyBatches.values()) for (const cb of batch.callbacks) cb.reject(err);
    this.#keyBatches.clear();
    this.#inflight.length = 0;
    this.#inflightHead = 0;
    this.#batchCallbacks = [];
    for (const w of this.#spaceWaiters.splice(0)) w();
    for (const w of this.#flushWaiters.splice(0)) w();
    this.#client.forget(this);
  }
}
