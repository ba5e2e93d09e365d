// One TCP (or, later, TLS) connection to a broker: the only module that owns a socket. Handshake
// (CONNECT/CONNECTED, AUTH_CHALLENGE), keep-alive (PING/PONG both ways), request ids with timeouts, and routing of
// broker-initiated commands to the consumer or producer they are for.

import { createRequire } from 'node:module';
import net from 'node:net';
import type tls from 'node:tls';
import type { AuthProvider, Logger } from './auth.ts';
import * as cmds from './commands.ts';
import { PulsarError, PulsarErrorCode, ServerError } from './errors.ts';
import { commandName, decodeFrame, encodeCommand, FRAME_PADDING, type Frame, FrameDecoder } from './frame.ts';
import {
  type BaseCommand,
  BaseCommand_Type,
  type CommandActiveConsumerChange,
  type CommandCloseConsumer,
  type CommandCloseProducer,
  type CommandConnected,
  type CommandMessage,
  type CommandSendError,
  type CommandSendReceipt,
} from './proto/generated/PulsarApi.ts';
import { describeTlsError } from './tls.ts';
import { redactTokens } from './token.ts';

/**
 * node:tls, loaded on the first pulsar+ssl:// connection: with node:crypto it adds ~5 MiB of RSS to a process
 * that may only ever speak plain TCP (bench/dispatcher.ts, idle RSS goal).
 */
let tlsModule: typeof tls | undefined;
function loadTls(): typeof tls {
  tlsModule ??= createRequire(import.meta.url)('node:tls') as typeof tls;
  return tlsModule;
}

export interface SocketTarget {
  host: string;
  port: number;
  /** pulsar+ssl:// */
  tls: boolean;
}

/** Opens the byte stream to a broker. The default uses node:net (and node:tls for pulsar+ssl://). */
export type SocketFactory = (target: SocketTarget) => net.Socket;

export interface ConnectionOptions {
  /** The broker this connection talks to, as the lookup names it (the pool key). */
  logicalAddress: string;
  /** Where the TCP connection goes: the broker itself, or the service URL when proxying through it. */
  physicalAddress: string;
  operationTimeoutMs: number;
  keepAliveIntervalMs?: number;
  connectTimeoutMs?: number;
  socketFactory?: SocketFactory | undefined;
  /** Options for node:tls when the address is pulsar+ssl:// (issue 5). */
  tls?: tls.ConnectionOptions | undefined;
  auth?: AuthProvider | undefined;
  logger: Logger;
}

export interface ConsumerHandler {
  onMessage(command: CommandMessage, frame: Frame): void;
  onCloseConsumer(command: CommandCloseConsumer): void;
  onActiveConsumerChange?(command: CommandActiveConsumerChange): void;
  onReachedEndOfTopic?(): void;
  onConnectionClosed(error: PulsarError): void;
}

export interface ProducerHandler {
  onSendReceipt(command: CommandSendReceipt): void;
  onSendError(command: CommandSendError): void;
  onCloseProducer(command: CommandCloseProducer): void;
  onConnectionClosed(error: PulsarError): void;
}

interface Pending {
  resolve: (c: BaseCommand) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  what: string;
}

export function parseServiceUrl(url: string): SocketTarget {
  const m = /^(pulsar|pulsar\+ssl):\/\/([^/:]+|\[[^\]]+\])(?::(\d+))?\/?$/.exec(url.trim());
  if (!m) {
    throw new PulsarError(
      PulsarErrorCode.InvalidArgument,
      `invalid service URL '${url}': expected pulsar://host:port or pulsar+ssl://host:port`,
    );
  }
  const isTls = m[1] === 'pulsar+ssl';
  const host = (m[2] as string).replace(/^\[|\]$/g, '');
  return { host, port: m[3] ? Number(m[3]) : isTls ? 6651 : 6650, tls: isTls };
}

let nextConnectionId = 1;

