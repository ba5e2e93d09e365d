// Reassembly of chunked messages. A producer with chunking enabled splits one large (compressed) payload into
// entries that share a uuid and carry chunk_id / num_chunks_from_msg / total_chunk_msg_size. This assembler,
// driven by those fields and a clock, joins them back, and decides what happens to chunk entries that can
// never become a message: expired incomplete sets are acked (like the Java client: their producer is gone),
// sets evicted to keep memory bounded are redelivered, broken sets are redelivered (or acked if already
// older than the expiry). Memory is bounded by a number of pending messages and by bytes (each set reserves
// its total size when its first chunk arrives; a claim beyond the limits is refused before allocating). Pure.

export interface ChunkInfo {
  uuid: string;
  chunkId: number;
  numChunks: number;
  /** Bytes of the whole (still compressed) payload. */
  totalSize: number;
  /** Publish time of this chunk, ms since the epoch. */
  publishTime: number;
}

export type ChunkDecision = 'ack' | 'redeliver' | 'discard';

/** What the consumer must do with some chunk entries that will not become a message. */
export interface ChunkAction<Id> {
  decision: ChunkDecision;
  ids: Id[];
  uuid: string;
  reason: string;
}

export interface CompleteMessage<Id> {
  uuid: string;
  payload: Uint8Array;
  /** Every chunk's id, in chunk order: acking the message acks all of them. */
  ids: Id[];
}

export interface ChunkResult<Id> {
  complete?: CompleteMessage<Id>;
  actions: ChunkAction<Id>[];
}

export interface ChunkAssemblerOptions {
  /** Incomplete sets older than this (since their first chunk arrived) expire. Default 60 s. */
  expireMs?: number;
  /** Sets assembled at once. Default 10. The oldest is evicted (redelivered) to make room. */
  maxPendingMessages?: number;
  /** Bytes reserved by pending sets. Default 128 MiB. */
  maxPendingBytes?: number;
  /** Largest whole message accepted. Default 64 MiB (and never above maxPendingBytes). */
  maxMessageBytes?: number;
  /** What expired sets get. Default 'ack' (as the Java client). */
  onExpire?: 'ack' | 'redeliver';
  /** What sets evicted for room get. Default 'redeliver' (as the Java client). */
  onEvict?: 'ack' | 'redeliver';
}

interface Pending<Id> {
  uuid: string;
  numChunks: number;
  buffer: Uint8Array;
  filled: number;
  nextChunk: number;
  ids: Id[];
  /** Clock time the first chunk arrived. */
  startedAt: number;
}

export class ChunkAssembler<Id> {
  readonly expireMs: number;
  readonly maxPendingMessages: number;
  readonly maxPendingBytes: number;
  readonly maxMessageBytes: number;
  readonly #onExpire: 'ack' | 'redeliver';
  readonly #onEvict: 'ack' | 'redeliver';
  readonly #sameId: (a: Id, b: Id) => boolean;
  /** Insertion order = age order. */
  readonly #pending = new Map<string, Pending<Id>>();
  #reservedBytes = 0;

  constructor(sameId: (a: Id, b: Id) => boolean, opts: ChunkAssemblerOptions = {}) {
    this.#sameId = sameId;
    this.expireMs = opts.expireMs ?? 60_000;
    this.maxPendingMessages = Math.max(1, opts.maxPendingMessages ?? 10);
    this.maxPendingBytes = Math.max(1, opts.maxPendingBytes ?? 128 * 1024 * 1024);
    this.maxMessageBytes = Math.min(this.maxPendingBytes, opts.maxMessageBytes ?? 64 * 1024 * 1024);
    this.#onExpire = opts.onExpire ?? 'ack';
    this.#onEvict = opts.onEvict ?? 'redeliver';
  }

  /** Incomplete sets held now. */
  get pendingMessages(): number {
    return this.#pending.size;
  }

  /** Bytes reserved by incomplete sets. */
  get pendingBytes(): number {
    return this.#reservedBytes;
  }

