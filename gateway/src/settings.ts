import {
  DEFAULT_AUTH_ROUTE,
  DEFAULT_X_SESSION_ISSUER,
  loadKeySet,
  redisOptionsFromEnv,
  sessionSettingsFromEnv,
  type KeySet,
  type RedisConnectionOptions,
  type SessionSettings,
} from '@sessiongate/session';
import type { SessionCacheOptions } from './session/resolver.js';
import { jwtIssuersFromEnv, type JwtIssuer } from './session/jwt-issuers.js';
import {
  SettingError,
  booleanSetting,
  brandSetting,
  durationSetting,
  intSetting,
  listSetting,
  listenSettings,
  logLevelSetting,
  originsSetting,
  parseCidrs,
  setting,
} from '@sessiongate/service-kit';
import type { Brand } from '@sessiongate/service-kit';
import { workerSettingsFromEnv, type WorkerSettings } from './cluster/settings.js';
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
  DEFAULT_X_SESSION_TTL_MS,
} from './defaults.js';

/** Everything the gateway process reads from its environment, validated and frozen. */
export interface GatewayConfig {
  readonly host: string;
  readonly port: number;
  readonly metricsHost: string;
  readonly metricsPort: number;
  readonly routesFile: string;
  readonly redis: RedisConnectionOptions;
  readonly session: SessionSettings;
  readonly keys: KeySet;
  readonly xSession: { readonly issuer: string; readonly ttlMs: number };
  readonly authRoute: string;
  readonly allowedOrigins: readonly string[];
  readonly trustedProxies: readonly string[];
  readonly cache: Required<SessionCacheOptions>;
  readonly refreshFraction: number;
  /**
   * How far V8 lets the heap grow past what the last full collection kept, in percent (0:
   * V8's own choice, up to 300 % under load). Applied by the CLI only.
   */
  readonly heapGrowthPercent: number;
  /**
   * Below this heap size, in MB, the heap grows past the percent without a full collection
   * (0: no floor). Applied by the CLI only, with the percent.
   */
  readonly heapFloorMb: number;
  readonly logLevel: string;
  readonly shutdownTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly maxCookieBytes: number;
  /** Identity providers whose access tokens `bearer_jwt` routes accept (SESSIONGATE_JWT_ISSUERS). */
  readonly jwtIssuers: readonly JwtIssuer[];
  /** Failed bearer credentials per client address and window before 429. */
  readonly bearerThrottle: { readonly maxFailures: number; readonly windowMs: number };
  readonly requestTimeoutMs: number;
  /** How long a WebSocket may carry nothing either way before the gateway closes it. */
  readonly websocketIdleTimeoutMs: number;
  readonly watchRoutes: boolean;
  /** The product's name and logo on the error pages browsers see. */
  readonly brand: Brand;
  /** Worker processes (GATEWAY_WORKERS) and their restart limits. */
  readonly workers: WorkerSettings;
  /** The forward-auth endpoint (docs/forward-auth.md): off unless proxies or a port are set. */
  readonly forwardAuth: {
    /** SESSIONGATE_FORWARD_AUTH_PROXIES: CIDRs of the proxies that may ask. */
    readonly proxies: readonly string[];
    /** FORWARD_AUTH_PORT: the endpoint's own listener; null: it is on the main listener. */
    readonly port: number | null;
    /** FORWARD_AUTH_HOST. @default the gateway's listen address */
    readonly host: string;
  };
  /** The session data endpoint's listener (docs/session-data.md): off unless a port is set. */
  readonly sessionData: {
    /** SESSION_DATA_PORT; null: upstreams cannot write session data. */
    readonly port: number | null;
    /** SESSION_DATA_HOST. @default the gateway's listen address */
    readonly host: string;
  };
}

