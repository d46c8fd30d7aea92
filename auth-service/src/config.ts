import { BlockList, isIP } from 'node:net';
import {
  DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
  SettingError,
  booleanSetting,
  durationSetting,
  redisConnectionFromEnv,
  sessionSettingsFromEnv,
  type RedisConnectionOptions,
  type SessionSettings,
} from 'sessiongate/session';
import { loadVerificationKeys, type VerificationKeys } from './identity.js';
import {
  DEFAULT_FAILURE_WINDOW_MS,
  DEFAULT_MAX_FAILURES_PER_ACCOUNT,
  DEFAULT_MAX_FAILURES_PER_IP,
  type ThrottleSettings,
} from './throttle.js';
import { DEFAULT_SCRYPT_COST, MAX_SCRYPT_COST, MIN_SCRYPT_COST } from './users/password.js';

/** @default 4000 */
export const DEFAULT_AUTH_PORT = 4000;
/** @default 9092 */
export const DEFAULT_AUTH_METRICS_PORT = 9092;
/** @default './users.yaml' */
export const DEFAULT_USERS_FILE = './users.yaml';
/** The `iss` the gateway signs with. @default 'sessiongate' */
export const DEFAULT_X_SESSION_ISSUER = 'sessiongate';
/** The gateway's route name for this service: the `aud` of its X-Session. @default 'auth' */
export const DEFAULT_AUTH_ROUTE = 'auth';
/**
 * Peers whose X-Forwarded-For is believed. The auth service normally sits behind a gateway
 * on the same host, so the default trusts loopback only: the gateway's X-Forwarded-For then
 * names the real client, and nobody else can claim an address to dodge the IP limit.
 * @default ['127.0.0.1/32', '::1/128']
 */
export const DEFAULT_AUTH_TRUSTED_PROXIES: readonly string[] = Object.freeze(['127.0.0.1/32', '::1/128']);
/** How long shutdown waits for in-flight requests. @default 10 s */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

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
  readonly xSession: { readonly keys: VerificationKeys; readonly issuer: string; readonly audience: string };
  readonly trustedProxies: readonly string[];
  readonly throttle: ThrottleSettings;
  readonly logLevel: string;
  readonly shutdownTimeoutMs: number;
}

export function portSetting(env: NodeJS.ProcessEnv, variable: string, fallback: number): number {
  const raw = env[variable]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new SettingError(variable, `"${raw}" is not a port number (0-65535)`);
  return n;
}

export function intSetting(env: NodeJS.ProcessEnv, variable: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[variable]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) {
    throw new SettingError(variable, `"${raw}" is not a whole number${max === Number.MAX_SAFE_INTEGER ? ` ≥ ${min}` : ` from ${min} to ${max}`}`);
  }
  return n;
}

export function scryptCostSetting(env: NodeJS.ProcessEnv): number {
  return intSetting(env, 'SESSIONGATE_SCRYPT_COST', DEFAULT_SCRYPT_COST, MIN_SCRYPT_COST, MAX_SCRYPT_COST);
}

/** A CIDR list (`10.0.0.0/8, ::1/128, 192.168.1.7`); throws naming the bad entry. */
export function parseCidrs(variable: string, list: readonly string[]): string[] {
  const bl = new BlockList();
  return list.map((entry) => {
    const [addr = '', bits] = entry.split('/');
    const type = isIP(addr);
    if (!type) throw new SettingError(variable, `"${entry}" is not an IP address or CIDR`);
    const max = type === 4 ? 32 : 128;
    const prefix = bits === undefined ? max : Number(bits);
    if (!/^\d+$/.test(bits ?? String(max)) || prefix > max) throw new SettingError(variable, `"${entry}" has a bad prefix length`);
    bl.addSubnet(addr, prefix, type === 4 ? 'ipv4' : 'ipv6');
    return `${addr}/${prefix}`;
  });
}

function setting<T>(variable: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof SettingError) throw err;
    const msg = (err as Error).message;
    throw new SettingError(variable, msg.startsWith(`${variable}:`) ? msg.slice(variable.length + 1).trim() : msg);
  }
}

/** Reads and validates the auth service's settings; throws SettingError naming the variable. */
export function authConfigFromEnv(env: NodeJS.ProcessEnv = process.env): AuthConfig {
  const session = sessionSettingsFromEnv(env);
  const connection = setting('REDIS_URL', () => redisConnectionFromEnv(env));
  const keys = loadVerificationKeys(env.X_SESSION_KEYS);
  // unset: loopback (behind a gateway on this host); set but empty: trust nobody
  const proxiesRaw = env.SESSIONGATE_TRUSTED_PROXIES;
  const trustedProxies =
    proxiesRaw === undefined
      ? [...DEFAULT_AUTH_TRUSTED_PROXIES]
      : parseCidrs(
          'SESSIONGATE_TRUSTED_PROXIES',
          proxiesRaw
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
        );
  const logLevel = env.LOG_LEVEL?.trim().toLowerCase() || 'info';
  if (!LOG_LEVELS.includes(logLevel)) throw new SettingError('LOG_LEVEL', `"${env.LOG_LEVEL}" is not one of ${LOG_LEVELS.join(', ')}`);
  const host = env.HOST?.trim() || '0.0.0.0';
  const config: AuthConfig = {
    host,
    port: portSetting(env, 'PORT', DEFAULT_AUTH_PORT),
    metricsHost: env.METRICS_HOST?.trim() || host,
    metricsPort: portSetting(env, 'METRICS_PORT', DEFAULT_AUTH_METRICS_PORT),
    usersFile: env.SESSIONGATE_USERS?.trim() || DEFAULT_USERS_FILE,
    watchUsers: booleanSetting(env, 'SESSIONGATE_WATCH_USERS', true),
    scryptCost: scryptCostSetting(env),
    redis: {
      connection,
      commandTimeoutMs: durationSetting(env, 'REDIS_COMMAND_TIMEOUT', DEFAULT_REDIS_COMMAND_TIMEOUT_MS),
      ...(env.REDIS_SENTINEL_PASSWORD ? { sentinelPassword: env.REDIS_SENTINEL_PASSWORD } : {}),
      connectionName: 'sessiongate-auth',
    },
    session,
    xSession: {
      keys,
      issuer: env.X_SESSION_ISSUER?.trim() || DEFAULT_X_SESSION_ISSUER,
      audience: env.SESSIONGATE_AUTH_ROUTE?.trim() || DEFAULT_AUTH_ROUTE,
    },
    trustedProxies: Object.freeze(trustedProxies),
    throttle: Object.freeze({
      maxPerAccount: intSetting(env, 'LOGIN_MAX_FAILURES_PER_ACCOUNT', DEFAULT_MAX_FAILURES_PER_ACCOUNT, 1),
      maxPerIp: intSetting(env, 'LOGIN_MAX_FAILURES_PER_IP', DEFAULT_MAX_FAILURES_PER_IP, 1),
      windowMs: durationSetting(env, 'LOGIN_FAILURE_WINDOW', DEFAULT_FAILURE_WINDOW_MS),
    }),
    logLevel,
    shutdownTimeoutMs: durationSetting(env, 'SHUTDOWN_TIMEOUT', DEFAULT_SHUTDOWN_TIMEOUT_MS),
  };
  return Object.freeze(config);
}
