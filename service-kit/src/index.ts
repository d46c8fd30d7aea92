// What every sessiongate process shares (the gateway and the auth service): settings
// parsing, logger options, error bodies, the app scaffolding, the ops routes, the metrics
// registry and CLI plumbing. No product logic.

/** Settings read from the environment: each throws SettingError naming its variable. */
export {
  LOG_LEVELS,
  SettingError,
  booleanSetting,
  durationSetting,
  intSetting,
  listSetting,
  listenSettings,
  logLevelSetting,
  originsSetting,
  parseCidrs,
  portSetting,
  setting,
  type ListenSettings,
} from './settings.js';
/** Durations (`90s`, `30m`) and byte sizes (`1mb`). */
export { parseByteSize, parseDuration } from './duration.js';
/** Logger options with the redaction every service needs. */
export { REDACT_PATHS, infoEnabled, loggerOptions, type LoggerChoice, type LoggerOptions } from './logging.js';
/** Error bodies: each service's own codes, plain HTTP statuses, no internal text in a 5xx. */
export { STATUS_ERROR_CODES, errorResponder, prefersHtml, type ErrorBody, type ErrorResponder } from './errors.js';
/** Raw HTTP answers, Fastify's framework errors, hop-by-hop headers. */
export { HOP_BY_HOP_HEADERS, frameworkErrorHandler, rawErrorResponse } from './http.js';
/** The service's life: draining, graceful shutdown on signals, reloading a watched file. */
export { Draining, gracefulShutdown, watchFile, type FileWatchOptions, type GracefulShutdownOptions } from './lifecycle.js';
/** The metrics listener: /metrics, /healthz, /readyz. */
export { buildOpsApp, type OpsRoutesOptions, type ReadinessCheck, type MetricsSource } from './ops-routes.js';
/** The Prometheus registry every service starts from: its own, with build info and default metrics. */
export { packageVersion, serviceRegistry, type ServiceRegistryOptions } from './metrics.js';
/** Commands of the `sessiongate` CLI. */
export { runServiceCommand, write, type CliIo, type Command, type ServiceCommand } from './cli.js';
/** Pages browsers see: the brand, the style, escaping. */
export { PAGE_STYLE, MAX_BRAND_NAME_LENGTH, brandHeader, brandSetting, escapeHtml, pageHeaders, pageTitle, type Brand } from './pages.js';
