import { runServiceCommand, type CliIo } from '@sessiongate/service-kit';
import {
  DEFAULT_ABSOLUTE_TIMEOUT_MS,
  DEFAULT_AUTH_ROUTE,
  DEFAULT_COOKIE_NAME,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_KEY_PREFIX,
  DEFAULT_X_SESSION_ISSUER,
  REDIS_ENVIRONMENT_HELP,
} from '@sessiongate/session';
import {
  DEFAULT_BEARER_FAILURE_WINDOW_MS,
  DEFAULT_BEARER_MAX_FAILURES,
  DEFAULT_CACHE_MAX,
  DEFAULT_CACHE_TTL_MS,
  DEFAULT_GATEWAY_METRICS_PORT,
  DEFAULT_GATEWAY_PORT,
  DEFAULT_HEAP_FLOOR_MB,
  DEFAULT_HEAP_GROWTH_PERCENT,
  DEFAULT_LOG_LEVEL,
  DEFAULT_MAX_COOKIE_BYTES,
  DEFAULT_MAX_HEADER_BYTES,
  DEFAULT_NEGATIVE_TTL_MS,
  DEFAULT_REFRESH_FRACTION,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_ROUTES_FILE,
  DEFAULT_SESSION_CACHE,
  DEFAULT_SHUTDOWN_TIMEOUT_MS,
  DEFAULT_WATCH_ROUTES,
  DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS,
  DEFAULT_WORKERS,
  DEFAULT_WORKER_RESTART_LIMIT,
  DEFAULT_WORKER_RESTART_WINDOW_MS,
  DEFAULT_X_SESSION_TTL_MS,
} from '../defaults.js';

/**
 * A duration as the settings accept it, in the largest unit that states it exactly and
 * reads naturally: 60s, 90s, 10m, 12h (minutes and hours from two of them up).
 */
