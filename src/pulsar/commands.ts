// Typed builders for the commands this client sends, and helpers to read the ones it receives. Pure.

import { encodeCommand } from './frame.ts';
import {
  type BaseCommand,
  BaseCommand_Type,
  type CommandAck_AckType,
  CommandSubscribe_InitialPosition,
  CommandSubscribe_SubType,
  type KeySharedMeta,
  KeySharedMode,
  type KeyValue,
  type MessageIdData,
  ServerError as ServerErrorCodes,
} from './proto/generated/PulsarApi.ts';

/** The protocol version this client speaks (the broker answers with the lower of its own and this). */
export const PROTOCOL_VERSION = 21;
export const CLIENT_VERSION = 'kubeless-pulsar-trigger-ts/0.1';

export type SubscriptionType = 'Exclusive' | 'Shared' | 'Failover' | 'Key_Shared';
export type InitialPosition = 'Latest' | 'Earliest';

export const SUB_TYPES: Record<SubscriptionType, CommandSubscribe_SubType> = {
  Exclusive: CommandSubscribe_SubType.Exclusive,
  Shared: CommandSubscribe_SubType.Shared,
  Failover: CommandSubscribe_SubType.Failover,
  Key_Shared: CommandSubscribe_SubType.Key_Shared,
};

const SERVER_ERROR_NAMES = new Map<number, string>(Object.entries(ServerErrorCodes).map(([k, v]) => [v, k]));

export function serverErrorName(code: number | undefined): string {
  return SERVER_ERROR_NAMES.get(code ?? 0) ?? `ServerError(${code})`;
}

export function toKeyValues(properties: Record<string, string> | undefined): KeyValue[] {
  if (!properties) return [];
  const out: KeyValue[] = [];
  for (const key in properties) out.push({ key, value: String(properties[key]) });
  return out;
}

export function fromKeyValues(kvs: readonly KeyValue[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < kvs.length; i++) {
    const kv = kvs[i] as KeyValue;
    out[kv.key] = kv.value;
  }
  return out;
}

export interface ConnectArgs {
  authMethodName?: string | undefined;
  authData?: Uint8Array | undefined;
  /** Set when connecting through a proxy or service URL to reach this broker (`proxyThroughServiceUrl`). */
  proxyToBrokerUrl?: string | undefined;
}

export function connect(args: ConnectArgs = {}): BaseCommand {
  return {
    type: BaseCommand_Type.CONNECT,
    connect: {
      clientVersion: CLIENT_VERSION,
      protocolVersion: PROTOCOL_VERSION,
      authMethodName: args.authMethodName,
      authData: args.authData ? Buffer.from(args.authData) : undefined,
      proxyToBrokerUrl: args.proxyToBrokerUrl,
      featureFlags: { supportsAuthRefresh: true },
    },
  };
}

export function authResponse(authMethodName: string, authData: Uint8Array): BaseCommand {
  return {
    type: BaseCommand_Type.AUTH_RESPONSE,
    authResponse: {
      clientVersion: CLIENT_VERSION,
      protocolVersion: PROTOCOL_VERSION,
      response: { authMethodName, authData: Buffer.from(authData) },
    },
  };
}

// PING and PONG never change: encode them once.
export const PING_FRAME = encodeCommand({ type: BaseCommand_Type.PING, ping: {} });
export const PONG_FRAME = encodeCommand({ type: BaseCommand_Type.PONG, pong: {} });

export function lookup(topic: string, requestId: bigint, authoritative: boolean): BaseCommand {
  return { type: BaseCommand_Type.LOOKUP, lookupTopic: { topic, requestId, authoritative } };
}

export function partitionedMetadata(topic: string, requestId: bigint): BaseCommand {
  return { type: BaseCommand_Type.PARTITIONED_METADATA, partitionMetadata: { topic, requestId } };
}

export interface SubscribeArgs {
  topic: string;
  subscription: string;
  subscriptionType: SubscriptionType;
  consumerId: bigint;
  requestId: bigint;
  consumerName?: string | undefined;
  initialPosition: InitialPosition;
  durable: boolean;
  /** Non-durable subscriptions only: where to start. */
  startMessageId?: MessageIdData | undefined;
  priorityLevel?: number | undefined;
  readCompacted?: boolean | undefined;
  /** Key_Shared only; default auto-split. */
  keySharedPolicy?: KeySharedPolicy | undefined;
}

/**
 * Key_Shared modes. AutoSplit: the broker splits the key-hash range among consumers. Sticky: this consumer
 * takes the given inclusive ranges of the 0..65535 key-hash space (murmur3 of the key mod 65536), which must
 * not overlap those of other consumers.
 */
export type KeySharedPolicy =
  | { mode: 'AutoSplit'; allowOutOfOrderDelivery?: boolean | undefined }
  | {
      mode: 'Sticky';
      ranges: readonly (readonly [start: number, end: number])[];
      allowOutOfOrderDelivery?: boolean | undefined;
    };

/** Checks a Sticky policy's ranges (in 0..65535, start <= end, not overlapping); returns a problem or undefined. */
export function keySharedPolicyProblem(p: KeySharedPolicy): string | undefined {
  if (p.mode === 'AutoSplit') return undefined;
  if (p.mode !== 'Sticky') return `unknown Key_Shared mode '${(p as { mode: string }).mode}'`;
  if (!Array.isArray(p.ranges) || p.ranges.length === 0)
    return 'Sticky Key_Shared needs at least one hash range';
  const sorted = [...p.ranges].sort((a, b) => a[0] - b[0]);
  let prevEnd = -1;
  for (const [start, end] of sorted) {
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > 65535 || start > end) {
      return `invalid hash range [${start}, ${end}]: expected 0 <= start <= end <= 65535`;
    }
    if (start <= prevEnd) return `hash range [${start}, ${end}] overlaps the range ending at ${prevEnd}`;
    prevEnd = end;
  }
  return undefined;
}

