// Controller errors: a code to switch on and the context of the failure. Kubernetes API failures keep their HTTP
// status so reconcile can tell "conflict" and "forbidden" (reported on the trigger) from "server down" (retried).

export type ControllerErrorCode =
  | 'E_CONFIG_INVALID'
  | 'E_KUBE_API'
  | 'E_KUBECONFIG'
  | 'E_LEASE'
  | 'E_CONFLICT'
  | 'E_NOT_FOUND'
  | 'E_FORBIDDEN';

export class ControllerError extends Error {
  readonly code: ControllerErrorCode;
  readonly context: Record<string, unknown>;

  constructor(
    code: ControllerErrorCode,
    message: string,
    context: Record<string, unknown> = {},
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ControllerError';
    this.code = code;
    this.context = context;
  }
}

/** The HTTP status of a failed API call, from client-node's ApiException or our own errors. */
export function httpStatus(e: unknown): number | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const o = e as { code?: unknown; statusCode?: unknown; context?: { status?: unknown } };
  if (typeof o.code === 'number') return o.code;
  if (typeof o.statusCode === 'number') return o.statusCode;
  if (typeof o.context?.status === 'number') return o.context.status;
  return undefined;
}

/** A short, single-line reason for logs and trigger status (API bodies can be large JSON). */
export function describe(e: unknown): string {
  if (typeof e === 'object' && e !== null) {
    const body = (e as { body?: unknown }).body;
    if (typeof body === 'string') {
      try {
        const parsed = JSON.parse(body) as { message?: string };
        if (parsed.message) return parsed.message;
      } catch {
        // not JSON: fall through to the message
      }
    } else if (typeof body === 'object' && body !== null && 'message' in body) {
      return String((body as { message: unknown }).message);
    }
  }
  return e instanceof Error ? e.message.split('\n')[0]! : String(e);
}
