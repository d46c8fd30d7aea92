// What every sessiongate process shares (the gateway and the auth service): settings
// parsing, logger options, error bodies, the ops routes and CLI plumbing. No product logic.
export * from './settings.js';
export * from './duration.js';
export * from './logging.js';
export * from './errors.js';
export * from './cli.js';
export { default as opsRoutes, buildOpsApp, type OpsRoutesOptions, type ReadinessCheck, type MetricsSource } from './ops-routes.js';
export { PAGE_STYLE, MAX_BRAND_NAME_LENGTH, brandHeader, brandSetting, escapeHtml, pageHeaders, pageTitle, type Brand } from './pages.js';
