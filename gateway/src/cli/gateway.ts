import { setFlagsFromString } from 'node:v8';
import { runServiceCommand, type CliIo } from '@sessiongate/service-kit';
import { REDIS_ENVIRONMENT_HELP } from '@sessiongate/session';

export const GATEWAY_HELP = `Usage: sessiongate gateway [options]

Runs the edge gateway: resolves the session cookie against Redis, enforces the roles of
routes.yaml, and forwards requests upstream with a signed X-Session header. This is also
what \`sessiongate\` runs without a command. Settings come from the environment; options
override them.

Options:
  --routes FILE        routes file                      (SESSIONGATE_ROUTES, ./routes.yaml)
  --host ADDR          public listener address          (GATEWAY_HOST, 0.0.0.0)
  --port N             public listener port             (GATEWAY_PORT, 8080)
  --metrics-port N     metrics and health port          (GATEWAY_METRICS_PORT, 9091)
  --workers N|auto     worker processes (auto: one per core)  (GATEWAY_WORKERS, 1)
  -h, --help           show this help

Environment:
${REDIS_ENVIRONMENT_HELP}
  SESSIONGATE_REDIS_PREFIX    sg:       prefix of every key sessiongate writes
  SESSIONGATE_ROUTES          ./routes.yaml
  GATEWAY_HOST, GATEWAY_PORT  0.0.0.0, 8080   the public listener
  GATEWAY_METRICS_HOST, GATEWAY_METRICS_PORT
                              $GATEWAY_HOST, 9091   /metrics, /healthz, /readyz (never
                                        on the public port)
  HOST, PORT, METRICS_HOST, METRICS_PORT
                                        used when the GATEWAY_ ones are unset; the auth
                                        service reads its own AUTH_ ones first, so both
                                        can share one environment file
  SESSION_COOKIE_NAME         sid       the session cookie (__Host-sid works with Secure)
  COOKIE_SECURE               true      false only for local http (no __Host- name then)
  SESSION_IDLE_TIMEOUT        30m       used to pace expiry refreshes
  SESSION_ABSOLUTE_TIMEOUT    12h
  SESSION_REFRESH_FRACTION    0.1       push the idle expiry at most once per this
                                        fraction of the idle timeout
  SESSION_CACHE               true      local cache of resolved sessions
  SESSION_CACHE_MAX           100000    sessions kept in memory
  SESSION_CACHE_TTL           5s        reuse a resolved session this long (revocations
                                        arrive by pub/sub within milliseconds)
  SESSION_CACHE_NEGATIVE_TTL  1s        remember unknown tokens this long
  SESSIONGATE_HEAP_GROWTH     20        % the heap may grow past its live data before a
                                        full collection (0: V8's default, up to 300 %)
  X_SESSION_KEYS              required  JWK set (JSON) or a path to one; the first key
                                        signs, all are published (sessiongate keys generate)
  X_SESSION_TTL               60s       lifetime of each X-Session
  X_SESSION_ISSUER            sessiongate
  SESSIONGATE_AUTH_ROUTE      auth      the only route whose upstream may set the cookie
  SESSIONGATE_ALLOWED_ORIGINS (own origin)  origins allowed to send cookie writes, logins
                                        and logouts (CSRF)
  SESSIONGATE_TRUSTED_PROXIES (none)    CIDRs whose X-Forwarded-*/Forwarded are believed
  SESSIONGATE_MAX_HEADER_BYTES 16384    largest request head accepted (431 beyond)
  SESSIONGATE_MAX_COOKIE_BYTES 8192    largest Cookie header accepted (431 beyond)
  SESSIONGATE_REQUEST_TIMEOUT 30s       time a client has to send its whole request
  WEBSOCKET_IDLE_TIMEOUT      10m       close a WebSocket silent this long both ways
  SESSIONGATE_WATCH_ROUTES    true      reload routes when the file changes (SIGHUP always)
  SESSIONGATE_BRAND_NAME      (unset)   product name shown on the error pages browsers see
  SESSIONGATE_BRAND_LOGO_URL  (unset)   logo shown next to it: https:// URL or /path
  SHUTDOWN_TIMEOUT            10s       how long SIGTERM waits for in-flight requests
  GATEWAY_WORKERS             1         worker processes sharing the port (auto: one per
                                        core); the primary serves the metrics port
  GATEWAY_WORKER_RESTART_LIMIT 5        crashed workers replaced within the window before
  GATEWAY_WORKER_RESTART_WINDOW 60s     the primary gives up and exits 1
  OTEL_EXPORTER_OTLP_ENDPOINT (unset)   send OpenTelemetry traces there (OTLP/HTTP); also
                                        OTEL_TRACES_EXPORTER=otlp, OTEL_SERVICE_NAME and
                                        the other standard OTEL_ settings
  LOG_LEVEL                   info      fatal, error, warn, info, debug, trace, silent

Signals: SIGHUP reloads routes (an invalid file keeps the old ones); SIGTERM/SIGINT drain
and exit 0.
`;

export async function gatewayCommand(argv: string[], io: CliIo): Promise<number> {
  return runServiceCommand(argv, io, {
    name: 'gateway',
    help: GATEWAY_HELP,
    flags: { routes: 'SESSIONGATE_ROUTES', host: 'GATEWAY_HOST', port: 'GATEWAY_PORT', 'metrics-port': 'GATEWAY_METRICS_PORT', workers: 'GATEWAY_WORKERS' },
    // the server's modules load only when it starts, so --help stays instant
    loadConfig: async (env) => (await import('../config/env.js')).gatewayConfigFromEnv(env),
    start: async (config, out) => {
      // a cache of many sessions is long-lived data: by default V8 lets the heap grow to up to
      // four times what a full collection keeps, which here means hundreds of MB of garbage
      if (config.heapGrowthPercent > 0) setFlagsFromString(`--heap-growing-percent=${config.heapGrowthPercent}`);
      if (config.workers.count > 1) return (await import('../cluster/start.js')).startCluster(config, { pretty: Boolean((out.stdout as NodeJS.WriteStream).isTTY) });
      const { startGatewayServer } = await import('../server.js');
      return startGatewayServer(config, { pretty: Boolean((out.stdout as NodeJS.WriteStream).isTTY) });
    },
    startErrors: ['SG_ERR_INVALID_CONFIG', 'SG_ERR_WORKER_START_FAILED'],
  });
}
