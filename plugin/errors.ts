// What the plugin says when something goes wrong: a UserError is bad input or a refused action
// and is printed as it is; anything from the API server or the network is turned into one line
// naming what failed, never a stack trace.
import { ApiException } from '@kubernetes/client-node';

/** Bad input, or an action the current state does not allow: printed as `error: <message>`, exit 1. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** The HTTP status of an API error, if it is one. */
export function httpStatus(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const code = (err as { code?: unknown; statusCode?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

export const notFound = (err: unknown): boolean => httpStatus(err) === 404;

function apiBodyMessage(body: unknown): string | undefined {
  if (typeof body === 'string') {
    try {
      return apiBodyMessage(JSON.parse(body));
    } catch {
      return body.trim() || undefined;
    }
  }
  if (body && typeof body === 'object' && 'message' in body) return String((body as { message: unknown }).message);
  return undefined;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EAI_AGAIN']);

/** One line for an error, as users should read it. `server` names the API server for network errors. */
export function describeError(err: unknown, server?: string): string {
  if (err instanceof UserError) return err.message;
  if (err instanceof ApiException) {
    const message = apiBodyMessage(err.body) ?? `HTTP ${err.code}`;
    if (err.code === 401) return `${message} (the credentials of the kubeconfig's user were refused)`;
    return message;
  }
  const e = err as { code?: unknown; cause?: { code?: unknown }; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : typeof e?.cause?.code === 'string' ? e.cause.code : undefined;
  if (code && NETWORK_CODES.has(code)) {
    return `cannot reach the Kubernetes API server${server ? ` at ${server}` : ''} (${code}); check --kubeconfig, --context or KUBECONFIG`;
  }
  return err instanceof Error ? err.message : String(err);
}
