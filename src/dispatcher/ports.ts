// The runner's view of Pulsar, kept this small so the runner is tested with in-memory fakes and the Pulsar client
// is wired in by one thin adapter (pulsar-source.ts).

import type { SourceMessage } from './request.ts';

export type { SourceMessage };

export interface MessageSource<M extends SourceMessage = SourceMessage> {
  /** The next message; undefined once the source is closed. */
  receive(): Promise<M | undefined>;
  /** Acknowledge: the broker forgets the message. */
  ack(msg: M): Promise<void>;
  /** Hand the message back for a later redelivery, unattempted (nack). */
  release(msg: M): void;
  /** Subscribed and connected: /readyz. */
  isReady(): boolean;
  /** Unacked messages go back to the broker for redelivery (to another consumer on a shared subscription). */
  close(): Promise<void>;
}

export interface DeadLetter {
  payload: Uint8Array;
  key: string | undefined;
  properties: Record<string, string>;
  eventTime: number | undefined;
}

export interface DeadLetterSink {
  /** Resolves once the broker confirmed the message is stored. */
  send(msg: DeadLetter): Promise<void>;
  close(): Promise<void>;
}

/** A subscribed source plus a way to open the dead-letter sink: what connecting to Pulsar yields. */
export interface SourceConnection<M extends SourceMessage = SourceMessage> {
  source: MessageSource<M>;
  openDeadLetter: () => Promise<DeadLetterSink>;
  close(): Promise<void>;
}
