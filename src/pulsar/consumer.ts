// Consumer: SUBSCRIBE, a bounded receiver queue refilled with FLOW permits, batch unpacking, individual and
// cumulative acks (grouped), negative acks with delay, seek, unsubscribe, close, and reconnect after a lost
// connection or a broker-initiated CLOSE_CONSUMER.

import { type ChunkAction, ChunkAssembler, type ChunkAssemblerOptions } from './chunks.ts';
import { Backoff, isRetriable, type PulsarClient } from './client.ts';
import * as cmds from './commands.ts';
import { decompress } from './compression.ts';
import type { Connection, ConsumerHandler } from './connection.ts';
import { PulsarError, PulsarErrorCode, ServerError } from './errors.ts';
import type { Frame } from './frame.ts';
import { MessageId } from './message-id.ts';
import { type MessageMeta, parseSingleMessageMetadata } from './metadata.ts';
import { CommandAck_AckType, type CommandMessage, type MessageIdData } from './proto/generated/PulsarApi.ts';
import { parseTopicName } from './topic.ts';

export interface ConsumerOptions {
  topic: string;
  subscription: string;
  subscriptionType?: cmds.SubscriptionType;
  initialPosition?: cmds.InitialPosition;
  /** Messages buffered ahead of receive(). Default 1000. FLOW is sent when half of it has been consumed. */
  receiverQueueSize?: number;
  /** Delay before a nacked message is redelivered. Default 60 s. */
  nackRedeliveryDelayMs?: number;
  consumerName?: string;
  /** Default true. A non-durable subscription disappears with its last consumer. */
  durable?: boolean;
  /** Grouping of acks into one ACK command. Default 10 ms. */
  ackGroupingMs?: number;
  /**
   * Batch-index acks: when only part of a batch entry is acked, send the entry's ack_set (which of its messages
   * are still unacked; one per entry per ack flush, not one per message) so that a broker with
   * acknowledgmentAtBatchIndexLevelEnabled=true redelivers only the unacked messages of the entry, to this or any
   * later consumer of the subscription. Default true. A broker without that setting ignores partial acks (checked
   * against Pulsar 4.0): the whole entry comes back until all its messages are acked, as with false.
   */
  batchIndexAck?: boolean;
  /** Failover: the consumer with the highest priority (lowest number) is active. */
  priorityLevel?: number;
  /** Partitioned topics: how often new partitions are looked for. Default 60 s; 0 disables. */
  autoUpdatePartitionsIntervalMs?: number;
  /** Key_Shared: auto-split (default) or sticky hash ranges. */
  keySharedPolicy?: cmds.KeySharedPolicy;
  /**
   * Chunked messages: expiry of incomplete sets (default 60 s, their chunks are then acked), pending sets
   * (default 10, the oldest is redelivered to make room) and bytes held (default 128 MiB).
   */
  chunking?: ChunkAssemblerOptions;
}

export interface Message {
  readonly messageId: MessageId;
  /** The message bytes: a view into the received frame (slice() it to keep a copy independent of it). */
  readonly payload: Uint8Array;
  readonly key: string | undefined;
  readonly properties: Record<string, string>;
  /** Milliseconds since the epoch, as the producer set it. */
  readonly eventTime: number | undefined;
  readonly publishTime: number;
  readonly redeliveryCount: number;
  readonly topic: string;
  readonly producerName: string;
  readonly orderingKey: Uint8Array | undefined;
}

/** State shared by the messages of one batch entry: which indexes are still unacked. */
class BatchState {
  readonly ledgerId: bigint;
  readonly entryId: bigint;
  readonly size: number;
  /** 1 = message i still unacked. */
  readonly #unacked: Uint8Array;
  remaining: number;
  readonly key: string;

  constructor(key: string, ledgerId: bigint, entryId: bigint, size: number) {
    this.key = key;
    this.ledgerId = ledgerId;
    this.entryId = entryId;
    this.size = size;
    this.remaining = size;
    this.#unacked = new Uint8Array(size).fill(1);
  }

  isUnacked(i: number): boolean {
    return this.#unacked[i] === 1;
  }

