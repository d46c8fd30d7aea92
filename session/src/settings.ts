import { SettingError, booleanSetting, durationSetting } from '@sessiongate/service-kit';
import { DEFAULT_COOKIE_NAME, cookieNameProblem } from './cookie.js';
import { DEFAULT_KEY_PREFIX, keyPrefixProblem } from './record.js';

/** Idle timeout: a session nobody uses for this long ends. @default 30 min */
export const DEFAULT_IDLE_TIMEOUT_MS = 30 * 60_000;
/** Absolute timeout: no session outlives this, however busy. @default 12 h */
export const DEFAULT_ABSOLUTE_TIMEOUT_MS = 12 * 60 * 60_000;

/** The Redis settings every sessiongate command reads, as `--help` lists them. */
export const REDIS_ENVIRONMENT_HELP = `  REDIS_URL                   redis://127.0.0.1:6379   redis:// or rediss:// (TLS); user,
                                                       password and db come from the URL
  REDIS_SENTINELS             (unset)   host:port,… of Sentinels; with REDIS_SENTINEL_MASTER
  REDIS_SENTINEL_MASTER       (unset)   master group name, e.g. mymaster
  REDIS_SENTINEL_PASSWORD     (unset)   password of the Sentinels themselves
  REDIS_CLUSTER_NODES         (unset)   host:port,… seed nodes of a Redis Cluster
  REDIS_COMMAND_TIMEOUT       1s        a Redis command slower than this fails closed (503)`;

/** What the gateway and the auth service must agree on about sessions. */
export interface SessionSettings {
  readonly cookieName: string;
  readonly cookieSecure: boolean;
  readonly idleTimeoutMs: number;
  readonly absoluteTimeoutMs: number;
  readonly keyPrefix: string;
}

export function sessionSettingsFromEnv(env: NodeJS.ProcessEnv): SessionSettings {
  const idleTimeoutMs = durationSetting(env, 'SESSION_IDLE_TIMEOUT', DEFAULT_IDLE_TIMEOUT_MS);
  const absoluteTimeoutMs = durationSetting(env, 'SESSION_ABSOLUTE_TIMEOUT', DEFAULT_ABSOLUTE_TIMEOUT_MS);
  if (absoluteTimeoutMs < idleTimeoutMs) {
    throw new SettingError('SESSION_ABSOLUTE_TIMEOUT', 'must not be shorter than SESSION_IDLE_TIMEOUT');
  }
  const cookieSecure = booleanSetting(env, 'COOKIE_SECURE', true);
  const cookieName = env.SESSION_COOKIE_NAME?.trim() || DEFAULT_COOKIE_NAME;
  const problem = cookieNameProblem(cookieName, cookieSecure);
  if (problem) throw new SettingError('SESSION_COOKIE_NAME', problem);
  const keyPrefix = env.SESSIONGATE_REDIS_PREFIX ?? DEFAULT_KEY_PREFIX;
  const prefixProblem = keyPrefixProblem(keyPrefix);
  if (prefixProblem) throw new SettingError('SESSIONGATE_REDIS_PREFIX', prefixProblem);
  return Object.freeze({ cookieName, cookieSecure, idleTimeoutMs, absoluteTimeoutMs, keyPrefix });
}