  /** Adds one chunk (its payload is copied). `now` is the clock (ms). */
  add(id: Id, info: ChunkInfo, payload: Uint8Array, now: number): ChunkResult<Id> {
    const actions = this.expire(now);
    const { uuid, chunkId, numChunks, totalSize } = info;
    const ctx = this.#pending.get(uuid);
    const stale = now - info.publishTime > this.expireMs;

    if (!Number.isSafeInteger(numChunks) || numChunks < 1 || chunkId < 0 || chunkId >= numChunks) {
      actions.push(this.#lone(id, uuid, stale, `invalid chunk ${chunkId} of ${numChunks}`));
      return { actions };
    }
    if (ctx) {
      if (chunkId < ctx.nextChunk) {
        // Seen already: a redelivery of the same entry is ignored; a resent copy (another entry) is acked.
        const same = this.#sameId(ctx.ids[chunkId] as Id, id);
        actions.push({
          decision: same ? 'discard' : 'ack',
          ids: [id],
          uuid,
          reason: `duplicate chunk ${chunkId} of ${numChunks}`,
        });
        return { actions };
      }
      if (chunkId > ctx.nextChunk || numChunks !== ctx.numChunks) {
        this.#drop(ctx);
        actions.push({
          decision: stale ? 'ack' : 'redeliver',
          ids: [...ctx.ids, id],
          uuid,
          reason: `chunk ${chunkId} of ${numChunks} arrived while chunk ${ctx.nextChunk} of ${ctx.numChunks} was expected`,
        });
        return { actions };
      }
      if (payload.length > ctx.buffer.length - ctx.filled) {
        this.#drop(ctx);
        actions.push({
          decision: 'discard',
          ids: [...ctx.ids, id],
          uuid,
          reason: `chunks exceed the announced total of ${ctx.buffer.length} bytes`,
        });
        return { actions };
      }
      return this.#append(ctx, id, payload, actions);
    }
    if (chunkId !== 0) {
      actions.push(
        this.#lone(id, uuid, stale, `chunk ${chunkId} of ${numChunks} without the chunks before it`),
      );
      return { actions };
    }
    if (!Number.isSafeInteger(totalSize) || totalSize < 0 || totalSize > this.maxMessageBytes) {
      actions.push({
        decision: 'discard',
        ids: [id],
        uuid,
        reason: `chunked message of ${totalSize} bytes exceeds the limit of ${this.maxMessageBytes} bytes`,
      });
      return { actions };
    }
    if (payload.length > totalSize) {
      actions.push({
        decision: 'discard',
        ids: [id],
        uuid,
        reason: `first chunk larger than the announced total of ${totalSize} bytes`,
      });
      return { actions };
    }
    // Make room: evict the oldest sets until this one fits.
    while (
      this.#pending.size > 0 &&
      (this.#pending.size >= this.maxPendingMessages ||
        this.#reservedBytes + totalSize > this.maxPendingBytes)
    ) {
      const oldest = this.#pending.values().next().value as Pending<Id>;
      this.#drop(oldest);
      actions.push({
        decision: this.#onEvict,
        ids: oldest.ids,
        uuid: oldest.uuid,
        reason: `evicted to make room (at most ${this.maxPendingMessages} chunked messages / ${this.maxPendingBytes} bytes pending)`,
      });
    }
    const created: Pending<Id> = {
      uuid,
      numChunks,
      buffer: new Uint8Array(totalSize),
      filled: 0,
      nextChunk: 0,
      ids: [],
      startedAt: now,
    };
    this.#pending.set(uuid, created);
    this.#reservedBytes += totalSize;
    return this.#append(created, id, payload, actions);
  }

  #lone(id: Id, uuid: string, stale: boolean, reason: string): ChunkAction<Id> {
    // A chunk that cannot start or continue a set: redelivered so its set can be read again in order,
    // or acked when it is so old that its set has expired anyway.
    return { decision: stale ? 'ack' : 'redeliver', ids: [id], uuid, reason };
  }

  #append(ctx: Pending<Id>, id: Id, payload: Uint8Array, actions: ChunkAction<Id>[]): ChunkResult<Id> {
    ctx.buffer.set(payload, ctx.filled);
    ctx.filled += payload.length;
    ctx.ids.push(id);
    ctx.nextChunk++;
    if (ctx.nextChunk < ctx.numChunks) return { actions };
    this.#drop(ctx);
    if (ctx.filled !== ctx.buffer.length) {
      actions.push({
        decision: 'discard',
        ids: ctx.ids,
        uuid: ctx.uuid,
        reason: `chunks hold ${ctx.filled} bytes, the announced total is ${ctx.buffer.length}`,
      });
      return { actions };
    }
    return { complete: { uuid: ctx.uuid, payload: ctx.buffer, ids: ctx.ids }, actions };
  }

  #drop(ctx: Pending<Id>): void {
    if (this.#pending.delete(ctx.uuid)) this.#reservedBytes -= ctx.buffer.length;
  }

  /** Removes sets whose first chunk arrived more than expireMs ago. */
  expire(now: number): ChunkAction<Id>[] {
    const out: ChunkAction<Id>[] = [];
    for (const ctx of this.#pending.values()) {
      if (now - ctx.startedAt <= this.expireMs) break; // insertion order: the rest are younger
      this.#drop(ctx);
      out.push({
        decision: this.#onExpire,
        ids: ctx.ids,
        uuid: ctx.uuid,
        reason: `incomplete after ${this.expireMs} ms (${ctx.nextChunk} of ${ctx.numChunks} chunks)`,
      });
    }
    return out;
  }

  /** Forgets every pending set (reconnect, seek, close): the broker redelivers their chunks. */
  clear(): void {
    this.#pending.clear();
    this.#reservedBytes = 0;
  }
}
