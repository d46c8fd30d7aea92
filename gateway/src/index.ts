// sessiongate as a library: the Fastify plugins and what configuring them needs.
export { default as sessiongate, type SessionGateOptions, type SessionGate } from './pipeline.js';
export type { GateState } from './policy/admission.js';
export { DEFAULT_AUTH_ROUTE, DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS } from './defaults.js';
export { default as sessionPlugin, type SessionPluginOptions, type Sessions } from './session/plugin.js';
export { buildGateway, type Gateway, type BuildGatewayOptions, type ReloadResult } from './app.js';
export { gatewayConfigFromEnv, type GatewayConfig } from './settings.js';
export { GatewayMetrics } from './ops/metrics.js';
export { loadKeySet, parseKeySet, generateKeySet, type KeySet } from './identity/keys.js';
export { XSessionSigner } from './identity/signer.js';
export { parseRoutes, loadRoutesFile } from './routes/load.js';
export { formatProblems } from './routes/problems.js';
export type { Route, RouteSet, MethodRule, RoleRule, AuthMode } from './routes/types.js';
export * as errors from './errors.js';
