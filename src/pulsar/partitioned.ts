// Partitioned topics. A consumer of a partitioned topic is one Consumer per partition (each with its own
// lookup, connection and receiver queue) merged into one bounded queue; acks, nacks and seeks go to the
// partition a message came from. A producer is one Producer per partition; a message with a key goes to the
// partition the Java client's default router picks (Murmur3 of the key), others round-robin. Both check the
// topic's partition count periodically and start on partitions added later.

import type { PulsarClient } from './client.ts';
import { Consumer, type ConsumerOptions, type Message } from './consumer.ts';
import { PulsarError, PulsarErrorCode } from './errors.ts';
import { MessageId } from './message-id.ts';
import { PartitionRouter } from './murmur3.ts';
import { type OutgoingMessage, Producer, type ProducerOptions } from './producer.ts';
import { parseTopicName } from './topic.ts';

/** Default interval of the partition count check. */
export const AUTO_UPDATE_PARTITIONS_MS = 60_000;

export function partitionTopic(topic: string, index: number): string {
  return `${parseTopicName(topic).full}-partition-${index}`;
}

interface Waiter {
  resolve: (m: Message) => void;
  reject: (e: Error) => void;
}

export class PartitionedConsumer extends Consumer {
  readonly #client: PulsarClient;
  readonly #opts: ConsumerOptions;
  readonly #children: Consumer[] = [];
  readonly #byTopic = new Map<string, Consumer>();
  readonly #limit: number;
  #queue: Message[] = [];
  #head = 0;
  readonly #waiters: Waiter[] = [];
  readonly #space: (() => void)[] = [];
  #closed = false;
  #updater: NodeJS.Timeout | null = null;
  #partitions: number;

  constructor(client: PulsarClient, opts: ConsumerOptions, id: bigint, partitions: number) {
    super(client, opts, id);
    this.#client = client;
    this.#opts = opts;
    this.#partitions = partitions;
    this.#limit = Math.max(1, opts.receiverQueueSize ?? 1000);
  }

  /** Partitions consumed now. */
  get partitions(): number {
    return this.#children.length;
  }

  /** Every partition's consumer is subscribed on a live connection. */
  override get connected(): boolean {
    return !this.#closed && this.#children.length > 0 && this.#children.every((c) => c.connected);
  }

  override async start(): Promise<void> {
    try {
      await this.#addPartitions(0, this.#partitions, this.#opts.initialPosition);
    } catch (e) {
      await this.#shutdown();
      throw e;
    }
    const every = this.#opts.autoUpdatePartitionsIntervalMs ?? AUTO_UPDATE_PARTITIONS_MS;
    if (every > 0) {
      this.#updater = setInterval(() => void this.#checkPartitions(), every);
      this.#updater.unref();
    }
  }

