// Typed errors of the Pulsar client. Every error says what failed (`code`), where (topic, broker address,
// command) and, for broker errors, the broker's ServerError name and message.

export const PulsarErrorCode = {
  /** Bytes on the wire that are not a valid Pulsar frame (size, magic number, protobuf). */
  FrameInvalid: 'FRAME_INVALID',
  /** A payload frame whose CRC32C does not match: that message is discarded, the connection stays. */
  ChecksumMismatch: 'CHECKSUM_MISMATCH',
  /** A frame larger than the broker's max frame size. */
  FrameTooLarge: 'FRAME_TOO_LARGE',
  /** The broker answered a request with an error (see `serverError`). */
  ServerError: 'SERVER_ERROR',
  /** A request did not get its answer within operationTimeoutMs. */
  Timeout: 'TIMEOUT',
  /** The TCP connection could not be opened or was lost. */
  ConnectionFailed: 'CONNECTION_FAILED',
  ConnectionClosed: 'CONNECTION_CLOSED',
  /** The broker sent something the protocol does not allow here. */
  ProtocolError: 'PROTOCOL_ERROR',
  LookupFailed: 'LOOKUP_FAILED',
  InvalidTopicName: 'INVALID_TOPIC_NAME',
  InvalidArgument: 'INVALID_ARGUMENT',
  /** The client, consumer or producer was closed. */
  AlreadyClosed: 'ALREADY_CLOSED',
  /** A message could not be sent (e.g. the broker rejected it with SEND_ERROR). */
  SendFailed: 'SEND_FAILED',
  /** Compression codec not available (issue 5 registers the codecs). */
  UnsupportedCompression: 'UNSUPPORTED_COMPRESSION',
  /** A compressed entry that cannot be decompressed, or claims a size beyond the limit. */
  DecompressionFailed: 'DECOMPRESSION_FAILED',
  /** The broker rejected the credentials (CONNECT or AUTH_RESPONSE), or they could not be read. */
  AuthenticationFailed: 'AUTHENTICATION_FAILED',
  /** TLS setup failed: unreadable CA/cert/key files, untrusted certificate, hostname mismatch. */
  TlsFailed: 'TLS_FAILED',
  /** Admin REST API (admin.ts): not reachable, no complete answer in time (TLS failures too), 408, 429 or 5xx. */
  AdminUnavailable: 'ADMIN_UNAVAILABLE',
  /** Admin REST API: the broker refused the credentials or their rights (401, 403), or they could not be read. */
  AdminForbidden: 'ADMIN_FORBIDDEN',
  /** Admin REST API: the topic, its namespace or the subscription does not exist (404, or 412 "does not exist"). */
  AdminNotFound: 'ADMIN_NOT_FOUND',
  /** Admin REST API: the broker refused the request for another reason (another 4xx, e.g. 412 consumers attached). */
  AdminRejected: 'ADMIN_REJECTED',
  /** Admin REST API: an answer that is not what the API documents (shape, size, a redirect not followed). */
  AdminBadResponse: 'ADMIN_BAD_RESPONSE',
} as const;

export type PulsarErrorCode = (typeof PulsarErrorCode)[keyof typeof PulsarErrorCode];

export interface PulsarErrorContext {
  topic?: string | undefined;
  broker?: string | undefined;
  command?: string | undefined;
  [key: string]: unknown;
}

export class PulsarError extends Error {
  readonly code: PulsarErrorCode;
  readonly context: PulsarErrorContext;

  constructor(
    code: PulsarErrorCode,
    message: string,
    context: PulsarErrorContext = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'PulsarError';
    this.code = code;
    this.context = context;
  }
}

/** Frame layer: raised only by the decoder, for bytes that are not a valid frame. */
export class FrameError extends PulsarError {
  constructor(
    code: PulsarErrorCode,
    message: string,
    context: PulsarErrorContext = {},
    options?: ErrorOptions,
  ) {
    super(code, message, context, options);
    this.name = 'FrameError';
  }
}

/** The broker's answer was an error: `serverError` is the ServerError name (e.g. 'ConsumerBusy'). */
export class ServerError extends PulsarError {
  readonly serverError: string;
  readonly serverErrorCode: number;
  readonly serverMessage: string;

  constructor(
    serverErrorCode: number,
    serverError: string,
    serverMessage: string,
    context: PulsarErrorContext = {},
  ) {
    const where = [context.command, context.topic, context.broker].filter(Boolean).join(' ');
    super(
      PulsarErrorCode.ServerError,
      `${where ? `${where}: ` : ''}broker error ${serverError}: ${serverMessage}`,
      context,
    );
    this.name = 'ServerError';
    this.serverError = serverError;
    this.serverErrorCode = serverErrorCode;
    this.serverMessage = serverMessage;
  }

  /** Errors after which retrying (reconnect, re-lookup) can succeed. */
  get retriable(): boolean {
    return RETRIABLE.has(this.serverError);
  }
}

const RETRIABLE = new Set([
  'ServiceNotReady',
  'TooManyRequests',
  'MetadataError',
  'PersistenceError',
  'UnknownError',
]);

export function isPulsarError(e: unknown): e is PulsarError {
  return e instanceof PulsarError;
}