/** Reads and validates the gateway's settings; throws SettingError naming the variable. */
export function gatewayConfigFromEnv(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const session = sessionSettingsFromEnv(env);
  const redis = redisOptionsFromEnv(env, { connectionName: 'sessiongate-gateway' });
  const keys = setting('X_SESSION_KEYS', () => {
    if (!env.X_SESSION_KEYS?.trim()) {
      throw new SettingError('X_SESSION_KEYS', 'required: a JWK set (JSON) or a path to one; create one with `sessiongate keys generate`');
    }
    return loadKeySet(env.X_SESSION_KEYS);
  });
  const trustedProxies = listSetting(env, 'SESSIONGATE_TRUSTED_PROXIES');
  setting('SESSIONGATE_TRUSTED_PROXIES', () => parseCidrs(trustedProxies));
  const forwardAuthProxies = listSetting(env, 'SESSIONGATE_FORWARD_AUTH_PROXIES');
  setting('SESSIONGATE_FORWARD_AUTH_PROXIES', () => parseCidrs(forwardAuthProxies));
  const forwardAuthPort = env.FORWARD_AUTH_PORT?.trim() ? intSetting(env, 'FORWARD_AUTH_PORT', 0, 1, 65_535) : null;
  const sessionDataPort = env.SESSION_DATA_PORT?.trim() ? intSetting(env, 'SESSION_DATA_PORT', 0, 1, 65_535) : null;
  const refreshRaw = env.SESSION_REFRESH_FRACTION?.trim();
  const refreshFraction = refreshRaw ? Number(refreshRaw) : DEFAULT_REFRESH_FRACTION;
  if (!(refreshFraction > 0 && refreshFraction < 1)) {
    throw new SettingError('SESSION_REFRESH_FRACTION', `"${refreshRaw}" is not a number between 0 and 1 (exclusive)`);
  }
  const ttlMs = durationSetting(env, 'X_SESSION_TTL', DEFAULT_X_SESSION_TTL_MS);
  if (ttlMs < 1000) throw new SettingError('X_SESSION_TTL', 'must be at least 1s');
  const config: GatewayConfig = {
    // GATEWAY_PORT and friends win over PORT: one environment can serve both processes
    ...listenSettings(env, 'GATEWAY', { port: DEFAULT_GATEWAY_PORT, metricsPort: DEFAULT_GATEWAY_METRICS_PORT }),
    routesFile: env.SESSIONGATE_ROUTES?.trim() || DEFAULT_ROUTES_FILE,
    redis,
    session,
    keys,
    xSession: { issuer: env.X_SESSION_ISSUER?.trim() || DEFAULT_X_SESSION_ISSUER, ttlMs },
    authRoute: env.SESSIONGATE_AUTH_ROUTE?.trim() || DEFAULT_AUTH_ROUTE,
    allowedOrigins: originsSetting(env, 'SESSIONGATE_ALLOWED_ORIGINS'),
    trustedProxies,
    cache: {
      enabled: booleanSetting(env, 'SESSION_CACHE', DEFAULT_SESSION_CACHE),
      max: intSetting(env, 'SESSION_CACHE_MAX', DEFAULT_CACHE_MAX, 1),
      ttlMs: durationSetting(env, 'SESSION_CACHE_TTL', DEFAULT_CACHE_TTL_MS),
      negativeTtlMs: durationSetting(env, 'SESSION_CACHE_NEGATIVE_TTL', DEFAULT_NEGATIVE_TTL_MS),
    },
    refreshFraction,
    heapGrowthPercent: intSetting(env, 'SESSIONGATE_HEAP_GROWTH', DEFAULT_HEAP_GROWTH_PERCENT, 0, 1000),
    heapFloorMb: intSetting(env, 'SESSIONGATE_HEAP_FLOOR', DEFAULT_HEAP_FLOOR_MB, 0, 65536),
    logLevel: logLevelSetting(env, DEFAULT_LOG_LEVEL),
    shutdownTimeoutMs: durationSetting(env, 'SHUTDOWN_TIMEOUT', DEFAULT_SHUTDOWN_TIMEOUT_MS),
    maxHeaderBytes: intSetting(env, 'SESSIONGATE_MAX_HEADER_BYTES', DEFAULT_MAX_HEADER_BYTES, 1024),
    maxCookieBytes: intSetting(env, 'SESSIONGATE_MAX_COOKIE_BYTES', DEFAULT_MAX_COOKIE_BYTES, 256),
    jwtIssuers: jwtIssuersFromEnv(env),
    bearerThrottle: {
      maxFailures: intSetting(env, 'BEARER_MAX_FAILURES', DEFAULT_BEARER_MAX_FAILURES, 1),
      windowMs: durationSetting(env, 'BEARER_FAILURE_WINDOW', DEFAULT_BEARER_FAILURE_WINDOW_MS),
    },
    requestTimeoutMs: durationSetting(env, 'SESSIONGATE_REQUEST_TIMEOUT', DEFAULT_REQUEST_TIMEOUT_MS),
    websocketIdleTimeoutMs: durationSetting(env, 'WEBSOCKET_IDLE_TIMEOUT', DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS),
    watchRoutes: booleanSetting(env, 'SESSIONGATE_WATCH_ROUTES', DEFAULT_WATCH_ROUTES),
    brand: brandSetting(env),
    workers: workerSettingsFromEnv(env),
    forwardAuth: Object.freeze({ proxies: forwardAuthProxies, port: forwardAuthPort, host: '' }),
    sessionData: Object.freeze({ port: sessionDataPort, host: '' }),
  };
  // the endpoint's listener follows the gateway's address unless told otherwise
  const forwardAuth = Object.freeze({ ...config.forwardAuth, host: env.FORWARD_AUTH_HOST?.trim() || config.host });
  if (forwardAuthPort !== null && forwardAuthPort === config.port) {
    throw new SettingError('FORWARD_AUTH_PORT', `must differ from the gateway's port (${config.port})`);
  }
  // upstreams reach the session data endpoint on an address of its own, never the public one
  const sessionData = Object.freeze({ port: sessionDataPort, host: env.SESSION_DATA_HOST?.trim() || config.host });
  if (sessionDataPort !== null && (sessionDataPort === config.port || sessionDataPort === forwardAuthPort)) {
    throw new SettingError('SESSION_DATA_PORT', `must differ from the gateway's port (${config.port}) and FORWARD_AUTH_PORT`);
  }
  return Object.freeze({ ...config, forwardAuth, sessionData });
}