  /** Marks index i acked; true if it was unacked. */
  clear(i: number): boolean {
    if (this.#unacked[i] !== 1) return false;
    this.#unacked[i] = 0;
    this.remaining--;
    return true;
  }

  /** The protocol's ack_set: 64-bit words, bit i set = message i still unacked. */
  get bits(): bigint[] {
    const words: bigint[] = [];
    for (let w = 0; w * 64 < this.size; w++) {
      let word = 0n;
      for (let b = 0; b < 64 && w * 64 + b < this.size; b++) {
        if (this.#unacked[w * 64 + b] === 1) word |= 1n << BigInt(b);
      }
      words.push(BigInt.asIntN(64, word));
    }
    return words;
  }
}

class ReceivedMessage implements Message {
  readonly messageId: MessageId;
  readonly payload: Uint8Array;
  readonly key: string | undefined;
  readonly properties: Record<string, string>;
  readonly eventTime: number | undefined;
  readonly publishTime: number;
  readonly redeliveryCount: number;
  readonly topic: string;
  readonly producerName: string;
  readonly orderingKey: Uint8Array | undefined;
  /** @internal */
  readonly batch: BatchState | null;
  /** @internal Every chunk entry of a chunked message (acked together). */
  chunkIds: MessageIdData[] | undefined = undefined;

  constructor(
    messageId: MessageId,
    payload: Uint8Array,
    key: string | undefined,
    properties: Record<string, string>,
    eventTime: number,
    meta: MessageMeta,
    redeliveryCount: number,
    topic: string,
    orderingKey: Uint8Array | undefined,
    batch: BatchState | null,
  ) {
    this.messageId = messageId;
    this.payload = payload;
    this.key = key;
    this.properties = properties;
    this.eventTime = eventTime > 0 ? eventTime : undefined;
    this.publishTime = meta.publishTime;
    this.redeliveryCount = redeliveryCount;
    this.topic = topic;
    this.producerName = meta.producerName;
    this.orderingKey = orderingKey;
    this.batch = batch;
  }
}

type State = 'connecting' | 'ready' | 'closing' | 'closed';

interface Waiter {
  resolve: (m: Message) => void;
  reject: (e: Error) => void;
}

const RESOLVED = Promise.resolve();

function entryKey(d: { ledgerId: bigint; entryId: bigint }): string {
  return `${d.ledgerId}:${d.entryId}`;
}

export class Consumer implements ConsumerHandler, AsyncIterable<Message> {
  readonly topic: string;
  readonly subscription: string;
  readonly subscriptionType: cmds.SubscriptionType;
  readonly #client: PulsarClient;
  readonly #opts: ConsumerOptions;
  readonly #id: bigint;
  readonly #partition: number;
  readonly #queueSize: number;
  readonly #flowThreshold: number;
  readonly #nackDelay: number;
  readonly #ackGroupingMs: number;
  readonly #batchIndexAck: boolean;
  readonly #backoff: Backoff;
  #cnx: Connection | null = null;
  #state: State = 'connecting';
  #closedError: PulsarError | null = null;
  // Receiver queue: an array with a moving head (compacted when half consumed).
  #queue: ReceivedMessage[] = [];
  #head = 0;
  readonly #waiters: Waiter[] = [];
  #permits = 0;
  readonly #batches = new Map<string, BatchState>();
  #pendingAcks: MessageIdData[] = [];
  /** Partly acked batch entries whose ack_set is sent at the next flush. */
  readonly #pendingPartial = new Set<BatchState>();
  #pendingCumulative: MessageIdData | null = null;
  #ackTimer: NodeJS.Timeout | null = null;
  readonly #nacks = new Map<string, { data: MessageIdData; due: number }>();
  #nackTimer: NodeJS.Timeout | null = null;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #connectedOnce = false;
  #reachedEnd = false;
  readonly #chunks: ChunkAssembler<MessageIdData>;
  #chunkTimer: NodeJS.Timeout | null = null;

  constructor(client: PulsarClient, opts: ConsumerOptions, id: bigint) {
    if (!opts?.subscription) {
      throw new PulsarError(PulsarErrorCode.InvalidArgument, 'subscribe: `subscription` is required', {
        topic: opts?.topic,
      });
    }
    this.#client = client;
    this.#opts = opts;
    this.#id = id;
    const topic = parseTopicName(opts.topic);
    this.topic = topic.full;
    this.#partition = topic.partitionIndex;
    this.subscription = opts.subscription;
    this.subscriptionType = opts.subscriptionType ?? 'Exclusive';
    if (!(this.subscriptionType in cmds.SUB_TYPES)) {
      throw new PulsarError(
        PulsarErrorCode.InvalidArgument,
        `subscribe: unknown subscriptionType '${this.subscriptionType}'`,
        { topic: this.topic },
      );
    }
    this.#queueSize = Math.max(1, opts.receiverQueueSize ?? 1000);
    this.#flowThreshold = Math.max(1, Math.floor(this.#queueSize / 2));
    this.#nackDelay = Math.max(0, opts.nackRedeliveryDelayMs ?? 60_000);
    this.#ackGroupingMs = Math.max(0, opts.ackGroupingMs ?? 10);
    this.#batchIndexAck = opts.batchIndexAck ?? true;
    this.#backoff = new Backoff(client.initialBackoffMs, client.maxBackoffMs);
    if (opts.keySharedPolicy) {
      const problem =
        this.subscriptionType === 'Key_Shared'
          ? cmds.keySharedPolicyProblem(opts.keySharedPolicy)
          : 'keySharedPolicy is only for Key_Shared subscriptions';
      if (problem) {
        throw new PulsarError(PulsarErrorCode.InvalidArgument, `subscribe: ${problem}`, {
          topic: this.topic,
        });
      }
    }
    this.#chunks = new ChunkAssembler<MessageIdData>(
      (a, b) => a.ledgerId === b.ledgerId && a.entryId === b.entryId,
      opts.chunking,
    );
  }

  get #where() {
    return { topic: this.topic, subscription: this.subscription };
  }

