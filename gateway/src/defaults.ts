// Every default of the gateway, in one place: the options, the environment settings and
// `sessiongate gateway --help` all read them from here, so they cannot disagree. It imports
// nothing of the gateway, so every part may read it. (What the auth service shares, such as
// the cookie name, the timeouts, the X-Session issuer and the auth route's name, lives in
// @sessiongate/session.)

// --- the process ------------------------------------------------------------------------

/** The public listener's port (GATEWAY_PORT). @default 8080 */
export const DEFAULT_GATEWAY_PORT = 8080;
/** The metrics and health port (GATEWAY_METRICS_PORT). @default 9091 */
export const DEFAULT_GATEWAY_METRICS_PORT = 9091;
/** The routes file (SESSIONGATE_ROUTES). @default './routes.yaml' */
export const DEFAULT_ROUTES_FILE = './routes.yaml';
/** Reload the routes when their file changes (SESSIONGATE_WATCH_ROUTES). @default true */
export const DEFAULT_WATCH_ROUTES = true;
/** How long shutdown waits for in-flight requests (SHUTDOWN_TIMEOUT). @default 10_000 (10 s) */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;
/** Largest request head, request line and headers (SESSIONGATE_MAX_HEADER_BYTES). @default 16384 (16 KiB) */
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
/** How long a client may take to send its request head (SESSIONGATE_REQUEST_TIMEOUT). @default 30_000 (30 s) */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** The gateway process keeps its heap within this much of its live data, in percent (SESSIONGATE_HEAP_GROWTH). @default 20 */
export const DEFAULT_HEAP_GROWTH_PERCENT = 20;
/** A heap below this size, in MB, may grow past the percent between full collections, up to it and at most doubling (SESSIONGATE_HEAP_FLOOR). @default 64 */
export const DEFAULT_HEAP_FLOOR_MB = 64;
/** LOG_LEVEL. @default 'info' */
export const DEFAULT_LOG_LEVEL = 'info';
/** Worker processes (GATEWAY_WORKERS): 1 runs the gateway in the process itself. @default 1 */
export const DEFAULT_WORKERS = 1;
/** More worker restarts than this within the window is a crash loop (GATEWAY_WORKER_RESTART_LIMIT). @default 5 */
export const DEFAULT_WORKER_RESTART_LIMIT = 5;
/** The window the restart limit counts in (GATEWAY_WORKER_RESTART_WINDOW). @default 60_000 (60 s) */
export const DEFAULT_WORKER_RESTART_WINDOW_MS = 60_000;
/** The traces' service name when OTEL_SERVICE_NAME is unset. @default 'sessiongate-gateway' */
export const DEFAULT_SERVICE_NAME = 'sessiongate-gateway';

// --- routes.yaml --------------------------------------------------------------------------

/** Request body limit of a route without `bodyLimit`, in bytes. @default 1048576 (1 MiB) */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;
/** Upstream timeout of a route without `timeout`, in milliseconds. @default 30_000 (30 s) */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 30_000;
/** What a route does with a `_method` parameter, absent `methodOverride`. @default 'refuse' */
export const DEFAULT_METHOD_OVERRIDE = 'refuse' as const;
/** Credentials a route without `credentials` accepts: the session cookie only. @default ['cookie'] */
export const DEFAULT_CREDENTIALS = Object.freeze(['cookie'] as const);

// --- the request path -----------------------------------------------------------------------

/** Largest Cookie header accepted; browsers send at most ~4 KiB per cookie (SESSIONGATE_MAX_COOKIE_BYTES). @default 8192 */
export const DEFAULT_MAX_COOKIE_BYTES = 8192;
/** Linked from the HTML 401 and 403 pages browsers see. @default '/auth/login' */
export const DEFAULT_LOGIN_PATH = '/auth/login';
/** Where the 403 page's "Sign out" posts (none when there is no login path). @default '/auth/logout' */
export const DEFAULT_LOGOUT_PATH = '/auth/logout';
/** Connections to each upstream origin. @default 128 */
export const DEFAULT_UPSTREAM_CONNECTIONS = 128;
/** How long an idle upstream connection is kept open. @default 4_000 (4 s) */
export const DEFAULT_UPSTREAM_KEEP_ALIVE_MS = 4_000;
/** How long a WebSocket (or other upgraded connection) may stay silent both ways (WEBSOCKET_IDLE_TIMEOUT). @default 600_000 (10 min) */
export const DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS = 10 * 60_000;

/** Failed bearer credentials (API keys, JWTs) one client address may send per window before it gets 429 (BEARER_MAX_FAILURES). @default 20 */
export const DEFAULT_BEARER_MAX_FAILURES = 20;
/** The window failed bearer credentials are counted in (BEARER_FAILURE_WINDOW). @default 300_000 (5 min) */
export const DEFAULT_BEARER_FAILURE_WINDOW_MS = 5 * 60_000;

// --- the session cache ------------------------------------------------------------------------

/** Resolve sessions from memory while revocations can reach this gateway (SESSION_CACHE). @default true */
export const DEFAULT_SESSION_CACHE = true;
/** Most sessions one gateway keeps resolved in memory (SESSION_CACHE_MAX). @default 100_000 */
export const DEFAULT_CACHE_MAX = 100_000;
/** How long a resolved session stays in memory unused; every change to it in Redis evicts it sooner (SESSION_CACHE_TTL). @default 5_000 (5 s) */
export const DEFAULT_CACHE_TTL_MS = 5_000;
/** How long an unknown or malformed token is remembered as such (SESSION_CACHE_NEGATIVE_TTL). @default 1_000 (1 s) */
export const DEFAULT_NEGATIVE_TTL_MS = 1_000;
/** The idle expiry is pushed forward at most once per this fraction of the idle timeout (SESSION_REFRESH_FRACTION). @default 0.1 */
export const DEFAULT_REFRESH_FRACTION = 0.1;
/** How often the invalidation connection is pinged to prove revocations can still arrive. @default 250 */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 250;
/** A ping on a key-tracking connection unanswered this long bypasses the cache until it answers. @default 500 */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 500;
/**
 * How often long-lived users of a session (WebSocket tunnels) are checked against Redis while
 * changes to sessions may go unreported (a key-tracking connection down or silent, or the
 * cache and with it key tracking turned off). @default 500
 */
export const DEFAULT_REVOCATION_RECHECK_MS = 500;

// --- X-Session ------------------------------------------------------------------------------

/** Lifetime of each X-Session (X_SESSION_TTL). @default 60_000 (60 s) */
export const DEFAULT_X_SESSION_TTL_MS = 60_000;
/** Most sessions that keep their signed X-Session headers for reuse. @default 10_000 */
export const DEFAULT_SIGNED_HEADERS_MAX = 10_000;
