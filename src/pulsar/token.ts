// Token authentication (the broker's AuthenticationProviderToken): the token comes from a string, a file or
// an environment variable. File and environment sources are read again for every CONNECT and every
// AUTH_CHALLENGE, so a rotated token (a re-mounted Kubernetes Secret) is picked up by live connections.
// The token itself never appears in errors, logs or inspection output: only where it came from.

import { readFile } from 'node:fs/promises';
import type { AuthProvider } from './auth.ts';
import { PulsarError, PulsarErrorCode } from './errors.ts';

// util.inspect.custom is this registered symbol; taking it from the registry spares node:util's ES-module wrapper,
// which reads every export of node:util and so loads node:worker_threads and more: memory for nothing.
const INSPECT_CUSTOM = Symbol.for('nodejs.util.inspect.custom');

export type TokenSource =
  | { token: string }
  | { file: string }
  | { env: string }
  /** Any async supplier (a vault client...); called on every CONNECT and AUTH_CHALLENGE. */
  | { supplier: () => string | Promise<string> };

const encoder = new TextEncoder();

function describe(source: TokenSource): string {
  if ('file' in source) return `token file ${source.file}`;
  if ('env' in source) return `environment variable ${source.env}`;
  if ('supplier' in source) return 'token supplier';
  return 'token string';
}

function authError(what: string, cause?: unknown): PulsarError {
  return new PulsarError(
    PulsarErrorCode.AuthenticationFailed,
    what,
    { auth: 'token' },
    cause ? { cause } : undefined,
  );
}

/** An AuthProvider for method 'token'. */
export class TokenAuth implements AuthProvider {
  readonly method = 'token';
  readonly source: string;
  readonly #source: TokenSource;

  constructor(source: TokenSource) {
    const valid =
      source &&
      (('token' in source && typeof source.token === 'string') ||
        ('file' in source && typeof source.file === 'string' && source.file !== '') ||
        ('env' in source && typeof source.env === 'string' && source.env !== '') ||
        ('supplier' in source && typeof source.supplier === 'function'));
    if (!valid) {
      throw new PulsarError(
        PulsarErrorCode.InvalidArgument,
        'token auth: give exactly one of { token }, { file }, { env } or { supplier }',
      );
    }
    this.#source = source;
    this.source = describe(source);
  }

  /** The current token, read afresh from its source. */
  async token(): Promise<string> {
    const s = this.#source;
    let raw: string | undefined;
    if ('token' in s) raw = s.token;
    else if ('env' in s) {
      raw = process.env[s.env];
      if (raw === undefined) throw authError(`token auth: environment variable ${s.env} is not set`);
    } else if ('file' in s) {
      try {
        raw = await readFile(s.file, 'utf8');
      } catch (e) {
        throw authError(
          `token auth: cannot read token file ${s.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
          e,
        );
      }
    } else {
      try {
        raw = await s.supplier();
      } catch (e) {
        throw authError(`token auth: the token supplier failed: ${(e as Error).message}`, e);
      }
    }
    const token = String(raw ?? '').trim();
    if (token === '') throw authError(`token auth: the ${this.source} is empty`);
    return token;
  }

  async data(): Promise<Uint8Array> {
    return encoder.encode(await this.token());
  }

  toString(): string {
    return `TokenAuth(${this.source})`;
  }

  toJSON(): object {
    return { method: this.method, source: this.source };
  }

  [INSPECT_CUSTOM](): string {
    return this.toString();
  }
}

export function tokenAuth(source: TokenSource): TokenAuth {
  return new TokenAuth(source);
}

/**
 * The Java client's parameter string for AuthenticationToken: `token:<jwt>`, `file:///path/to/token`, or
 * `env:VAR` (and a bare token).
 */
export function tokenAuthFromParams(params: string): TokenAuth {
  const p = params.trim();
  if (p.startsWith('file://')) return new TokenAuth({ file: p.slice('file://'.length) });
  if (p.startsWith('token:')) return new TokenAuth({ token: p.slice('token:'.length) });
  if (p.startsWith('env:')) return new TokenAuth({ env: p.slice('env:'.length) });
  return new TokenAuth({ token: p });
}

/** Removes anything that looks like a JWT (or the given secrets) from a text meant for logs or errors. */
export function redactTokens(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(/eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, '<redacted token>');
  for (const s of secrets) if (s.length >= 8) out = out.split(s).join('<redacted token>');
  return out;
}