  /** @internal First subscribe: retriable failures are retried until operationTimeoutMs, others thrown. */
  async start(): Promise<void> {
    const partitions = await this.#client.partitions(this.topic);
    if (partitions > 0) {
      throw new PulsarError(
        PulsarErrorCode.InvalidArgument,
        `subscribe ${this.topic}: partitioned topics (${partitions} partitions) are not supported yet; subscribe to a partition (${this.topic}-partition-0)`,
        this.#where,
      );
    }
    const deadline = Date.now() + this.#client.operationTimeoutMs;
    for (;;) {
      try {
        await this.#subscribeOnce();
        return;
      } catch (e) {
        const delay = this.#backoff.next();
        if (!isRetriable(e, false) || Date.now() + delay > deadline || this.#state === 'closed') {
          this.#state = 'closed';
          this.#closedError = e as PulsarError;
          throw e;
        }
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  async #subscribeOnce(): Promise<void> {
    const address = await this.#client.lookup(this.topic);
    const cnx = await this.#client.getConnection(address);
    const requestId = cnx.newRequestId();
    cnx.registerConsumer(this.#id, this);
    try {
      await cnx.request(
        cmds.subscribe({
          topic: this.topic,
          subscription: this.subscription,
          subscriptionType: this.subscriptionType,
          consumerId: this.#id,
          requestId,
          consumerName: this.#opts.consumerName,
          initialPosition: this.#opts.initialPosition ?? 'Latest',
          durable: this.#opts.durable ?? true,
          priorityLevel: this.#opts.priorityLevel,
          keySharedPolicy: this.#opts.keySharedPolicy,
        }),
        requestId,
        { topic: this.topic },
      );
    } catch (e) {
      cnx.unregisterConsumer(this.#id);
      throw e;
    }
    if (this.#state === 'closing' || this.#state === 'closed') {
      cnx.unregisterConsumer(this.#id);
      return;
    }
    this.#cnx = cnx;
    this.#state = 'ready';
    this.#backoff.reset();
    if (this.#connectedOnce)
      this.#client.logger.info({ ...this.#where, broker: cnx.logicalAddress }, 'consumer reconnected');
    this.#connectedOnce = true;
    // Fresh connection: whatever was buffered will be redelivered by the broker, so drop it and ask for a full queue.
    this.#clearQueue();
    this.#chunks.clear();
    this.#permits = 0;
    cnx.send(cmds.flow(this.#id, this.#queueSize));
    this.#flushAcks();
  }

  #clearQueue(): number {
    const n = this.#queue.length - this.#head;
    this.#queue = [];
    this.#head = 0;
    return n;
  }

  #scheduleReconnect(reason: PulsarError): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#state = 'connecting';
    this.#cnx = null;
    if (this.#reconnectTimer) return;
    const delay = this.#backoff.next();
    this.#client.logger.warn(
      { ...this.#where, err: reason.message, delay },
      'consumer disconnected, reconnecting',
    );
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (this.#state !== 'connecting') return;
      this.#subscribeOnce().catch((e: unknown) => {
        if (isRetriable(e, true) || this.#connectedOnce) this.#scheduleReconnect(e as PulsarError);
        else this.#fail(e as PulsarError);
      });
    }, delay);
  }

  #fail(e: PulsarError): void {
    this.#client.logger.error({ ...this.#where, err: e.message }, 'consumer failed');
    this.#shutdown(e);
  }

  // --- ConsumerHandler (called by the connection) ---

  onConnectionClosed(error: PulsarError): void {
    this.#scheduleReconnect(error);
  }

  onCloseConsumer(): void {
    this.#cnx?.unregisterConsumer(this.#id);
    this.#scheduleReconnect(
      new PulsarError(
        PulsarErrorCode.ConnectionClosed,
        'the broker closed the consumer (CLOSE_CONSUMER)',
        this.#where,
      ),
    );
  }

  onReachedEndOfTopic(): void {
    this.#reachedEnd = true;
  }

  onMessage(command: CommandMessage, frame: Frame): void {
    if (this.#state !== 'ready') return;
    const idData = command.messageId;
    const meta = frame.metadata;
    let payload = frame.payload;
    if (!idData) return;
    if (frame.corrupt || !meta || !payload) {
      this.#discard(idData, frame.corrupt?.message ?? 'payload frame without metadata', 1);
      return;
    }
    if (meta.encrypted) {
      this.#discard(idData, 'encrypted messages are not supported', Math.max(1, meta.numMessagesInBatch));
      return;
    }
    if (meta.numChunksFromMsg > 1) {
      this.#onChunk(idData, meta, payload, command.redeliveryCount ?? 0);
      return;
    }
    if (meta.compression !== 0) {
      try {
        payload = decompress(meta.compression, payload, meta.uncompressedSize);
      } catch (e) {
        this.#discard(idData, (e as Error).message, Math.max(1, meta.numMessagesInBatch));
        return;
      }
    }
    const redeliveryCount = command.redeliveryCount ?? 0;
    const partition = this.#partition;
    if (meta.numMessagesInBatch < 0) {
      const id = new MessageId(idData.ledgerId, idData.entryId, partition, -1, 0);
      this.#deliver(
        new ReceivedMessage(
          id,
          payload,
          meta.partitionKey,
          meta.properties,
          meta.eventTime,
          meta,
          redeliveryCount,
          this.topic,
          meta.orderingKey,
          null,
        ),
      );
      return;
    }
    this.#unpackBatch(idData, meta, payload, redeliveryCount, partition, command.ackSet);
  }

  #unpackBatch(
    idData: MessageIdData,
    meta: MessageMeta,
    payload: Uint8Array,
    redeliveryCount: number,
    partition: number,
    brokerAckSet: bigint[],
  ): void {
    const n = meta.numMessagesInBatch;
    // Each message of a batch takes at least its 4-byte metadata size: a count the payload cannot hold is corrupt,
    // and state for it (one byte per message) would let a single entry claim gigabytes. The permits are the
    // broker's count, as for any discarded entry.
    if (n > payload.length / 4) {
      this.#discard(idData, `batch claims ${n} messages in a payload of ${payload.length} bytes`, n);
      return;
    }
    const key = entryKey(idData);
    let batch = this.#batches.get(key);
    if (!batch || batch.size !== n) {
      batch = new BatchState(key, idData.ledgerId, idData.entryId, n);
      this.#batches.set(key, batch);
    }
    let off = 0;
    let skipped = 0;
    const end = payload.length;
    for (let i = 0; i < n; i++) {
      if (off + 4 > end) {
        this.#discard(idData, `batch truncated at message ${i} of ${n}`, n - i);
        break;
      }
      const smSize =
        (((payload[off] as number) << 24) |
          ((payload[off + 1] as number) << 16) |
          ((payload[off + 2] as number) << 8) |
          (payload[off + 3] as number)) >>>
        0;
      off += 4;
      if (smSize > end - off) {
        this.#discard(idData, `batch message ${i} of ${n}: metadata size ${smSize} too large`, n - i);
        break;
      }
      let sm: ReturnType<typeof parseSingleMessageMetadata>;
      try {
        sm = parseSingleMessageMetadata(payload, off, off + smSize);
      } catch (e) {
        this.#discard(idData, `batch message ${i} of ${n}: ${(e as Error).message}`, n - i);
        break;
      }
      off += smSize;
      if (sm.payloadSize > end - off) {
        this.#discard(idData, `batch message ${i} of ${n}: payload size ${sm.payloadSize} too large`, n - i);
        break;
      }
      const body = payload.subarray(off, off + sm.payloadSize);
      off += sm.payloadSize;
      const ackedByBroker =
        brokerAckSet.length > 0 &&
        ((BigInt.asUintN(64, brokerAckSet[i >> 6] ?? 0n) >> BigInt(i & 63)) & 1n) === 0n;
      if (ackedByBroker) batch.clear(i);
      if (ackedByBroker || sm.compactedOut || !batch.isUnacked(i)) {
        skipped++;
        continue;
      }
      this.#deliver(
        new ReceivedMessage(
          new MessageId(idData.ledgerId, idData.entryId, partition, i, n),
          body,
          sm.partitionKey,
          sm.properties,
          sm.eventTime,
          meta,
          redeliveryCount,
          this.topic,
          sm.orderingKey,
          batch,
        ),
      );
    }
    if (batch.remaining === 0) this.#batches.delete(key);
    if (skipped > 0) this.#addPermits(skipped);
  }

  /** One chunk of a chunked message: reassembled; the whole message is delivered when its last chunk arrives. */
  #onChunk(idData: MessageIdData, meta: MessageMeta, payload: Uint8Array, redeliveryCount: number): void {
    const r = this.#chunks.add(
      { ledgerId: idData.ledgerId, entryId: idData.entryId, ackSet: [] },
      {
        uuid: meta.uuid ?? '',
        chunkId: meta.chunkId,
        numChunks: meta.numChunksFromMsg,
        totalSize: meta.totalChunkMsgSize,
        publishTime: meta.publishTime,
      },
      payload,
      Date.now(),
    );
    this.#applyChunkActions(r.actions);
    const done = r.complete;
    if (!done) {
      this.#addPermits(1); // this chunk's entry is held by the assembler, not the receiver queue
      this.#scheduleChunkExpiry();
      return;
    }
    let whole = done.payload;
    if (meta.compression !== 0) {
      try {
        whole = decompress(meta.compression, whole, meta.uncompressedSize);
      } catch (e) {
        this.#discard(idData, `chunked message ${done.uuid}: ${(e as Error).message}`, 1);
        return;
      }
    }
    const first = done.ids[0] as MessageIdData;
    const m = new ReceivedMessage(
      new MessageId(first.ledgerId, first.entryId, this.#partition, -1, 0),
      whole,
      meta.partitionKey,
      meta.properties,
      meta.eventTime,
      meta,
      redeliveryCount,
      this.topic,
      meta.orderingKey,
      null,
    );
    m.chunkIds = done.ids;
    this.#deliver(m);
  }

