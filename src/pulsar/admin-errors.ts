// Errors of the admin REST client (admin.ts): one class per failure, each with its stable code from errors.ts,
// so the controller branches on the class or the code (ADMIN_UNAVAILABLE → PulsarAdminUnavailable, ADMIN_FORBIDDEN →
// PulsarAdminForbidden) and never on message text. Context names the call (method, URL without query, HTTP status,
// the broker's reason); the token never appears: it is not part of any context, and reasons are redacted.

import { PulsarError, PulsarErrorCode, type PulsarErrorContext } from './errors.ts';

export interface AdminErrorContext extends PulsarErrorContext {
  method?: string | undefined;
  /** The URL called, origin and path only (no query, no user info). */
  url?: string | undefined;
  /** The HTTP status, when the broker answered. */
  status?: number | undefined;
  /** The broker's reason (its JSON `reason`, or the HTTP status text), redacted and cut to one line. */
  reason?: string | undefined;
}

/** Base of the admin client's errors; `status` and `reason` come from the broker's answer when there was one. */
export class PulsarAdminError extends PulsarError {
  override readonly context: AdminErrorContext;

  constructor(
    code: PulsarErrorCode,
    message: string,
    context: AdminErrorContext = {},
    options?: ErrorOptions,
  ) {
    super(code, message, context, options);
    this.name = 'PulsarAdminError';
    this.context = context;
  }

  get status(): number | undefined {
    return this.context.status;
  }

  get reason(): string | undefined {
    return this.context.reason;
  }
}

/** Connection refused or lost, DNS, TLS, no complete answer within timeoutMs, or 408 / 429 / 5xx: retry later. */
export class AdminUnavailableError extends PulsarAdminError {
  constructor(message: string, context: AdminErrorContext = {}, options?: ErrorOptions) {
    super(PulsarErrorCode.AdminUnavailable, message, context, options);
    this.name = 'AdminUnavailableError';
  }
}

/** 401 or 403 (Pulsar answers 401 for a role without the permission too), or the token could not be read. */
export class AdminForbiddenError extends PulsarAdminError {
  constructor(message: string, context: AdminErrorContext = {}, options?: ErrorOptions) {
    super(PulsarErrorCode.AdminForbidden, message, context, options);
    this.name = 'AdminForbiddenError';
  }
}

/** The namespace, topic or subscription does not exist where the operation needs it. */
export class AdminNotFoundError extends PulsarAdminError {
  constructor(message: string, context: AdminErrorContext = {}, options?: ErrorOptions) {
    super(PulsarErrorCode.AdminNotFound, message, context, options);
    this.name = 'AdminNotFoundError';
  }
}

/** Any other 4xx: the broker understood and refused (the reason says why). Retrying the same call will not help. */
export class AdminRejectedError extends PulsarAdminError {
  constructor(message: string, context: AdminErrorContext = {}, options?: ErrorOptions) {
    super(PulsarErrorCode.AdminRejected, message, context, options);
    this.name = 'AdminRejectedError';
  }
}

/** An answer the client cannot use: not the documented JSON, larger than the bound, or a redirect not followed. */
export class AdminBadResponseError extends PulsarAdminError {
  constructor(message: string, context: AdminErrorContext = {}, options?: ErrorOptions) {
    super(PulsarErrorCode.AdminBadResponse, message, context, options);
    this.name = 'AdminBadResponseError';
  }
}

/**
 * The error for an HTTP status the operation does not treat as an answer: 401/403 forbidden, 404 not found,
 * 408/429/5xx unavailable, another 4xx rejected, anything else (1xx, 2xx/3xx not expected here) a bad response.
 */
export function adminStatusError(
  status: number,
  context: { method: string; url: string; reason?: string | undefined },
): PulsarAdminError {
  const ctx: AdminErrorContext = { ...context, status };
  const message = `Pulsar admin ${context.method} ${context.url}: HTTP ${status}${context.reason ? ` ${context.reason}` : ''}`;
  if (status === 401 || status === 403) return new AdminForbiddenError(message, ctx);
  if (status === 404) return new AdminNotFoundError(message, ctx);
  if (status === 408 || status === 429 || (status >= 500 && status <= 599)) {
    return new AdminUnavailableError(message, ctx);
  }
  if (status >= 400 && status <= 499) return new AdminRejectedError(message, ctx);
  return new AdminBadResponseError(`${message} (not an answer this call expects)`, ctx);
}
