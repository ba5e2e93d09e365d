// Errors of the dispatcher are values with a stable code and the context needed to act on them. Delivery failures
// are not errors in this sense: they are outcomes (see policy.ts) that the policy turns into actions.

export type DispatcherErrorCode =
  | 'E_CONFIG_INVALID'
  | 'E_MANIFEST_INVALID'
  | 'E_STATUS_RULE_INVALID'
  | 'E_DEAD_LETTER_FAILED'
  | 'E_SOURCE_FAILED'
  | 'E_SHUTDOWN_TIMEOUT';

export class DispatcherError extends Error {
  readonly code: DispatcherErrorCode;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(
    code: DispatcherErrorCode,
    message: string,
    context: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DispatcherError';
    this.code = code;
    this.context = context;
  }
}
