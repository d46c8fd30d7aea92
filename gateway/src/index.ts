// sessiongate as a library: the Fastify plugins and what configuring them needs.

/** The gateway plugin: routes, roles, the signed X-Session, the proxy. */
export { default as sessiongate, type SessionGateOptions, type SessionGate } from './pipeline.js';
export type { GateState } from './policy/admission.js';
/** The request path's session stage: the Redis client, the store and the resolver with its cache. */
export { default as sessionPlugin, type SessionPluginOptions, type Sessions } from './session/plugin.js';
/** A whole gateway (public app and metrics app) from its configuration. */
export { buildGateway, type Gateway, type BuildGatewayOptions, type ReloadResult } from './app.js';
export { gatewayConfigFromEnv, type GatewayConfig } from './settings.js';
export { DEFAULT_GATEWAY_METRICS_PORT, DEFAULT_GATEWAY_PORT, DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS } from './defaults.js';
export { GatewayMetrics } from './ops/metrics.js';
export { XSessionSigner } from './identity/signer.js';
export { parseRoutes, loadRoutesFile } from './routes/load.js';
export { formatProblems } from './routes/problems.js';
export type { Route, RouteSet, MethodRule, RoleRule, AuthMode } from './routes/types.js';
/** The gateway's coded errors: `err.code` is stable, `errorResponse` shapes the JSON body. */
export {
  BadRequest,
  CsrfRejected,
  Forbidden,
  HeadersTooLarge,
  InvalidConfig,
  MethodNotAllowed,
  MethodOverrideRefused,
  NotFound,
  PayloadTooLarge,
  SessionStoreUnavailable,
  Unauthenticated,
  UpstreamTimeout,
  UpstreamUnavailable,
  errorResponse,
  type ErrorBody,
} from './errors.js';
/** From the shared session contract: what an application embedding the gateway needs. */
export {
  DEFAULT_AUTH_ROUTE,
  generateKeySet,
  loadKeySet,
  parseKeySet,
  readSessionCookie,
  type KeySet,
  type SessionCookie,
} from '@sessiongate/session';
