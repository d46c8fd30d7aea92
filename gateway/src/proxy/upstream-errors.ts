import type { FastifyBaseLogger } from 'fastify';
import { PayloadTooLarge, UpstreamTimeout, UpstreamUnavailable } from '../errors.js';
import type { GatewayMetrics, UpstreamErrorKind } from '../ops/metrics.js';
import type { Route } from '../routes/types.js';

/** What went wrong with an upstream, by the proxy library's error code (the metric's `kind`). */
export function upstreamErrorKind(code: string | undefined): UpstreamErrorKind {
  switch (code) {
    case 'FST_REPLY_FROM_GATEWAY_TIMEOUT':
    case 'FST_REPLY_FROM_TIMEOUT':
    case 'FST_REPLY_FROM_HTTP_REQUEST_TIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'timeout';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'reset';
    case 'FST_REPLY_FROM_SERVICE_UNAVAILABLE':
    case 'FST_REPLY_FROM_INTERNAL_SERVER_ERROR':
    case 'FST_REPLY_FROM_BAD_GATEWAY':
      return 'unavailable';
    default:
      return 'other';
  }
}

/**
 * The coded error to answer a failed upstream request with: a body over the route's limit
 * is the client's 413; anything else is counted, logged and answered 504 or 502.
 */
export function upstreamFailure(error: unknown, route: Route, log: FastifyBaseLogger, metrics?: GatewayMetrics): Error {
  const err = error as Error & { code?: string };
  if (err.code === 'SG_ERR_PAYLOAD_TOO_LARGE' || (err.cause as { code?: string } | undefined)?.code === 'SG_ERR_PAYLOAD_TOO_LARGE') {
    return new PayloadTooLarge(String(route.bodyLimit));
  }
  const kind = upstreamErrorKind(err.code);
  metrics?.upstreamErrors.inc({ route: route.name, kind });
  log.warn({ route: route.name, kind, code: err.code }, 'upstream request failed');
  return kind === 'timeout' ? new UpstreamTimeout() : new UpstreamUnavailable();
}
