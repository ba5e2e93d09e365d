// PulsarClient: connection pool (keyed by the broker's logical address), topic lookup, and the retry/backoff
// used by consumers and producers to (re)connect.

import type tls from 'node:tls';
import { type AuthProvider, type Logger, silentLogger } from './auth.ts';
import './codecs/index.ts';
import * as cmds from './commands.ts';
import { Connection, parseServiceUrl, type SocketFactory } from './connection.ts';
import { Consumer, type ConsumerOptions } from './consumer.ts';
import { PulsarError, PulsarErrorCode, ServerError } from './errors.ts';
import { Producer, type ProducerOptions } from './producer.ts';
import { CommandLookupTopicResponse_LookupType } from './proto/generated/PulsarApi.ts';
import { parseTopicName } from './topic.ts';

export interface ClientOptions {
  /** pulsar://host:port (pulsar+ssl:// with `tls`, issue 5). */
  serviceUrl: string;
  /** Timeout of each request to a broker (lookup, subscribe, producer, seek...). Default 30 s. */
  operationTimeoutMs?: number;
  /** Keep-alive: PING after this long without traffic; the connection is dropped if PONG does not follow. */
  keepAliveIntervalMs?: number;
  /** pino-compatible logger; silent by default. */
  logger?: Logger;
  /** Authentication provider (issue 5): method name and credentials, answers AUTH_CHALLENGE. */
  auth?: AuthProvider;
  /** node:tls options for pulsar+ssl:// (issue 5). */
  tls?: tls.ConnectionOptions;
  /** Replaces how sockets are opened (tests, proxies, TLS customisation). */
  socketFactory?: SocketFactory;
  /** Reconnect backoff. Defaults 100 ms, doubling up to 30 s. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export interface BrokerAddress {
  /** The broker's own address: the pool key and what CONNECT proxies to. */
  logical: string;
  /** Where the TCP connection goes. */
  physical: string;
}

const MAX_REDIRECTS = 20;

export class PulsarClient {
  readonly serviceUrl: string;
  readonly operationTimeoutMs: number;
  readonly logger: Logger;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly #opts: ClientOptions;
  readonly #pool = new Map<string, Promise<Connection>>();
  readonly #consumers = new Set<Consumer>();
  readonly #producers = new Set<Producer>();
  #nextConsumerId = 1n;
  #nextProducerId = 1n;
  #closed = false;

  constructor(opts: ClientOptions) {
    if (!opts || typeof opts.serviceUrl !== 'string') {
      throw new PulsarError(PulsarErrorCode.InvalidArgument, 'PulsarClient: serviceUrl is required');
    }
    parseServiceUrl(opts.serviceUrl);
    this.#opts = opts;
    this.serviceUrl = opts.serviceUrl.replace(/\/$/, '');
    this.operationTimeoutMs = opts.operationTimeoutMs ?? 30_000;
    this.logger = opts.logger ?? silentLogger;
    this.initialBackoffMs = opts.initialBackoffMs ?? 100;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30_000;
  }

  get closed(): boolean {
    return this.#closed;
  }

