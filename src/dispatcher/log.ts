// JSON logs (pino). The token can never reach a log line: it is redacted wherever it could appear, and the
// dispatcher never logs settings objects whole anyway. Payloads are never logged.

import pino, { type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'authToken',
  'token',
  '*.authToken',
  '*.token',
  'settings.authToken',
  'headers.authorization',
  '*.headers.authorization',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { component: 'dispatcher' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * Failure logs, at most one per kind per interval: a function that is down fails thousands of attempts a second,
 * and one line with the count of the suppressed ones says the same.
 */
export class RateLimitedLog {
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(log: Logger, intervalMs = 5_000, now: () => number = Date.now) {
    this.#log = log;
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  warn(kind: string, fields: Record<string, unknown>, msg: string): boolean {
    const now = this.#now();
    const entry = this.#last.get(kind);
    if (entry && now - entry.at < this.#intervalMs) {
      entry.suppressed++;
      return false;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.#last.set(kind, { at: now, suppressed: 0 });
    if (this.#last.size > 1000) this.#last.clear();
    this.#log.warn({ ...fields, kind, ...(suppressed > 0 ? { suppressed } : {}) }, msg);
    return true;
  }
}
