import { BlockList, isIP } from 'node:net';
import { parseDuration } from './duration.js';

/** A setting that stops the process at start, naming its variable. */
export class SettingError extends Error {
  override readonly name = 'SettingError';
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.variable = variable;
  }
}

/** Runs a reader and reports whatever it throws as a SettingError naming `variable`. */
export function setting<T>(variable: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof SettingError) throw err;
    const msg = (err as Error).message;
    throw new SettingError(variable, msg.startsWith(`${variable}:`) ? msg.slice(variable.length + 1).trim() : msg);
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

export function portSetting(env: NodeJS.ProcessEnv, variable: string, fallback: number): number {
  const raw = env[variable]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new SettingError(variable, `"${raw}" is not a port number (0-65535)`);
  return n;
}

export function intSetting(env: NodeJS.ProcessEnv, variable: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[variable]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  if (!/^-?\d+$/.test(raw) || n < min || n > max) {
    throw new SettingError(variable, `"${raw}" is not a whole number${max === Number.MAX_SAFE_INTEGER ? ` ≥ ${min}` : ` from ${min} to ${max}`}`);
  }
  return n;
}

/** A comma-separated list, entries trimmed, empty ones dropped. */
export function listSetting(env: NodeJS.ProcessEnv, variable: string): string[] {
  return (env[variable] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * A list of origins (`https://app.example.com, http://localhost:3000`), lower-cased;
 * throws SettingError naming the variable and the bad entry.
 */
export function originsSetting(env: NodeJS.ProcessEnv, variable: string): string[] {
  return listSetting(env, variable).map((o) => {
    let u: URL;
    try {
      u = new URL(o);
    } catch {
      throw new SettingError(variable, `"${o}" is not an origin like https://app.example.com`);
    }
    if (u.origin === 'null' || u.pathname !== '/' || u.search || u.hash) {
      throw new SettingError(variable, `"${o}" is not an origin (scheme://host[:port], no path)`);
    }
    return u.origin.toLowerCase();
  });
}

/** Normalizes a CIDR list (`10.0.0.0/8, ::1/128, 192.168.1.7`); throws naming the bad entry. */
export function parseCidrs(list: readonly string[]): { cidrs: string[]; blockList: BlockList } {
  const blockList = new BlockList();
  const cidrs = list.map((entry) => {
    const e = entry.trim();
    const [addr = '', bits] = e.split('/');
    const type = isIP(addr);
    if (!type) throw new Error(`"${e}" is not an IP address or CIDR`);
    const max = type === 4 ? 32 : 128;
    const prefix = bits === undefined ? max : Number(bits);
    if (!/^\d+$/.test(bits ?? String(max)) || prefix > max) throw new Error(`"${e}" has a bad prefix length`);
    blockList.addSubnet(addr, prefix, type === 4 ? 'ipv4' : 'ipv6');
    return `${addr}/${prefix}`;
  });
  return { cidrs, blockList };
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function logLevelSetting(env: NodeJS.ProcessEnv, fallback = 'info'): string {
  const level = env.LOG_LEVEL?.trim().toLowerCase() || fallback;
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new SettingError('LOG_LEVEL', `"${env.LOG_LEVEL}" is not one of ${LOG_LEVELS.join(', ')}`);
  return level;
}

/** Where one service listens: its public port and its metrics and health port. */
export interface ListenSettings {
  readonly host: string;
  readonly port: number;
  readonly metricsHost: string;
  readonly metricsPort: number;
}

/** The first of `variables` that is set to something, else the last one (for messages). */
function firstSet(env: NodeJS.ProcessEnv, variables: readonly string[]): string {
  return variables.find((v) => env[v]?.trim()) ?? variables[variables.length - 1]!;
}

/**
 * The listeners of the service whose variables start with `service` (`GATEWAY`, `AUTH`):
 * `GATEWAY_PORT` wins over `PORT`, and so on, so both processes can share one environment
 * (a systemd EnvironmentFile, a compose file) and still listen on their own ports.
 */
export function listenSettings(env: NodeJS.ProcessEnv, service: string, defaults: { port: number; metricsPort: number }): ListenSettings {
  const hostVar = firstSet(env, [`${service}_HOST`, 'HOST']);
  const host = env[hostVar]?.trim() || '0.0.0.0';
  const metricsHostVar = firstSet(env, [`${service}_METRICS_HOST`, 'METRICS_HOST']);
  return {
    host,
    port: portSetting(env, firstSet(env, [`${service}_PORT`, 'PORT']), defaults.port),
    metricsHost: env[metricsHostVar]?.trim() || host,
    metricsPort: portSetting(env, firstSet(env, [`${service}_METRICS_PORT`, 'METRICS_PORT']), defaults.metricsPort),
  };
}
