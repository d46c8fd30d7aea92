import type { FastifyBaseLogger } from 'fastify';
import { UpstreamTimeout, UpstreamUnavailable } from '../errors.js';
import type { Route } from '../routes/types.js';
import { BODY_ERRORS } from './body.js';

/** The `kind` label of an upstream failure. */
export type UpstreamErrorKind = 'timeout' | 'unavailable' | 'reset' | 'other';

/** Where upstream failures are counted (the gateway's metrics). */
export interface UpstreamErrorObserver {
  readonly upstreamErrors: { inc(labels: { route: string; kind: UpstreamErrorKind }): void };
}

/** What went wrong with an upstream, by the error code of the HTTP client or the system (the metric's `kind`). */
export function upstreamErrorKind(code: string | undefined): UpstreamErrorKind {
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return 'timeout';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
      return 'reset';
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'unavailable';
    default:
      return 'other';
  }
}

/** Counts and logs one upstream failure; its `kind`. */
function noteFailure(code: string | undefined, route: Route, log: FastifyBaseLogger, metrics: UpstreamErrorObserver | undefined, what: string): UpstreamErrorKind {
  const kind = upstreamErrorKind(code);
  metrics?.upstreamErrors.inc({ route: route.name, kind });
  log.warn({ route: route.name, kind, code }, what);
  return kind;
}

/**
 * The coded error to answer a failed upstream request with: when the request body's stream
 * failed it on purpose (over the route's limit, a `_method` part, an unreadable form), that
 * error, the client's to fix; anything else is counted, logged and answered 504 or 502.
 */
export function upstreamFailure(error: unknown, route: Route, log: FastifyBaseLogger, metrics?: UpstreamErrorObserver): Error {
  const err = error as Error & { code?: string };
  const bodyErr = [err, err.cause as (Error & { code?: string }) | undefined].find((e) => e?.code !== undefined && BODY_ERRORS.has(e.code));
  if (bodyErr) return bodyErr;
  const kind = noteFailure(err.code, route, log, metrics, 'upstream request failed');
  return kind === 'timeout' ? new UpstreamTimeout() : new UpstreamUnavailable();
}

/**
 * An upstream that failed after its response head was sent (a reset, a body timeout, fewer
 * bytes than announced): the client's response is cut short, and the failure counted and logged.
 */
export function brokenUpstreamResponse(error: Error, route: Route, log: FastifyBaseLogger, metrics?: UpstreamErrorObserver): void {
  noteFailure((error as Error & { code?: string }).code, route, log, metrics, 'upstream response broke off');
}
