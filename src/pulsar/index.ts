/**
 * Pure TypeScript Apache Pulsar client (binary protocol over node:net). Public API.
 *
 * This comment is the contract the rest of the project (src/dispatcher/) codes against.
 *
 * ```ts
 * import { PulsarClient } from '../pulsar/index.ts';
 *
 * const client = new PulsarClient({
 *   serviceUrl: 'pulsar://127.0.0.1:6650', // pulsar:// or pulsar+ssl:// (with `tls`)
 *   tls: tlsOptions({ trustCertsFile, hostnameVerification, certFile, keyFile, logger }), // pulsar+ssl:// only
 *   auth: tokenAuth({ file: '/var/run/secrets/pulsar/token' }), // or { token } / { env }; file re-read on
 *                                         // every CONNECT and AUTH_CHALLENGE (rotated Secrets keep working)
 *   operationTimeoutMs: 30_000,            // per request (lookup, subscribe, producer, ack receipts...)
 *   logger,                                // optional, pino-like { debug, info, warn, error }(obj, msg)
 * });
 *
 * const consumer = await client.subscribe({
 *   topic: 'my-topic',                    // short names mean persistent://public/default/my-topic
 *   subscription: 'my-sub',
 *   subscriptionType: 'Shared',           // 'Exclusive' | 'Shared' | 'Failover' | 'Key_Shared'
 *   initialPosition: 'Earliest',          // 'Latest' (default) | 'Earliest'
 *   receiverQueueSize: 1000,              // default 1000; FLOW permits are sent when half is consumed
 *   nackRedeliveryDelayMs: 60_000,        // default 60 s
 *   consumerName: 'dispatcher-1',         // optional
 *   keySharedPolicy: { mode: 'Sticky', ranges: [[0, 32767]] }, // Key_Shared only; default { mode: 'AutoSplit' }
 *   chunking: { expireMs: 60_000, maxPendingMessages: 10, maxPendingBytes: 128 << 20 }, // chunked messages
 *   autoUpdatePartitionsIntervalMs: 60_000, // partitioned topics: look for added partitions
 *   ackGroupingMs: 10,                    // acks are grouped into one ACK command per 10 ms (or 1000 acks)
 *   batchIndexAck: true,                  // default: a partly acked batch sends its ack_set (see ack below)
 * });
 * // A partitioned topic gives a PartitionedConsumer (a Consumer): one consumer per partition, merged;
 * // msg.topic is the partition's topic, acks/nacks go to it. Chunked messages arrive whole (all chunks acked
 * // together); compressed entries (LZ4, ZLIB, ZSTD, SNAPPY) are decompressed, their claimed size bounded.
 * for await (const msg of consumer) {      // or: const msg = await consumer.receive();
 *                                         // or: consumer.tryReceive() (a buffered message or undefined, sync)
 *   msg.messageId.toString();             // 'ledger:entry:partition:batchIndex', stable
 *   msg.messageId.serialize();            // Uint8Array; MessageId.deserialize(bytes) reads it back
 *   msg.payload;                          // Uint8Array (a view, do not keep it beyond the message's life if
 *                                         // you need a copy: slice() it)
 *   msg.key;                              // string | undefined
 *   msg.properties;                       // Record<string, string>
 *   msg.eventTime;                        // number (ms since epoch) | undefined
 *   msg.publishTime;                      // number (ms since epoch)
 *   msg.redeliveryCount;                  // number
 *   msg.topic;                            // full topic name
 *   await consumer.ack(msg);              // or ackCumulative(msg) (not on Shared/Key_Shared), or nack(msg)
 * }
 * // ack() resolves once the ack is queued, not on a broker receipt: acks are grouped (ackGroupingMs) and sent
 * // without asking for one, as the Java and C++ clients do by default. At-least-once needs no receipt: an ack
 * // lost with its connection only means the message is delivered again. close() sends every pending ack
 * // before CLOSE_CONSUMER on the same connection, so acks made before close() are not lost to a clean close.
 * // A batch entry is acked when all its messages are; a partly acked one sends its ack_set (which messages are
 * // left) so a broker with acknowledgmentAtBatchIndexLevelEnabled=true redelivers only those, to any consumer;
 * // a broker without it ignores the partial ack and redelivers the whole entry (acked messages included).
 * consumer.connected;                    // subscribed on a live connection now (false while reconnecting)
 * await consumer.seek(messageId | timestampMs);
 * await consumer.unsubscribe();
 * await consumer.close();                 // ends the async iteration; messages not acked are redelivered
 *
 * const producer = await client.createProducer({
 *   topic: 'my-topic',
 *   batchingMaxMessages: 1000,            // default 1000; 1 disables batching
 *   batchingMaxBytes: 128 * 1024,         // default 128 KiB
 *   batchingMaxDelayMs: 10,               // default 10 ms
 *   maxPendingMessages: 1000,             // default 1000; send() waits (backpressure) when this many are pending
 *   producerName: 'p-1',                  // optional
 *   compressionType: 'LZ4',               // NONE (default) | LZ4 | ZLIB | ZSTD | SNAPPY
 *   hashingScheme: 'JavaStringHash',      // partitioned topics: key → partition, as the Java producer's
 *                                         // default does (or 'Murmur3_32Hash'); no key: round-robin
 * });
 * const id = await producer.send({ payload, key, properties, eventTime }); // resolves on the broker's receipt
 * await producer.flush();                 // sends the open batch and waits for every pending receipt
 * await producer.close();                 // flushes, then closes
 *
 * await client.close();                   // closes every producer, consumer and connection
 * ```
 *
 * Errors are `PulsarError` subclasses with a `code` (see errors.ts); broker errors carry the broker's
 * ServerError name in `serverError` and its message.
 *
 * Delivery: at-least-once. After a lost connection or broker restart, the client reconnects with backoff,
 * looks the topic up again, re-subscribes, and resends every send that has not received a receipt. Messages
 * handed to the caller and not acked are redelivered by the broker.
 *
 * The admin REST client (admin.ts) sits beside it, sharing token auth; the controller uses it through a port:
 *
 * ```ts
 * const admin = new PulsarAdmin({
 *   adminUrl: defaultAdminUrl('pulsar+ssl://pulsar.example:6651'), // → https://pulsar.example:8443
 *   auth: tokenAuth({ file: '/var/run/secrets/pulsar/token' }),      // sent as Authorization: Bearer
 *   tls: { ca: caPem, hostnameVerification: true },                 // PEM contents
 *   timeoutMs: 10_000,                                              // the whole call
 * });
 * await admin.createSubscription(topic, 'my-sub', 'Earliest');     // 'created' | 'exists' (cursor not moved)
 * const s = await admin.subscriptionStats(topic, 'my-sub', { oldestPublishTime: true });
 * s.exists; s.backlog; s.msgRateOut; s.consumers; s.oldestBacklogPublishTime; // ms or undefined
 * await admin.topicMessageCount(deadLetterTopic);                   // entries retained, 0 when missing
 * await admin.deleteSubscription(topic, 'my-sub');                  // 'deleted' | 'absent' (force by default)
 * admin.close();
 * ```
 * Its errors are PulsarAdminError subclasses with codes ADMIN_UNAVAILABLE, ADMIN_FORBIDDEN, ADMIN_NOT_FOUND,
 * ADMIN_REJECTED and ADMIN_BAD_RESPONSE.
 */

export {
  type AdminTlsOptions,
  adminTopicPath,
  DEFAULT_ADMIN_TIMEOUT_MS,
  DEFAULT_MAX_RESPONSE_BYTES,
  defaultAdminUrl,
  PulsarAdmin,
  type PulsarAdminApi,
  type PulsarAdminOptions,
  type SubscriptionFigures,
  type SubscriptionPosition,
  type SubscriptionStats,
  type TopicSubscriptions,
} from './admin.ts';
export {
  AdminBadResponseError,
  type AdminErrorContext,
  AdminForbiddenError,
  AdminNotFoundError,
  AdminRejectedError,
  AdminUnavailableError,
  PulsarAdminError,
} from './admin-errors.ts';
export type { AuthProvider, Logger } from './auth.ts';
export { type BrokerAddress, type ClientOptions, PulsarClient } from './client.ts';
export { DEFAULT_MAX_UNCOMPRESSED_SIZE, setMaxUncompressedSize } from './codecs/index.ts';
export type { InitialPosition, SubscriptionType } from './commands.ts';
export {
  COMPRESSION_TYPES,
  type CompressionCodec,
  type CompressionName,
  registerCompressionCodec,
} from './compression.ts';
export type { SocketFactory, SocketTarget } from './connection.ts';
export { Consumer, type ConsumerOptions, type Message } from './consumer.ts';
export { FrameError, isPulsarError, PulsarError, PulsarErrorCode, ServerError } from './errors.ts';
export { MessageId } from './message-id.ts';
export { type HashingScheme, javaStringHash, murmur3_32, partitionForKey } from './murmur3.ts';
export { PartitionedConsumer, PartitionedProducer } from './partitioned.ts';
export { type OutgoingMessage, Producer, type ProducerOptions } from './producer.ts';
export { type TlsSettings, tlsOptions } from './tls.ts';
export { TokenAuth, type TokenSource, tokenAuth, tokenAuthFromParams } from './token.ts';
export { parseTopicName, type TopicName } from './topic.ts';
