// Errors of the trigger layer are values: a stable `code` a caller can switch on, plus the context needed to act
// on it (which field or variable, what was expected). They are returned in a Result, never thrown across the
// module boundary, so a bad trigger can never take the controller down.

export type Result<T, E> = { ok: true; value: T } | { ok: false; error: E };

export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

export function err<E>(error: E): { ok: false; error: E } {
  return { ok: false, error };
}

export interface Issue {
  /** A field path (spec.pulsar.topic) or an environment variable name (PULSAR_BROKER). */
  path: string;
  message: string;
}

export type TriggerErrorCode =
  | 'E_SETTINGS_INVALID'
  | 'E_TRIGGER_INVALID'
  | 'E_RENDER_INVALID'
  | 'E_TOPIC_INVALID'
  | 'E_FUNCTION_URL_INVALID';

export class TriggerError extends Error {
  readonly code: TriggerErrorCode;
  readonly issues: readonly Issue[];

  constructor(code: TriggerErrorCode, issues: readonly Issue[], what: string) {
    super(`${what}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
    this.name = 'TriggerError';
    this.code = code;
    this.issues = issues;
  }
}
