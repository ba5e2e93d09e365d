// The one adapter between the runner's ports and our Pulsar client (src/pulsar/). Thin on purpose: subscribe,
// translate messages, ack/nack, and a producer for the dead-letter topic opened on first use.

import { readFile } from 'node:fs/promises';
import type { AuthProvider } from '../pulsar/auth.ts';
import { type Consumer, type Message, PulsarClient } from '../pulsar/index.ts';
import { TokenAuth } from '../pulsar/token.ts';
import { type DispatcherSettings, tokenSource } from '../trigger/settings.ts';
import type { ConnectOptions } from './app.ts';
import type { DeadLetterSink, MessageSource, SourceConnection } from './ports.ts';
import type { SourceMessage } from './request.ts';

export interface PulsarSourceMessage extends SourceMessage {
  readonly raw: Message;
}

/**
 * A received message as the runner sees it: the id string and the client's message, whose fields are read through
 * (one small object per message instead of a copy of every field).
 */
class Received implements PulsarSourceMessage {
  readonly id: string;
  readonly raw: Message;
  constructor(raw: Message) {
    this.raw = raw;
    this.id = raw.messageId.toString();
  }
  get payload(): Uint8Array {
    return this.raw.payload;
  }
  get key(): string | undefined {
    return this.raw.key;
  }
  get properties(): Readonly<Record<string, string>> {
    return this.raw.properties;
  }
  get eventTime(): number | undefined {
    return this.raw.eventTime;
  }
  get publishTime(): number {
    return this.raw.publishTime;
  }
  get redeliveryCount(): number {
    return this.raw.redeliveryCount;
  }
  get topic(): string {
    return this.raw.topic;
  }
}

export type PulsarConnection = SourceConnection<PulsarSourceMessage>;

export interface PulsarConnectOptions extends ConnectOptions {
  consumerName?: string;
}

/**
 * Token authentication from the settings (the file wins over the variable: tokenSource). A file is read afresh,
 * and trimmed, for every CONNECT and every AUTH_CHALLENGE, so a rotated Secret is picked up by live connections
 * without a restart; each read is logged at debug level by where it came from and what for, never by content.
 */
export function tokenAuth(
  settings: Pick<DispatcherSettings, 'authToken' | 'authTokenFile'>,
  log?: { debug(obj: object, msg?: string): void },
): (AuthProvider & { readonly source: string }) | undefined {
  const from = tokenSource(settings);
  if (!from) return undefined;
  const auth = new TokenAuth(from);
  return {
    method: auth.method,
    // The connection names it when the broker refuses the credentials.
    source: auth.source,
    async data(challenge) {
      const data = await auth.data();
      log?.debug(
        { source: auth.source, for: challenge ? 'AUTH_CHALLENGE' : 'CONNECT' },
        'read the Pulsar token',
      );
      return data;
    },
  };
}

export async function connectPulsar(opts: PulsarConnectOptions): Promise<PulsarConnection> {
  const s = opts.settings;
  const auth = tokenAuth(s, opts.log);
  const tlsCa = s.tls.caFile ? await readFile(s.tls.caFile, 'utf8') : undefined;
  const client = new PulsarClient({
    serviceUrl: s.broker,
    logger: opts.log,
    ...(auth ? { auth } : {}),
    ...(s.broker.startsWith('pulsar+ssl://')
      ? {
          tls: {
            ...(tlsCa ? { ca: tlsCa } : {}),
            // verifyHostname false: the chain is still checked, only the name is not.
            ...(s.tls.verifyHostname ? {} : { checkServerIdentity: () => undefined }),
            ...(s.tls.certFile ? { cert: await readFile(s.tls.certFile, 'utf8') } : {}),
            ...(s.tls.keyFile ? { key: await readFile(s.tls.keyFile, 'utf8') } : {}),
          },
        }
      : {}),
  });
  let consumer: Consumer;
  try {
    consumer = await client.subscribe({
      topic: s.topic,
      subscription: s.subscription,
      subscriptionType: s.subscriptionType,
      initialPosition: s.initialPosition,
      receiverQueueSize: opts.receiverQueueSize,
      nackRedeliveryDelayMs: opts.releaseDelayMs,
      ...(opts.consumerName ? { consumerName: opts.consumerName } : {}),
    });
  } catch (error) {
    await client.close().catch(() => undefined);
    throw error;
  }
  let closed = false;

  const source: MessageSource<PulsarSourceMessage> = {
    async receive() {
      if (closed) return undefined;
      try {
        return new Received(await consumer.receive());
      } catch (error) {
        if (closed || (error as { code?: string }).code === 'ALREADY_CLOSED') return undefined;
        throw error;
      }
    },
    ack: (m) => consumer.ack(m.raw),
    release: (m) => {
      void Promise.resolve(consumer.nack(m.raw)).catch(() => undefined);
    },
    isReady: () => !closed && isConnected(consumer),
    async close() {
      closed = true;
      await consumer.close();
    },
  };

  const openDeadLetter = async (): Promise<DeadLetterSink> => {
    // Batching off: each dead letter is confirmed on its own, and they are rare.
    const producer = await client.createProducer({ topic: s.deadLetterTopic, batchingMaxMessages: 1 });
    return {
      async send(msg) {
        await producer.send({
          payload: msg.payload,
          ...(msg.key !== undefined ? { key: msg.key } : {}),
          properties: msg.properties,
          ...(msg.eventTime !== undefined ? { eventTime: msg.eventTime } : {}),
        });
      },
      close: () => producer.close(),
    };
  };

  return {
    source,
    openDeadLetter,
    async close() {
      closed = true;
      await client.close();
    },
  };
}

/** The consumer's connection state, if the client tells it; otherwise subscribed means ready. */
function isConnected(consumer: unknown): boolean {
  const c = consumer as { connected?: unknown; isConnected?: unknown };
  if (typeof c.isConnected === 'function') return Boolean((c.isConnected as () => unknown).call(consumer));
  if (typeof c.connected === 'boolean') return c.connected;
  return true;
}