  async subscribe(opts: ConsumerOptions): Promise<Consumer> {
    this.#checkOpen('subscribe');
    const partitions = await this.partitions(opts?.topic);
    let consumer: Consumer;
    if (partitions > 0) {
      // Loaded on demand: partitioned.ts extends Consumer and Producer, which import this module.
      const { PartitionedConsumer } = await import('./partitioned.ts');
      consumer = new PartitionedConsumer(this, opts, this.#nextConsumerId++, partitions);
    } else {
      consumer = new Consumer(this, opts, this.#nextConsumerId++);
    }
    this.#consumers.add(consumer);
    try {
      await consumer.start();
    } catch (e) {
      this.#consumers.delete(consumer);
      throw e;
    }
    return consumer;
  }

  async createProducer(opts: ProducerOptions): Promise<Producer> {
    this.#checkOpen('createProducer');
    const partitions = await this.partitions(opts?.topic);
    let producer: Producer;
    if (partitions > 0) {
      const { PartitionedProducer } = await import('./partitioned.ts');
      producer = new PartitionedProducer(this, opts, this.#nextProducerId++, partitions);
    } else {
      producer = new Producer(this, opts, this.#nextProducerId++);
    }
    this.#producers.add(producer);
    try {
      await producer.start();
    } catch (e) {
      this.#producers.delete(producer);
      throw e;
    }
    return producer;
  }

  /** Closes every producer (flushing) and consumer, then every connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await Promise.allSettled([...this.#producers].map((p) => p.close()));
    await Promise.allSettled([...this.#consumers].map((c) => c.close()));
    this.#closed = true;
    const pool = [...this.#pool.values()];
    this.#pool.clear();
    for (const p of pool) {
      p.then(
        (c) => c.close(),
        () => {},
      );
    }
  }

  /** @internal */
  forget(x: Consumer | Producer): void {
    if (x instanceof Consumer) this.#consumers.delete(x);
    else this.#producers.delete(x);
  }

  #checkOpen(what: string): void {
    if (this.#closed) throw new PulsarError(PulsarErrorCode.AlreadyClosed, `${what}: the client is closed`);
  }

  /** @internal A connection to `logical`, opened through `physical`; shared by everything that needs it. */
  getConnection(address: BrokerAddress): Promise<Connection> {
    this.#checkOpen('connect');
    const existing = this.#pool.get(address.logical);
    if (existing) return existing;
    const cnx = new Connection({
      logicalAddress: address.logical,
      physicalAddress: address.physical,
      operationTimeoutMs: this.operationTimeoutMs,
      keepAliveIntervalMs: this.#opts.keepAliveIntervalMs,
      socketFactory: this.#opts.socketFactory,
      tls: this.#opts.tls,
      auth: this.#opts.auth,
      logger: this.logger,
    });
    const opened = cnx.open().then(() => cnx);
    this.#pool.set(address.logical, opened);
    cnx.onClose(() => {
      if (this.#pool.get(address.logical) === opened) this.#pool.delete(address.logical);
    });
    opened.catch(() => {
      if (this.#pool.get(address.logical) === opened) this.#pool.delete(address.logical);
    });
    return opened;
  }

  /** @internal Finds the broker serving a topic: LOOKUP, following redirects. */
  async lookup(topic: string): Promise<BrokerAddress> {
    const full = parseTopicName(topic).full;
    const useTls = parseServiceUrl(this.serviceUrl).tls;
    let target: BrokerAddress = { logical: this.serviceUrl, physical: this.serviceUrl };
    let authoritative = false;
    for (let i = 0; i < MAX_REDIRECTS; i++) {
      const cnx = await this.getConnection(target);
      const requestId = cnx.newRequestId();
      const answer = await cnx.request(cmds.lookup(full, requestId, authoritative), requestId, {
        topic: full,
      });
      const r = answer.lookupTopicResponse;
      if (!r)
        throw new PulsarError(PulsarErrorCode.ProtocolError, 'LOOKUP answered without a lookup response');
      if (r.response === CommandLookupTopicResponse_LookupType.Failed) {
        throw new ServerError(r.error ?? 0, cmds.serverErrorName(r.error), r.message ?? '', {
          command: 'LOOKUP',
          topic: full,
          broker: target.logical,
        });
      }
      const url = useTls ? r.brokerServiceUrlTls : r.brokerServiceUrl;
      if (!url) {
        throw new PulsarError(
          PulsarErrorCode.LookupFailed,
          `LOOKUP ${full}: the broker gave no ${useTls ? 'TLS ' : ''}URL`,
          {
            topic: full,
            broker: target.logical,
          },
        );
      }
      const next: BrokerAddress = {
        logical: url,
        physical: r.proxyThroughServiceUrl ? this.serviceUrl : url,
      };
      if (r.response === CommandLookupTopicResponse_LookupType.Connect) return next;
      authoritative = r.authoritative ?? false;
      target = next;
    }
    throw new PulsarError(
      PulsarErrorCode.LookupFailed,
      `LOOKUP ${full}: more than ${MAX_REDIRECTS} redirects`,
      {
        topic: full,
      },
    );
  }

  /** @internal Partitions of a topic (0 for a non-partitioned topic). */
  async partitions(topic: string): Promise<number> {
    const full = parseTopicName(topic).full;
    const cnx = await this.getConnection({ logical: this.serviceUrl, physical: this.serviceUrl });
    const requestId = cnx.newRequestId();
    const answer = await cnx.request(cmds.partitionedMetadata(full, requestId), requestId, { topic: full });
    const r = answer.partitionMetadataResponse;
    if (!r)
      throw new PulsarError(
        PulsarErrorCode.ProtocolError,
        'PARTITIONED_METADATA answered without a response',
      );
    if (r.response === 1) {
      throw new ServerError(r.error ?? 0, cmds.serverErrorName(r.error), r.message ?? '', {
        command: 'PARTITIONED_METADATA',
        topic: full,
      });
    }
    return r.partitions ?? 0;
  }
}

/** Errors worth retrying: lost or unreachable connections, timeouts, and transient broker errors. */
export function isRetriable(e: unknown, reconnecting: boolean): boolean {
  if (e instanceof ServerError) {
    if (e.retriable) return true;
    // After a lost connection the broker may still hold our old registration for a moment.
    return reconnecting && (e.serverError === 'ConsumerBusy' || e.serverError === 'ProducerBusy');
  }
  if (e instanceof PulsarError) {
    return (
      e.code === PulsarErrorCode.ConnectionClosed ||
      e.code === PulsarErrorCode.ConnectionFailed ||
      e.code === PulsarErrorCode.Timeout
    );
  }
  return false;
}

export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  #next: number;

  constructor(initial: number, max: number) {
    this.#initial = initial;
    this.#max = max;
    this.#next = initial;
  }

  /** The next delay (with ±10% jitter), doubling up to the maximum. */
  next(): number {
    const d = this.#next;
    this.#next = Math.min(this.#max, this.#next * 2);
    return Math.round(d * (0.9 + Math.random() * 0.2));
  }

  reset(): void {
    this.#next = this.#initial;
  }
}