export class Connection {
  readonly id = nextConnectionId++;
  readonly logicalAddress: string;
  readonly physicalAddress: string;
  serverVersion = '';
  protocolVersion = 0;
  maxMessageSize = 5 * 1024 * 1024;

  readonly #opts: ConnectionOptions;
  readonly #log: Logger;
  readonly #decoder = new FrameDecoder();
  readonly #pending = new Map<bigint, Pending>();
  readonly #consumers = new Map<bigint, ConsumerHandler>();
  readonly #producers = new Map<bigint, ProducerHandler>();
  readonly #closeListeners = new Set<(e: PulsarError) => void>();
  #socket: net.Socket | null = null;
  #nextRequestId = 1n;
  #closed: PulsarError | null = null;
  #ready = false;
  #lastReceive = Date.now();
  #keepAlive: NodeJS.Timeout | null = null;
  #awaitingPong = false;

  constructor(opts: ConnectionOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
    this.logicalAddress = opts.logicalAddress;
    this.physicalAddress = opts.physicalAddress;
  }

  get closed(): boolean {
    return this.#closed !== null;
  }

  newRequestId(): bigint {
    return this.#nextRequestId++;
  }

  /** Opens the socket and completes the CONNECT handshake. */
  async open(): Promise<void> {
    const target = parseServiceUrl(this.physicalAddress);
    const factory = this.#opts.socketFactory ?? this.#defaultSocket.bind(this);
    const where = { broker: this.logicalAddress, via: this.physicalAddress };
    const socket = factory(target);
    this.#socket = socket;
    socket.setNoDelay(true);
    const connectTimeout = this.#opts.connectTimeoutMs ?? this.#opts.operationTimeoutMs;

    const handshake = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new PulsarError(
            PulsarErrorCode.Timeout,
            `connecting to ${this.physicalAddress}: no CONNECTED within ${connectTimeout} ms`,
            where,
          ),
        );
      }, connectTimeout);
      this.#handshakeDone = (err) => {
        clearTimeout(timer);
        this.#handshakeDone = null;
        if (err) reject(err);
        else resolve();
      };
    });

    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => {
      const tlsErr = target.tls ? describeTlsError(err, this.physicalAddress) : undefined;
      if (tlsErr) Object.assign(tlsErr.context, where);
      this.close(
        tlsErr ??
          new PulsarError(
            PulsarErrorCode.ConnectionFailed,
            `connection to ${this.physicalAddress} failed: ${err.message}`,
            where,
            { cause: err },
          ),
      );
    });
    socket.on('close', () => {
      this.close(
        new PulsarError(
          PulsarErrorCode.ConnectionClosed,
          `connection to ${this.physicalAddress} closed`,
          where,
        ),
      );
    });
    socket.once(target.tls ? 'secureConnect' : 'connect', () => {
      void this.#sendConnect(target).catch((e: unknown) => this.close(e as PulsarError));
    });
    try {
      await handshake;
    } catch (e) {
      this.close(e as PulsarError);
      throw e;
    }
    this.#ready = true;
    const interval = this.#opts.keepAliveIntervalMs ?? 30_000;
    this.#keepAlive = setInterval(() => this.#checkAlive(interval), interval);
    this.#keepAlive.unref();
  }

  #handshakeDone: ((err?: PulsarError) => void) | null = null;

  #defaultSocket(target: SocketTarget): net.Socket {
    if (target.tls) {
      return loadTls().connect({
        host: target.host,
        port: target.port,
        // SNI takes host names only (RFC 6066); certificate checks still use `host`.
        servername: net.isIP(target.host) ? undefined : target.host,
        ...this.#opts.tls,
      });
    }
    return net.connect({ host: target.host, port: target.port });
  }

  async #sendConnect(_target: SocketTarget): Promise<void> {
    const auth = this.#opts.auth;
    const proxyToBrokerUrl =
      this.logicalAddress !== this.physicalAddress
        ? this.logicalAddress.replace(/^pulsar(\+ssl)?:\/\//, '')
        : undefined;
    const command = cmds.connect({
      authMethodName: auth?.method,
      authData: auth ? await auth.data() : undefined,
      proxyToBrokerUrl,
    });
    this.#write(encodeCommand(command));
  }

  #checkAlive(interval: number): void {
    if (this.#closed) return;
    if (Date.now() - this.#lastReceive < interval) return;
    if (this.#awaitingPong) {
      this.close(
        new PulsarError(
          PulsarErrorCode.ConnectionClosed,
          `broker ${this.logicalAddress} did not answer PING within ${interval} ms`,
          { broker: this.logicalAddress },
        ),
      );
      return;
    }
    this.#awaitingPong = true;
    this.#write(cmds.PING_FRAME);
  }

  #write(bytes: Uint8Array): boolean {
    const s = this.#socket;
    if (!s || this.#closed) return false;
    return s.write(bytes);
  }

  /** Sends a command that expects no answer. False when the connection is closed or its buffer is full. */
  send(command: BaseCommand): boolean {
    return this.#write(encodeCommand(command));
  }

  /** Writes frame parts (a payload command) in one go. */
  sendParts(parts: readonly Uint8Array[]): boolean {
    const s = this.#socket;
    if (!s || this.#closed) return false;
    s.cork();
    let ok = true;
    for (const p of parts) ok = s.write(p);
    process.nextTick(() => s.uncork());
    return ok;
  }

  /** True when the socket's write buffer is above its high-water mark. */
  get writeBlocked(): boolean {
    return this.#socket?.writableNeedDrain ?? false;
  }

  onceDrain(fn: () => void): void {
    if (!this.#socket || this.#closed) fn();
    else this.#socket.once('drain', fn);
  }

  /**
   * Sends a request and resolves with the broker's answer. An ERROR answer (or an error inside the answer)
   * rejects with ServerError; no answer within operationTimeoutMs rejects with a Timeout.
   */
  request(
    command: BaseCommand,
    requestId: bigint,
    context: { topic?: string | undefined } = {},
  ): Promise<BaseCommand> {
    const what = commandName(command.type);
    if (this.#closed) return Promise.reject(this.#closedError(what, context.topic));
    return new Promise<BaseCommand>((resolve, reject) => {
      const timeout = this.#opts.operationTimeoutMs;
      const timer = setTimeout(() => {
        this.#pending.delete(requestId);
        reject(
          new PulsarError(
            PulsarErrorCode.Timeout,
            `${what} to ${this.logicalAddress}: no answer within ${timeout} ms`,
            {
              command: what,
              broker: this.logicalAddress,
              topic: context.topic,
            },
          ),
        );
      }, timeout);
      this.#pending.set(requestId, {
        resolve,
        reject: (e) => reject(e),
        timer,
        what: context.topic ? `${what} ${context.topic}` : what,
      });
      this.#write(encodeCommand(command));
    });
  }

  #closedError(what: string, topic?: string): PulsarError {
    return new PulsarError(
      PulsarErrorCode.ConnectionClosed,
      `${what}: connection to ${this.logicalAddress} is closed (${this.#closed?.message ?? 'not open'})`,
      { command: what, broker: this.logicalAddress, topic },
      { cause: this.#closed ?? undefined },
    );
  }

  registerConsumer(id: bigint, handler: ConsumerHandler): void {
    this.#consumers.set(id, handler);
  }

  unregisterConsumer(id: bigint): void {
    this.#consumers.delete(id);
  }

  registerProducer(id: bigint, handler: ProducerHandler): void {
    this.#producers.set(id, handler);
  }

  unregisterProducer(id: bigint): void {
    this.#producers.delete(id);
  }

  onClose(fn: (e: PulsarError) => void): () => void {
    this.#closeListeners.add(fn);
    return () => this.#closeListeners.delete(fn);
  }

  #onData(chunk: Buffer): void {
    this.#lastReceive = Date.now();
    this.#awaitingPong = false;
    try {
      this.#decoder.push(chunk, this.#onBody);
    } catch (e) {
      const err =
        e instanceof PulsarError
          ? e
          : new PulsarError(
              PulsarErrorCode.ProtocolError,
              `handling a frame failed: ${(e as Error).message}`,
              {},
              { cause: e },
            );
      err.context.broker = this.logicalAddress;
      this.#log.error(
        { err, broker: this.logicalAddress },
        'unreadable data from broker: closing the connection',
      );
      this.close(err);
    }
  }

  readonly #onBody = (body: Uint8Array): void => {
    const frame = decodeFrame(body);
    this.#dispatch(frame);
  };

  #dispatch(frame: Frame): void {
    const c = frame.command;
    switch (c.type) {
      case BaseCommand_Type.MESSAGE: {
        const m = c.message;
        if (!m) throw this.#missing(c);
        const h = this.#consumers.get(m.consumerId);
        if (h) h.onMessage(m, frame);
        else this.#log.debug({ consumerId: m.consumerId }, 'MESSAGE for an unknown consumer dropped');
        return;
      }
      case BaseCommand_Type.SEND_RECEIPT: {
        const r = c.sendReceipt;
        if (!r) throw this.#missing(c);
        this.#producers.get(r.producerId)?.onSendReceipt(r);
        return;
      }
      case BaseCommand_Type.SEND_ERROR: {
        const r = c.sendError;
        if (!r) throw this.#missing(c);
        this.#producers.get(r.producerId)?.onSendError(r);
        return;
      }
      case BaseCommand_Type.PING:
        this.#write(cmds.PONG_FRAME);
        return;
      case BaseCommand_Type.PONG:
        return;
      case BaseCommand_Type.CONNECTED:
        this.#onConnected(c.connected);
        return;
      case BaseCommand_Type.AUTH_CHALLENGE:
        void this.#onAuthChallenge(c);
        return;
      case BaseCommand_Type.CLOSE_CONSUMER: {
        const r = c.closeConsumer;
        if (!r) throw this.#missing(c);
        const h = this.#consumers.get(r.consumerId);
        this.#consumers.delete(r.consumerId);
        h?.onCloseConsumer(r);
        return;
      }
      case BaseCommand_Type.CLOSE_PRODUCER: {
        const r = c.closeProducer;
        if (!r) throw this.#missing(c);
        const h = this.#producers.get(r.producerId);
        this.#producers.delete(r.producerId);
        h?.onCloseProducer(r);
        return;
      }
      case BaseCommand_Type.ACTIVE_CONSUMER_CHANGE: {
        const r = c.activeConsumerChange;
        if (r) this.#consumers.get(r.consumerId)?.onActiveConsumerChange?.(r);
        return;
      }
      case BaseCommand_Type.REACHED_END_OF_TOPIC: {
        const r = c.reachedEndOfTopic;
        if (r) this.#consumers.get(r.consumerId)?.onReachedEndOfTopic?.();
        return;
      }
      case BaseCommand_Type.ERROR: {
        const e = c.error;
        if (!e) throw this.#missing(c);
        if (!this.#ready && this.#handshakeDone) {
          const serverErr = new ServerError(e.error, cmds.serverErrorName(e.error), redactTokens(e.message), {
            command: 'CONNECT',
            broker: this.logicalAddress,
          });
          this.#handshakeDone(authFailure(serverErr, this.logicalAddress, this.#opts.auth) ?? serverErr);
          return;
        }
        this.#settle(e.requestId, c);
        return;
      }
      default: {
        const requestId = cmds.responseRequestId(c);
        if (requestId !== undefined) this.#settle(requestId, c);
        else this.#log.debug({ type: commandName(c.type), broker: this.logicalAddress }, 'ignored command');
      }
    }
  }

  #missing(c: BaseCommand): PulsarError {
    return new PulsarError(PulsarErrorCode.ProtocolError, `${commandName(c.type)} without its body`, {
      broker: this.logicalAddress,
    });
  }

  #settle(requestId: bigint, c: BaseCommand): void {
    const p = this.#pending.get(requestId);
    if (!p) {
      this.#log.debug({ requestId, type: commandName(c.type) }, 'answer to an unknown or timed-out request');
      return;
    }
    this.#pending.delete(requestId);
    clearTimeout(p.timer);
    const err = c.type === BaseCommand_Type.ERROR ? c.error : undefined;
    if (err) {
      p.reject(
        new ServerError(err.error, cmds.serverErrorName(err.error), err.message, {
          command: p.what,
          broker: this.logicalAddress,
        }),
      );
    } else {
      p.resolve(c);
    }
  }

  #onConnected(c: CommandConnected | undefined): void {
    if (!c) {
      this.#handshakeDone?.(new PulsarError(PulsarErrorCode.ProtocolError, 'CONNECTED without its body'));
      return;
    }
    this.serverVersion = c.serverVersion;
    this.protocolVersion = c.protocolVersion ?? 0;
    if (c.maxMessageSize && c.maxMessageSize > 0) {
      this.maxMessageSize = c.maxMessageSize;
      this.#decoder.maxFrameSize = c.maxMessageSize + FRAME_PADDING;
    }
    this.#log.debug(
      { broker: this.logicalAddress, serverVersion: c.serverVersion, protocolVersion: this.protocolVersion },
      'connected',
    );
    this.#handshakeDone?.();
  }

  async #onAuthChallenge(c: BaseCommand): Promise<void> {
    const auth = this.#opts.auth;
    const method = c.authChallenge?.challenge?.authMethodName ?? auth?.method ?? 'none';
    try {
      if (!auth) throw new Error('the broker asks for authentication but no auth provider is configured');
      const data = await auth.data(c.authChallenge?.challenge?.authData);
      this.#write(encodeCommand(cmds.authResponse(method, data)));
    } catch (e) {
      this.close(
        new PulsarError(
          PulsarErrorCode.AuthenticationFailed,
          `answering the AUTH_CHALLENGE of ${this.logicalAddress} failed: ${(e as Error).message}`,
          { broker: this.logicalAddress },
          { cause: e },
        ),
      );
    }
  }

  /** Closes the socket; pending requests fail and every consumer and producer hears of it. Idempotent. */
  close(reason?: PulsarError): void {
    if (this.#closed) return;
    const err =
      reason ??
      new PulsarError(
        PulsarErrorCode.ConnectionClosed,
        `connection to ${this.logicalAddress} closed by the client`,
        {
          broker: this.logicalAddress,
        },
      );
    this.#closed = err;
    if (this.#keepAlive) clearInterval(this.#keepAlive);
    this.#socket?.destroy();
    this.#handshakeDone?.(err);
    for (const [, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(this.#closedError(p.what));
    }
    this.#pending.clear();
    const consumers = [...this.#consumers.values()];
    const producers = [...this.#producers.values()];
    this.#consumers.clear();
    this.#producers.clear();
    for (const h of consumers) h.onConnectionClosed(err);
    for (const h of producers) h.onConnectionClosed(err);
    for (const fn of this.#closeListeners) fn(err);
    this.#closeListeners.clear();
  }
}

/**
 * The broker refused our credentials (AuthenticationError, or an AuthorizationError at CONNECT): an
 * AuthenticationFailed error naming the broker, the reason and where the credentials came from (never the
 * credentials themselves).
 */
function authFailure(
  e: ServerError,
  broker: string,
  auth: AuthProvider | undefined,
): PulsarError | undefined {
  if (e.serverError !== 'AuthenticationError' && e.serverError !== 'AuthorizationError') return undefined;
  const source = auth
    ? `${auth.method} from ${(auth as { source?: string }).source ?? 'the auth provider'}`
    : 'none';
  return new PulsarError(
    PulsarErrorCode.AuthenticationFailed,
    `broker ${broker} rejected the connection (${e.serverError}): ${e.serverMessage || 'no reason given'} [credentials: ${source}]`,
    { broker, command: 'CONNECT', serverError: e.serverError, authMethod: auth?.method ?? 'none' },
    { cause: e },
  );
}