export function subscribe(a: SubscribeArgs): BaseCommand {
  return {
    type: BaseCommand_Type.SUBSCRIBE,
    subscribe: {
      topic: a.topic,
      subscription: a.subscription,
      subType: SUB_TYPES[a.subscriptionType],
      consumerId: a.consumerId,
      requestId: a.requestId,
      consumerName: a.consumerName,
      priorityLevel: a.priorityLevel,
      durable: a.durable,
      startMessageId: a.startMessageId,
      metadata: [],
      readCompacted: a.readCompacted,
      initialPosition:
        a.initialPosition === 'Earliest'
          ? CommandSubscribe_InitialPosition.Earliest
          : CommandSubscribe_InitialPosition.Latest,
      subscriptionProperties: [],
      keySharedMeta: a.subscriptionType === 'Key_Shared' ? keySharedMeta(a.keySharedPolicy) : undefined,
    },
  };
}

function keySharedMeta(p: KeySharedPolicy | undefined): KeySharedMeta {
  if (p?.mode === 'Sticky') {
    return {
      keySharedMode: KeySharedMode.STICKY,
      hashRanges: p.ranges.map(([start, end]) => ({ start, end })),
      allowOutOfOrderDelivery: p.allowOutOfOrderDelivery ?? false,
    };
  }
  return {
    keySharedMode: KeySharedMode.AUTO_SPLIT,
    hashRanges: [],
    allowOutOfOrderDelivery: p?.allowOutOfOrderDelivery ?? false,
  };
}

export function flow(consumerId: bigint, messagePermits: number): BaseCommand {
  return { type: BaseCommand_Type.FLOW, flow: { consumerId, messagePermits } };
}

export function ack(
  consumerId: bigint,
  ackType: CommandAck_AckType,
  messageIds: MessageIdData[],
): BaseCommand {
  return { type: BaseCommand_Type.ACK, ack: { consumerId, ackType, messageId: messageIds, properties: [] } };
}

export function redeliver(consumerId: bigint, messageIds: MessageIdData[]): BaseCommand {
  return {
    type: BaseCommand_Type.REDELIVER_UNACKNOWLEDGED_MESSAGES,
    redeliverUnacknowledgedMessages: { consumerId, messageIds },
  };
}

export function seek(consumerId: bigint, requestId: bigint, target: MessageIdData | bigint): BaseCommand {
  return {
    type: BaseCommand_Type.SEEK,
    seek:
      typeof target === 'bigint'
        ? { consumerId, requestId, messagePublishTime: target }
        : { consumerId, requestId, messageId: target },
  };
}

export function unsubscribe(consumerId: bigint, requestId: bigint): BaseCommand {
  return { type: BaseCommand_Type.UNSUBSCRIBE, unsubscribe: { consumerId, requestId } };
}

export function closeConsumer(consumerId: bigint, requestId: bigint): BaseCommand {
  return { type: BaseCommand_Type.CLOSE_CONSUMER, closeConsumer: { consumerId, requestId } };
}

export function getLastMessageId(consumerId: bigint, requestId: bigint): BaseCommand {
  return { type: BaseCommand_Type.GET_LAST_MESSAGE_ID, getLastMessageId: { consumerId, requestId } };
}

export interface ProducerArgs {
  topic: string;
  producerId: bigint;
  requestId: bigint;
  producerName?: string | undefined;
  epoch?: bigint | undefined;
}

export function producer(a: ProducerArgs): BaseCommand {
  return {
    type: BaseCommand_Type.PRODUCER,
    producer: {
      topic: a.topic,
      producerId: a.producerId,
      requestId: a.requestId,
      producerName: a.producerName,
      userProvidedProducerName: a.producerName !== undefined,
      epoch: a.epoch,
      metadata: [],
    },
  };
}

export function send(
  producerId: bigint,
  sequenceId: bigint,
  numMessages: number,
  highestSequenceId?: bigint,
): BaseCommand {
  return {
    type: BaseCommand_Type.SEND,
    send: { producerId, sequenceId, numMessages, highestSequenceId },
  };
}

export function closeProducer(producerId: bigint, requestId: bigint): BaseCommand {
  return { type: BaseCommand_Type.CLOSE_PRODUCER, closeProducer: { producerId, requestId } };
}

/** The request id a response command answers, if it is a response. */
export function responseRequestId(c: BaseCommand): bigint | undefined {
  switch (c.type) {
    case BaseCommand_Type.SUCCESS:
      return c.success?.requestId;
    case BaseCommand_Type.ERROR:
      return c.error?.requestId;
    case BaseCommand_Type.PRODUCER_SUCCESS:
      return c.producerSuccess?.requestId;
    case BaseCommand_Type.LOOKUP_RESPONSE:
      return c.lookupTopicResponse?.requestId;
    case BaseCommand_Type.PARTITIONED_METADATA_RESPONSE:
      return c.partitionMetadataResponse?.requestId;
    case BaseCommand_Type.GET_LAST_MESSAGE_ID_RESPONSE:
      return c.getLastMessageIdResponse?.requestId;
    case BaseCommand_Type.ACK_RESPONSE:
      return c.ackResponse?.requestId;
    default:
      return undefined;
  }
}