  async #addPartitions(from: number, to: number, initialPosition: ConsumerOptions['initialPosition']) {
    const created = await Promise.all(
      Array.from({ length: to - from }, (_, i) =>
        this.#client.subscribe({
          ...this.#opts,
          topic: partitionTopic(this.topic, from + i),
          initialPosition,
        }),
      ),
    );
    if (this.#closed) {
      await Promise.allSettled(created.map((c) => c.close()));
      return;
    }
    for (const c of created) {
      this.#children.push(c);
      this.#byTopic.set(c.topic, c);
      void this.#pump(c);
    }
  }

  async #checkPartitions(): Promise<void> {
    if (this.#closed) return;
    try {
      const n = await this.#client.partitions(this.topic);
      const have = this.#children.length;
      if (n <= have || this.#closed) return;
      this.#client.logger.info(
        { topic: this.topic, subscription: this.subscription, from: have, to: n },
        'partitions added: subscribing to them',
      );
      // New partitions: from their beginning, so nothing produced before this check is missed.
      await this.#addPartitions(have, n, 'Earliest');
    } catch (e) {
      this.#client.logger.warn(
        { topic: this.topic, err: (e as Error).message },
        'partition count check failed; retrying at the next interval',
      );
    }
  }

  /** Moves messages from one partition's consumer into the shared queue, at most #limit buffered. */
  async #pump(child: Consumer): Promise<void> {
    for (;;) {
      while (!this.#closed && this.#queue.length - this.#head >= this.#limit) {
        await new Promise<void>((r) => this.#space.push(r));
      }
      if (this.#closed) return;
      let m: Message;
      try {
        m = await child.receive();
      } catch (e) {
        if (!this.#closed) {
          this.#client.logger.error(
            { topic: child.topic, subscription: this.subscription, err: (e as Error).message },
            'partition consumer stopped',
          );
        }
        return;
      }
      if (this.#closed) {
        child.nack(m);
        return;
      }
      const w = this.#waiters.shift();
      if (w) w.resolve(m);
      else this.#queue.push(m);
    }
  }

  #childOf(msg: Message | MessageId, what: string): Consumer {
    const topic =
      msg instanceof MessageId ? partitionTopic(this.topic, msg.partition) : (msg as Message).topic;
    const c = this.#byTopic.get(topic);
    if (!c) {
      throw new PulsarError(
        PulsarErrorCode.InvalidArgument,
        `${what}: ${topic} is not a partition of ${this.topic} consumed here`,
        { topic: this.topic },
      );
    }
    return c;
  }

  override tryReceive(): Message | undefined {
    if (this.#head >= this.#queue.length) return undefined;
    const m = this.#queue[this.#head] as Message;
    (this.#queue as (Message | undefined)[])[this.#head] = undefined;
    this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    const s = this.#space.shift();
    if (s) s();
    return m;
  }

  override receive(): Promise<Message> {
    const m = this.tryReceive();
    if (m !== undefined) return Promise.resolve(m);
    if (this.#closed) return Promise.reject(this.#closedErr('receive'));
    return new Promise<Message>((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  override get queued(): number {
    let n = this.#queue.length - this.#head;
    for (const c of this.#children) n += c.queued;
    return n;
  }

  override get reachedEndOfTopic(): boolean {
    return this.#children.length > 0 && this.#children.every((c) => c.reachedEndOfTopic);
  }

  override get pendingChunks(): { messages: number; bytes: number } {
    let messages = 0;
    let bytes = 0;
    for (const c of this.#children) {
      messages += c.pendingChunks.messages;
      bytes += c.pendingChunks.bytes;
    }
    return { messages, bytes };
  }

  override ack(msg: Message): Promise<void> {
    try {
      return this.#childOf(msg, 'ack').ack(msg);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  override ackCumulative(msg: Message): Promise<void> {
    try {
      return this.#childOf(msg, 'ackCumulative').ackCumulative(msg);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  override nack(msg: Message): void {
    this.#childOf(msg, 'nack').nack(msg);
  }

  /** A message id moves its own partition; a time moves every partition. */
  override async seek(target: MessageId | number | Date): Promise<void> {
    this.#dropBuffered();
    if (target instanceof MessageId) await this.#childOf(target, 'seek').seek(target);
    else await Promise.all(this.#children.map((c) => c.seek(target)));
  }

  #dropBuffered(): void {
    // Buffered messages of the old position are not delivered; unacked, the broker redelivers what is needed.
    this.#queue = [];
    this.#head = 0;
    for (const s of this.#space.splice(0)) s();
  }

  override async unsubscribe(): Promise<void> {
    await Promise.all(this.#children.map((c) => c.unsubscribe()));
    await this.#shutdown();
  }

  override async close(): Promise<void> {
    if (this.#closed) return;
    await this.#shutdown();
  }

  async #shutdown(): Promise<void> {
    this.#closed = true;
    if (this.#updater) clearInterval(this.#updater);
    this.#updater = null;
    this.#dropBuffered();
    await Promise.allSettled(this.#children.map((c) => c.close()));
    const err = this.#closedErr('receive');
    for (const w of this.#waiters.splice(0)) w.reject(err);
    this.#client.forget(this);
  }

  #closedErr(what: string): PulsarError {
    return new PulsarError(
      PulsarErrorCode.AlreadyClosed,
      `${what}: consumer ${this.subscription} on ${this.topic} is closed`,
      { topic: this.topic, subscription: this.subscription },
    );
  }
}

export class PartitionedProducer extends Producer {
  readonly #client: PulsarClient;
  readonly #opts: ProducerOptions;
  readonly #children: Producer[] = [];
  readonly #router: PartitionRouter;
  #partitions: number;
  #closed = false;
  #updater: NodeJS.Timeout | null = null;
  #adding: Promise<void> | null = null;

  constructor(client: PulsarClient, opts: ProducerOptions, id: bigint, partitions: number) {
    super(client, opts, id);
    this.#client = client;
    this.#opts = opts;
    this.#partitions = partitions;
    this.#router = new PartitionRouter(opts.hashingScheme ?? 'JavaStringHash');
  }

  get partitions(): number {
    return this.#children.length;
  }

  override get pending(): number {
    let n = 0;
    for (const p of this.#children) n += p.pending;
    return n;
  }

  override get producerName(): string | undefined {
    return this.#opts.producerName ?? this.#children[0]?.producerName;
  }

  override async start(): Promise<void> {
    try {
      await this.#addPartitions(0, this.#partitions);
    } catch (e) {
      await this.#shutdown();
      throw e;
    }
    const every = this.#opts.autoUpdatePartitionsIntervalMs ?? AUTO_UPDATE_PARTITIONS_MS;
    if (every > 0) {
      this.#updater = setInterval(() => void this.#checkPartitions(), every);
      this.#updater.unref();
    }
  }

  async #addPartitions(from: number, to: number): Promise<void> {
    const created = await Promise.all(
      Array.from({ length: to - from }, (_, i) =>
        this.#client.createProducer({ ...this.#opts, topic: partitionTopic(this.topic, from + i) }),
      ),
    );
    if (this.#closed) {
      await Promise.allSettled(created.map((p) => p.close()));
      return;
    }
    this.#children.push(...created);
  }

  async #checkPartitions(): Promise<void> {
    if (this.#closed || this.#adding) return;
    try {
      const n = await this.#client.partitions(this.topic);
      const have = this.#children.length;
      if (n <= have || this.#closed) return;
      this.#client.logger.info(
        { topic: this.topic, from: have, to: n },
        'partitions added: producing to them',
      );
      this.#adding = this.#addPartitions(have, n);
      await this.#adding;
    } catch (e) {
      this.#client.logger.warn(
        { topic: this.topic, err: (e as Error).message },
        'partition count check failed; retrying at the next interval',
      );
    } finally {
      this.#adding = null;
    }
  }

  /** The partition a message goes to: by key hash (Java-compatible), round-robin without a key. */
  partitionFor(msg: OutgoingMessage): number {
    return this.#router.choose(msg.key, this.#children.length);
  }

  override async send(msg: OutgoingMessage): Promise<MessageId> {
    if (this.#closed) {
      throw new PulsarError(PulsarErrorCode.AlreadyClosed, `send: producer on ${this.topic} is closed`, {
        topic: this.topic,
      });
    }
    const p = this.partitionFor(msg);
    const id = await (this.#children[p] as Producer).send(msg);
    return id.partition === p ? id : new MessageId(id.ledgerId, id.entryId, p, id.batchIndex, id.batchSize);
  }

  override async flush(): Promise<void> {
    await Promise.all(this.#children.map((p) => p.flush()));
  }

  override async close(): Promise<void> {
    if (this.#closed) return;
    await this.#shutdown();
  }

  async #shutdown(): Promise<void> {
    this.#closed = true;
    if (this.#updater) clearInterval(this.#updater);
    this.#updater = null;
    await Promise.allSettled(this.#children.map((p) => p.close()));
    this.#client.forget(this);
  }
}