function durationText(ms: number): string {
  for (const [unit, size, least] of [['h', 3_600_000, 2], ['m', 60_000, 2], ['s', 1000, 1]] as const) {
    if (ms % size === 0 && ms / size >= least) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

// the default column: values are padded so the descriptions line up
const col = (value: string | number | boolean, width = 10): string => `${String(value)} `.padEnd(width);
const dur = (ms: number, width?: number): string => col(durationText(ms), width);

export const GATEWAY_HELP = `Usage: sessiongate gateway [options]

Runs the edge gateway: resolves the session cookie against Redis, enforces the roles of
routes.yaml, and forwards requests upstream with a signed X-Session header. This is also
what \`sessiongate\` runs without a command. Settings come from the environment; options
override them.

Options:
  --routes FILE        routes file                      (SESSIONGATE_ROUTES, ${DEFAULT_ROUTES_FILE})
  --host ADDR          public listener address          (GATEWAY_HOST, 0.0.0.0)
  --port N             public listener port             (GATEWAY_PORT, ${DEFAULT_GATEWAY_PORT})
  --metrics-port N     metrics and health port          (GATEWAY_METRICS_PORT, ${DEFAULT_GATEWAY_METRICS_PORT})
  --workers N|auto     worker processes (auto: one per core)  (GATEWAY_WORKERS, ${DEFAULT_WORKERS})
  -h, --help           show this help

Environment:
${REDIS_ENVIRONMENT_HELP}
  SESSIONGATE_REDIS_PREFIX    ${col(DEFAULT_KEY_PREFIX)}prefix of every key sessiongate writes
  SESSIONGATE_ROUTES          ${DEFAULT_ROUTES_FILE}
  GATEWAY_HOST, GATEWAY_PORT  0.0.0.0, ${DEFAULT_GATEWAY_PORT}   the public listener
  GATEWAY_METRICS_HOST, GATEWAY_METRICS_PORT
                              $GATEWAY_HOST, ${DEFAULT_GATEWAY_METRICS_PORT}   /metrics, /healthz, /readyz (never
                                        on the public port)
  HOST, PORT, METRICS_HOST, METRICS_PORT
                                        used when the GATEWAY_ ones are unset; the auth
                                        service reads its own AUTH_ ones first, so both
                                        can share one environment file
  SESSION_COOKIE_NAME         ${col(DEFAULT_COOKIE_NAME)}the session cookie (__Host-sid works with Secure)
  COOKIE_SECURE               true      false only for local http (no __Host- name then)
  SESSION_IDLE_TIMEOUT        ${dur(DEFAULT_IDLE_TIMEOUT_MS)}used to pace expiry refreshes
  SESSION_ABSOLUTE_TIMEOUT    ${durationText(DEFAULT_ABSOLUTE_TIMEOUT_MS)}
  SESSION_REFRESH_FRACTION    ${col(DEFAULT_REFRESH_FRACTION)}push the idle expiry at most once per this
                                        fraction of the idle timeout
  SESSION_CACHE               ${col(DEFAULT_SESSION_CACHE)}local cache of resolved sessions
  SESSION_CACHE_MAX           ${col(DEFAULT_CACHE_MAX)}sessions kept in memory
  SESSION_CACHE_TTL           ${dur(DEFAULT_CACHE_TTL_MS)}drop a resolved session unused this long (Redis
                                        reports every change within milliseconds)
  SESSION_CACHE_NEGATIVE_TTL  ${dur(DEFAULT_NEGATIVE_TTL_MS)}remember unknown tokens this long
  SESSIONGATE_HEAP_GROWTH     ${col(DEFAULT_HEAP_GROWTH_PERCENT)}% the heap may grow past its live data before a
                                        full collection (0: V8's default, up to 300 %)
  SESSIONGATE_HEAP_FLOOR      ${col(DEFAULT_HEAP_FLOOR_MB)}MB the heap may reach before that percent holds
                                        (0: none)
  X_SESSION_KEYS              required  JWK set (JSON) or a path to one; the first key
                                        signs, all are published (sessiongate keys generate)
  X_SESSION_TTL               ${dur(DEFAULT_X_SESSION_TTL_MS)}lifetime of each X-Session
  X_SESSION_ISSUER            ${DEFAULT_X_SESSION_ISSUER}
  SESSIONGATE_AUTH_ROUTE      ${col(DEFAULT_AUTH_ROUTE)}the only route whose upstream may set the cookie
  SESSIONGATE_ALLOWED_ORIGINS (own origin)  origins allowed to send cookie writes, logins
                                        and logouts (CSRF)
  SESSIONGATE_TRUSTED_PROXIES (none)    CIDRs whose X-Forwarded-*/Forwarded are believed
  SESSIONGATE_FORWARD_AUTH_PROXIES (none)  CIDRs of the proxies that may ask the
                                        forward-auth endpoint /_sessiongate/authz
  FORWARD_AUTH_PORT           (none)    the forward-auth endpoint on a listener of its own
  FORWARD_AUTH_HOST           (GATEWAY_HOST)  that listener's address
  SESSION_DATA_PORT           (none)    the listener upstreams write session data to
                                        (/_sessiongate/session-data); never public
  SESSION_DATA_HOST           (GATEWAY_HOST)  that listener's address
  SESSIONGATE_MAX_HEADER_BYTES ${col(DEFAULT_MAX_HEADER_BYTES, 9)}largest request head accepted (431 beyond)
  SESSIONGATE_MAX_COOKIE_BYTES ${col(DEFAULT_MAX_COOKIE_BYTES, 9)}largest Cookie header accepted (431 beyond)
  SESSIONGATE_REQUEST_TIMEOUT ${dur(DEFAULT_REQUEST_TIMEOUT_MS)}time a client has to send its whole request
  SESSIONGATE_JWT_ISSUERS     (unset)   YAML file of the identity providers whose access
                                        tokens bearer_jwt routes accept
  BEARER_MAX_FAILURES         ${col(DEFAULT_BEARER_MAX_FAILURES)}failed API keys/JWTs per client address and
                                        window before 429
  BEARER_FAILURE_WINDOW       ${dur(DEFAULT_BEARER_FAILURE_WINDOW_MS)}the window of that limit
  WEBSOCKET_IDLE_TIMEOUT      ${dur(DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS)}close a WebSocket silent this long both ways
  SESSIONGATE_WATCH_ROUTES    ${col(DEFAULT_WATCH_ROUTES)}reload routes when the file changes (SIGHUP always)
  SESSIONGATE_BRAND_NAME      (unset)   product name shown on the error pages browsers see
  SESSIONGATE_BRAND_LOGO_URL  (unset)   logo shown next to it: https:// URL or /path
  SHUTDOWN_TIMEOUT            ${dur(DEFAULT_SHUTDOWN_TIMEOUT_MS)}how long SIGTERM waits for in-flight requests
  GATEWAY_WORKERS             ${col(DEFAULT_WORKERS)}worker processes sharing the port (auto: one per
                                        core); the primary serves the metrics port
  GATEWAY_WORKER_RESTART_LIMIT ${col(DEFAULT_WORKER_RESTART_LIMIT, 9)}crashed workers replaced within the window before
  GATEWAY_WORKER_RESTART_WINDOW ${dur(DEFAULT_WORKER_RESTART_WINDOW_MS, 8)}the primary gives up and exits 1
  OTEL_EXPORTER_OTLP_ENDPOINT (unset)   send OpenTelemetry traces there (OTLP/HTTP); also
                                        OTEL_TRACES_EXPORTER=otlp, OTEL_SERVICE_NAME and
                                        the other standard OTEL_ settings
  LOG_LEVEL                   ${col(DEFAULT_LOG_LEVEL)}fatal, error, warn, info, debug, trace, silent

Signals: SIGHUP reloads routes (an invalid file keeps the old ones); SIGTERM/SIGINT drain
and exit 0.
`;

/** `sessiongate gateway`: reads the settings and serves until a signal stops it. */
export async function serveCommand(argv: string[], io: CliIo): Promise<number> {
  return runServiceCommand(argv, io, {
    name: 'gateway',
    help: GATEWAY_HELP,
    flags: { routes: 'SESSIONGATE_ROUTES', host: 'GATEWAY_HOST', port: 'GATEWAY_PORT', 'metrics-port': 'GATEWAY_METRICS_PORT', workers: 'GATEWAY_WORKERS' },
    // the server's modules load only when it starts, so --help stays instant
    loadConfig: async (env) => (await import('../settings.js')).gatewayConfigFromEnv(env),
    start: async (config, out) => {
      const { governHeapGrowth } = await import('../ops/heap.js');
      governHeapGrowth({ percent: config.heapGrowthPercent, floorBytes: config.heapFloorMb * 1024 * 1024 });
      if (config.workers.count > 1) return (await import('../cluster/start.js')).startCluster(config, { pretty: Boolean((out.stdout as NodeJS.WriteStream).isTTY) });
      const { startGatewayServer } = await import('../server.js');
      return startGatewayServer(config, { pretty: Boolean((out.stdout as NodeJS.WriteStream).isTTY) });
    },
    startErrors: ['SG_ERR_INVALID_CONFIG', 'SG_ERR_WORKER_START_FAILED'],
  });
}