  #applyChunkActions(actions: ChunkAction<MessageIdData>[]): void {
    for (const a of actions) {
      this.#client.logger.warn(
        { ...this.#where, uuid: a.uuid, chunks: a.ids.length, decision: a.decision, reason: a.reason },
        'chunked message dropped',
      );
      if (a.decision === 'ack') {
        for (const id of a.ids) this.#queueAck(id);
      } else if (a.decision === 'redeliver') {
        const due = Date.now() + this.#nackDelay;
        for (const id of a.ids) this.#nacks.set(entryKey(id), { data: id, due });
        this.#scheduleNackTimer();
      }
    }
  }

  #scheduleChunkExpiry(): void {
    if (this.#chunkTimer || this.#chunks.pendingMessages === 0) return;
    this.#chunkTimer = setTimeout(
      () => {
        this.#chunkTimer = null;
        if (this.#state !== 'ready') return;
        this.#applyChunkActions(this.#chunks.expire(Date.now()));
        this.#scheduleChunkExpiry();
      },
      Math.min(1000, Math.max(10, this.#chunks.expireMs / 4)),
    );
    this.#chunkTimer.unref();
  }

  /** Chunked messages waiting for their remaining chunks (and the bytes they hold). */
  get pendingChunks(): { messages: number; bytes: number } {
    return { messages: this.#chunks.pendingMessages, bytes: this.#chunks.pendingBytes };
  }

  /** Drops a message that cannot be delivered; it stays unacked on the broker (redelivered later). */
  #discard(idData: MessageIdData, why: string, permits: number): void {
    this.#client.logger.error(
      { ...this.#where, messageId: `${idData.ledgerId}:${idData.entryId}`, reason: why },
      'message discarded',
    );
    this.#addPermits(permits);
  }

  #deliver(m: ReceivedMessage): void {
    const w = this.#waiters.shift();
    if (w) {
      this.#addPermits(1);
      w.resolve(m);
    } else {
      this.#queue.push(m);
    }
  }

  #addPermits(n: number): void {
    this.#permits += n;
    if (this.#permits >= this.#flowThreshold && this.#state === 'ready' && this.#cnx) {
      this.#cnx.send(cmds.flow(this.#id, this.#permits));
      this.#permits = 0;
    }
  }

  // --- public API ---

  /**
   * The next buffered message, or undefined when none is buffered (never waits, never throws). Lets a caller
   * drain what already arrived without a promise per message.
   */
  tryReceive(): Message | undefined {
    if (this.#head >= this.#queue.length) return undefined;
    const m = this.#queue[this.#head] as ReceivedMessage;
    (this.#queue as (ReceivedMessage | undefined)[])[this.#head] = undefined;
    this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    this.#addPermits(1);
    return m;
  }

  /** The next message; waits until one arrives. Rejects with AlreadyClosed once the consumer is closed. */
  receive(): Promise<Message> {
    const m = this.tryReceive();
    if (m !== undefined) return Promise.resolve(m);
    if (this.#state === 'closed' || this.#state === 'closing') {
      return Promise.reject(this.#closedErr('receive'));
    }
    return new Promise<Message>((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /**
   * Messages until the consumer is closed. Buffered messages are served without waiting on a receive() (no
   * async generator), so a ready queue costs one resolved promise per message.
   */
  [Symbol.asyncIterator](): AsyncIterator<Message> {
    const done: IteratorReturnResult<undefined> = { done: true, value: undefined };
    const end = (e: unknown): IteratorResult<Message> => {
      if (e instanceof PulsarError && e.code === PulsarErrorCode.AlreadyClosed) return done;
      throw e;
    };
    return {
      next: (): Promise<IteratorResult<Message>> => {
        const m = this.tryReceive();
        if (m !== undefined) return Promise.resolve({ done: false, value: m });
        return this.receive().then((value) => ({ done: false, value }), end);
      },
      return: (): Promise<IteratorResult<Message>> => Promise.resolve(done),
    };
  }

  /** Number of messages buffered and not yet received. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  get reachedEndOfTopic(): boolean {
    return this.#reachedEnd;
  }

  /** Subscribed on a live connection now; false while reconnecting after a lost connection, and once closed. */
  get connected(): boolean {
    return this.#state === 'ready';
  }

  #closedErr(what: string): PulsarError {
    return new PulsarError(
      PulsarErrorCode.AlreadyClosed,
      `${what}: consumer ${this.subscription} on ${this.topic} is closed`,
      this.#where,
      { cause: this.#closedError ?? undefined },
    );
  }

  #asReceived(msg: Message, what: string): ReceivedMessage {
    if (!(msg instanceof ReceivedMessage)) {
      throw new PulsarError(
        PulsarErrorCode.InvalidArgument,
        `${what}: not a message received by this client`,
        this.#where,
      );
    }
    return msg;
  }

  /** Acknowledges one message. Acks are grouped and sent within ackGroupingMs. */
  ack(msg: Message): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(this.#closedErr('ack'));
    let m: ReceivedMessage;
    try {
      m = this.#asReceived(msg, 'ack');
    } catch (e) {
      return Promise.reject(e);
    }
    const id = m.messageId;
    const batch = m.batch;
    if (batch) {
      if (!batch.clear(id.batchIndex)) return RESOLVED;
      if (batch.remaining === 0) {
        this.#batches.delete(batch.key);
        this.#nacks.delete(batch.key);
        this.#pendingPartial.delete(batch);
        this.#queueAck({ ledgerId: id.ledgerId, entryId: id.entryId, ackSet: [] });
      } else if (this.#batchIndexAck) {
        this.#pendingPartial.add(batch);
        this.#scheduleAckFlush();
      }
    } else if (m.chunkIds) {
      for (const c of m.chunkIds) {
        this.#nacks.delete(entryKey(c));
        this.#queueAck(c);
      }
    } else {
      this.#nacks.delete(entryKey(id));
      this.#queueAck({ ledgerId: id.ledgerId, entryId: id.entryId, ackSet: [] });
    }
    return RESOLVED;
  }

  /** Acknowledges this message and every message before it (not for Shared or Key_Shared subscriptions). */
  ackCumulative(msg: Message): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(this.#closedErr('ackCumulative'));
    if (this.subscriptionType === 'Shared' || this.subscriptionType === 'Key_Shared') {
      return Promise.reject(
        new PulsarError(
          PulsarErrorCode.InvalidArgument,
          `ackCumulative is not allowed on a ${this.subscriptionType} subscription`,
          this.#where,
        ),
      );
    }
    let m: ReceivedMessage;
    try {
      m = this.#asReceived(msg, 'ackCumulative');
    } catch (e) {
      return Promise.reject(e);
    }
    const id = m.messageId;
    let data: MessageIdData;
    if (m.batch && id.batchIndex < m.batch.size - 1) {
      // Part of a batch: ack the batch up to this message (ack_set keeps the rest), or the previous entry.
      // Cumulative with ack_set only when asked for explicitly: unlike an individual partial ack, how a broker
      // without batch-index acks treats it is not verified here, and the previous entry is always safe.
      if (this.#opts.batchIndexAck === true) {
        const bits: bigint[] = [];
        for (let i = 0; i < m.batch.size; i += 64) bits.push(0n);
        for (let i = id.batchIndex + 1; i < m.batch.size; i++) {
          const w = i >> 6;
          bits[w] = BigInt.asIntN(64, (bits[w] as bigint) | (1n << BigInt(i & 63)));
        }
        data = { ledgerId: id.ledgerId, entryId: id.entryId, ackSet: bits, batchSize: m.batch.size };
      } else if (id.entryId > 0n) {
        data = { ledgerId: id.ledgerId, entryId: id.entryId - 1n, ackSet: [] };
      } else {
        return RESOLVED;
      }
      for (let i = 0; i <= id.batchIndex; i++) m.batch.clear(i);
    } else {
      data = { ledgerId: id.ledgerId, entryId: id.entryId, ackSet: [] };
    }
    for (const [key, b] of this.#batches) {
      const [l, e] = key.split(':').map(BigInt) as [bigint, bigint];
      if (l < id.ledgerId || (l === id.ledgerId && e < id.entryId) || b.remaining === 0)
        this.#batches.delete(key);
    }
    this.#pendingCumulative = data;
    this.#scheduleAckFlush();
    return RESOLVED;
  }

  #queueAck(d: MessageIdData): void {
    this.#pendingAcks.push(d);
    if (this.#pendingAcks.length >= 1000) this.#flushAcks();
    else this.#scheduleAckFlush();
  }

  #scheduleAckFlush(): void {
    if (this.#ackTimer) return;
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = null;
      this.#flushAcks();
    }, this.#ackGroupingMs);
  }

  #flushAcks(): void {
    if (this.#ackTimer) {
      clearTimeout(this.#ackTimer);
      this.#ackTimer = null;
    }
    const cnx = this.#cnx;
    if (!cnx || (this.#state !== 'ready' && this.#state !== 'closing')) return;
    if (this.#pendingPartial.size > 0) {
      for (const b of this.#pendingPartial) {
        if (b.remaining > 0) {
          this.#pendingAcks.push({
            ledgerId: b.ledgerId,
            entryId: b.entryId,
            ackSet: b.bits,
            batchSize: b.size,
          });
        }
      }
      this.#pendingPartial.clear();
    }
    if (this.#pendingAcks.length > 0) {
      const ids = this.#pendingAcks;
      this.#pendingAcks = [];
      cnx.send(cmds.ack(this.#id, CommandAck_AckType.Individual, ids));
    }
    if (this.#pendingCumulative) {
      const d = this.#pendingCumulative;
      this.#pendingCumulative = null;
      cnx.send(cmds.ack(this.#id, CommandAck_AckType.Cumulative, [d]));
    }
  }

  /**
   * Negative ack: the message is redelivered after nackRedeliveryDelayMs, with its redelivery count raised.
   * For a message of a batch the whole entry is redelivered, minus the messages already acked.
   */
  nack(msg: Message): void {
    if (this.#state === 'closed') return;
    const m = this.#asReceived(msg, 'nack');
    const key = entryKey(m.messageId);
    for (const c of m.chunkIds ?? []) {
      const k = entryKey(c);
      if (k !== key && !this.#nacks.has(k))
        this.#nacks.set(k, { data: c, due: Date.now() + this.#nackDelay });
    }
    if (!this.#nacks.has(key)) {
      this.#nacks.set(key, {
        data: { ledgerId: m.messageId.ledgerId, entryId: m.messageId.entryId, ackSet: [] },
        due: Date.now() + this.#nackDelay,
      });
    }
    this.#scheduleNackTimer();
  }

  #scheduleNackTimer(): void {
    if (this.#nackTimer || this.#nacks.size === 0) return;
    const first = this.#nacks.values().next().value;
    const delay = Math.max(0, (first?.due ?? Date.now()) - Date.now());
    this.#nackTimer = setTimeout(() => {
      this.#nackTimer = null;
      this.#redeliverDue();
      this.#scheduleNackTimer();
    }, delay);
  }

  #redeliverDue(): void {
    if (this.#state !== 'ready' || !this.#cnx) {
      // Not connected: the reconnect redelivers everything unacked anyway.
      if (this.#state === 'connecting') this.#nacks.clear();
      return;
    }
    const now = Date.now();
    const due: MessageIdData[] = [];
    for (const [key, n] of this.#nacks) {
      if (n.due > now) break;
      due.push(n.data);
      this.#nacks.delete(key);
    }
    if (due.length === 0) return;
    this.#flushAcks();
    if (this.subscriptionType === 'Shared' || this.subscriptionType === 'Key_Shared') {
      for (let i = 0; i < due.length; i += 1000) {
        this.#cnx.send(cmds.redeliver(this.#id, due.slice(i, i + 1000)));
      }
    } else {
      // Exclusive/Failover keep order: the broker rewinds to the first unacked message, so the buffered
      // messages are dropped and their permits given back.
      const dropped = this.#clearQueue();
      this.#cnx.send(cmds.redeliver(this.#id, []));
      if (dropped > 0) this.#addPermits(dropped);
    }
  }

  /** Moves the subscription to a message id or a publish time (ms since the epoch). */
  async seek(target: MessageId | number | Date): Promise<void> {
    const cnx = this.#requireReady('seek');
    const requestId = cnx.newRequestId();
    const arg =
      target instanceof MessageId
        ? { ledgerId: target.ledgerId, entryId: target.entryId, ackSet: [] }
        : BigInt(target instanceof Date ? target.getTime() : Math.floor(target));
    this.#pendingAcks = [];
    this.#pendingPartial.clear();
    this.#pendingCumulative = null;
    this.#nacks.clear();
    this.#batches.clear();
    this.#chunks.clear();
    await cnx.request(cmds.seek(this.#id, requestId, arg), requestId, { topic: this.topic });
    // The broker disconnects the subscription's consumers after a seek; we reconnect from the new position.
    this.#clearQueue();
  }

  #requireReady(what: string): Connection {
    if (this.#state === 'closed' || this.#state === 'closing') throw this.#closedErr(what);
    if (!this.#cnx || this.#state !== 'ready') {
      throw new PulsarError(
        PulsarErrorCode.ConnectionClosed,
        `${what}: consumer is reconnecting`,
        this.#where,
      );
    }
    return this.#cnx;
  }

  /** Deletes the subscription on the broker and closes this consumer. */
  async unsubscribe(): Promise<void> {
    const cnx = this.#requireReady('unsubscribe');
    const requestId = cnx.newRequestId();
    await cnx.request(cmds.unsubscribe(this.#id, requestId), requestId, { topic: this.topic });
    cnx.unregisterConsumer(this.#id);
    this.#shutdown(this.#closedErr('unsubscribe'));
  }

  /** Sends pending acks, closes the consumer on the broker, and ends receive()/iteration. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'closing') return;
    const cnx = this.#state === 'ready' ? this.#cnx : null;
    this.#state = 'closing';
    if (cnx) {
      this.#flushAcks();
      const requestId = cnx.newRequestId();
      try {
        await cnx.request(cmds.closeConsumer(this.#id, requestId), requestId, { topic: this.topic });
      } catch (e) {
        if (!(e instanceof PulsarError) || e instanceof ServerError) {
          this.#client.logger.warn({ ...this.#where, err: (e as Error).message }, 'CLOSE_CONSUMER failed');
        }
      }
      cnx.unregisterConsumer(this.#id);
    }
    this.#shutdown(null);
  }

  #shutdown(err: PulsarError | null): void {
    this.#state = 'closed';
    this.#closedError = err;
    this.#cnx = null;
    for (const t of [this.#ackTimer, this.#nackTimer, this.#reconnectTimer, this.#chunkTimer])
      if (t) clearTimeout(t);
    this.#ackTimer = this.#nackTimer = this.#reconnectTimer = this.#chunkTimer = null;
    this.#chunks.clear();
    this.#clearQueue();
    this.#batches.clear();
    this.#nacks.clear();
    const closed = this.#closedErr('receive');
    for (const w of this.#waiters.splice(0)) w.reject(closed);
    this.#client.forget(this);
  }
}
