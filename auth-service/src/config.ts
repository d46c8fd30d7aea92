import {
  SettingError,
  booleanSetting,
  brandSetting,
  durationSetting,
  intSetting,
  listSetting,
  logLevelSetting,
  listenSettings,
  originsSetting,
  parseCidrs,
  setting,
} from '@sessiongate/service-kit';
import {
  DEFAULT_AUTH_ROUTE,
  DEFAULT_MAX_SESSIONS_PER_USER,
  DEFAULT_X_SESSION_ISSUER,
  redisOptionsFromEnv,
  sessionSettingsFromEnv,
  type RedisConnectionOptions,
  type SessionSettings,
} from '@sessiongate/session';
import { loadVerificationKeys, type VerificationKeys } from './identity.js';
import { loadOidcFile, type OidcConfig } from './oidc/config.js';
import {
  DEFAULT_FAILURE_WINDOW_MS,
  DEFAULT_MAX_FAILURES_PER_ACCOUNT,
  DEFAULT_MAX_FAILURES_PER_IP,
  type ThrottleSettings,
} from './throttle.js';
import { DEFAULT_SCRYPT_COST, MAX_SCRYPT_COST, MIN_SCRYPT_COST } from './users/password.js';
import { DEFAULT_NEXT, safeNext } from './routes/login-page.js';
import type { Brand } from '@sessiongate/service-kit';

/** @default 4000 */
export const DEFAULT_AUTH_PORT = 4000;
/** @default 9092 */
export const DEFAULT_AUTH_METRICS_PORT = 9092;
/** @default './users.yaml' */
export const DEFAULT_USERS_FILE = './users.yaml';
/**
 * Peers whose X-Forwarded-For is believed. The auth service normally sits behind a gateway
 * on the same host, so the default trusts loopback only: the gateway's X-Forwarded-For then
 * names the real client, and nobody else can claim an address to dodge the IP limit.
 * @default ['127.0.0.1/32', '::1/128']
 */
export const DEFAULT_AUTH_TRUSTED_PROXIES: readonly string[] = Object.freeze(['127.0.0.1/32', '::1/128']);
/** Highest SESSION_MAX_PER_USER: a user's index stays one small sorted set. @default 1000 */
export const MAX_SESSIONS_PER_USER_LIMIT = 1000;
/** How long shutdown waits for in-flight requests. @default 10 s */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;


/** Everything the auth service reads from its environment, validated and frozen. */
export interface AuthConfig {
  readonly host: string;
  readonly port: number;
  readonly metricsHost: string;
  readonly metricsPort: number;
  readonly usersFile: string;
  readonly watchUsers: boolean;
  /** log2 N of scrypt for new hashes (and for the dummy hash of unknown users). */
  readonly scryptCost: number;
  readonly redis: RedisConnectionOptions;
  readonly session: SessionSettings;
  /** Most live sessions per user: a login past it ends the user's oldest session. */
  readonly maxSessionsPerUser: number;
  readonly xSession: { readonly keys: VerificationKeys; readonly issuer: string; readonly audience: string };
  readonly trustedProxies: readonly string[];
  /**
   * Origins besides the request's own that may post to login and logout: the gateway's
   * SESSIONGATE_ALLOWED_ORIGINS, read from the same variable.
   */
  readonly allowedOrigins: readonly string[];
  readonly throttle: ThrottleSettings;
  readonly logLevel: string;
  readonly shutdownTimeoutMs: number;
  /** Where a browser lands after signing in when nothing asked for another page. */
  readonly loginDefaultNext: string;
  /** The product's name and logo on the sign-in page. */
  readonly brand: Brand;
  /** OpenID Connect providers (SESSIONGATE_OIDC), or null when sign-in is by password only. */
  readonly oidc: OidcConfig | null;
}

export function scryptCostSetting(env: NodeJS.ProcessEnv): number {
  return intSetting(env, 'SESSIONGATE_SCRYPT_COST', DEFAULT_SCRYPT_COST, MIN_SCRYPT_COST, MAX_SCRYPT_COST);
}

function loginDefaultNextSetting(env: NodeJS.ProcessEnv): string {
  const raw = env.LOGIN_DEFAULT_NEXT?.trim();
  if (!raw) return DEFAULT_NEXT;
  const next = safeNext(raw);
  if (next === null) throw new SettingError('LOGIN_DEFAULT_NEXT', `"${raw}" is not a path on this site like /app`);
  return next;
}

/** Reads and validates the auth service's settings; throws SettingError naming the variable. */
export function authConfigFromEnv(env: NodeJS.ProcessEnv = process.env): AuthConfig {
  const session = sessionSettingsFromEnv(env);
  const redis = redisOptionsFromEnv(env, { connectionName: 'sessiongate-auth' });
  const keys = loadVerificationKeys(env.X_SESSION_KEYS);
  // unset: loopback (behind a gateway on this host); set but empty: trust nobody
  const proxiesRaw = env.SESSIONGATE_TRUSTED_PROXIES;
  const trustedProxies =
    proxiesRaw === undefined
      ? [...DEFAULT_AUTH_TRUSTED_PROXIES]
      : setting('SESSIONGATE_TRUSTED_PROXIES', () => parseCidrs(listSetting(env, 'SESSIONGATE_TRUSTED_PROXIES')).cidrs);
  const logLevel = logLevelSetting(env);
  const config: AuthConfig = {
    // AUTH_PORT and friends win over PORT: one environment can serve both processes
    ...listenSettings(env, 'AUTH', { port: DEFAULT_AUTH_PORT, metricsPort: DEFAULT_AUTH_METRICS_PORT }),
    usersFile: env.SESSIONGATE_USERS?.trim() || DEFAULT_USERS_FILE,
    watchUsers: booleanSetting(env, 'SESSIONGATE_WATCH_USERS', true),
    scryptCost: scryptCostSetting(env),
    redis,
    session,
    maxSessionsPerUser: intSetting(env, 'SESSION_MAX_PER_USER', DEFAULT_MAX_SESSIONS_PER_USER, 1, MAX_SESSIONS_PER_USER_LIMIT),
    xSession: {
      keys,
      issuer: env.X_SESSION_ISSUER?.trim() || DEFAULT_X_SESSION_ISSUER,
      audience: env.SESSIONGATE_AUTH_ROUTE?.trim() || DEFAULT_AUTH_ROUTE,
    },
    trustedProxies: Object.freeze(trustedProxies),
    allowedOrigins: Object.freeze(originsSetting(env, 'SESSIONGATE_ALLOWED_ORIGINS')),
    throttle: Object.freeze({
      maxPerAccount: intSetting(env, 'LOGIN_MAX_FAILURES_PER_ACCOUNT', DEFAULT_MAX_FAILURES_PER_ACCOUNT, 1),
      maxPerIp: intSetting(env, 'LOGIN_MAX_FAILURES_PER_IP', DEFAULT_MAX_FAILURES_PER_IP, 1),
      windowMs: durationSetting(env, 'LOGIN_FAILURE_WINDOW', DEFAULT_FAILURE_WINDOW_MS),
    }),
    logLevel,
    shutdownTimeoutMs: durationSetting(env, 'SHUTDOWN_TIMEOUT', DEFAULT_SHUTDOWN_TIMEOUT_MS),
    loginDefaultNext: loginDefaultNextSetting(env),
    brand: brandSetting(env),
    oidc: env.SESSIONGATE_OIDC?.trim() ? loadOidcFile(env.SESSIONGATE_OIDC.trim(), env) : null,
  };
  return Object.freeze(config);
}
