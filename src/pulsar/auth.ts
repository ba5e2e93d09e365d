// Authentication seam. Issue 5 adds providers (token...); the connection only needs this interface:
// CONNECT carries `method` and `data()`, and an AUTH_CHALLENGE from the broker is answered with a fresh `data()`.

export interface AuthProvider {
  /** The broker's name for the method, e.g. 'token'. */
  readonly method: string;
  /** The credentials to send (CONNECT) or to answer a challenge with (AUTH_RESPONSE). */
  data(challenge?: Uint8Array): Promise<Uint8Array>;
}

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = (): void => {};
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };
