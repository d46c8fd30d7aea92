import { parseDuration } from '../config/duration.js';
import { DEFAULT_COOKIE_NAME, cookieNameProblem } from './cookie.js';
import { DEFAULT_KEY_PREFIX } from './record.js';

/** Idle timeout: a session nobody uses for this long ends. @default 30 min */
export const DEFAULT_IDLE_TIMEOUT_MS = 30 * 60_000;
/** Absolute timeout: no session outlives this, however busy. @default 12 h */
export const DEFAULT_ABSOLUTE_TIMEOUT_MS = 12 * 60 * 60_000;

/** What the gateway and the auth service must agree on about sessions. */
export interface SessionSettings {
  readonly cookieName: string;
  readonly cookieSecure: boolean;
  readonly idleTimeoutMs: number;
  readonly absoluteTimeoutMs: number;
  readonly keyPrefix: string;
}

/** A setting that stops the process at start, naming its variable. */
export class SettingError extends Error {
  override readonly name = 'SettingError';
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.variable = variable;
  }
}

export function durationSetting(env: NodeJS.ProcessEnv, variable: string, fallbackMs: number): number {
  const raw = env[variable]?.trim();
  if (!raw) return fallbackMs;
  const ms = parseDuration(raw);
  if (ms === null || ms <= 0) throw new SettingError(variable, `"${raw}" is not a duration like 90s, 30m or 12h`);
  return ms;
}

export function booleanSetting(env: NodeJS.ProcessEnv, variable: string, fallback: boolean): boolean {
  const raw = env[variable]?.trim().toLowerCase();
  if (!raw) return fallback;
  if (['true', '1', 'yes', 'on'].includes(raw)) return true;
  if (['false', '0', 'no', 'off'].includes(raw)) return false;
  throw new SettingError(variable, `"${env[variable]}" is not true or false`);
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
  return Object.freeze({ cookieName, cookieSecure, idleTimeoutMs, absoluteTimeoutMs, keyPrefix });
}
