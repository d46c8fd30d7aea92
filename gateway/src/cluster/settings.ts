import { availableParallelism } from 'node:os';
import { SettingError, durationSetting, intSetting } from '@sessiongate/service-kit';
import { DEFAULT_WORKERS, DEFAULT_WORKER_RESTART_LIMIT, DEFAULT_WORKER_RESTART_WINDOW_MS } from '../defaults.js';

/** A sanity bound: far more processes than cores only adds context switches. */
export const MAX_WORKERS = 256;

export interface WorkerSettings {
  /** Worker processes (GATEWAY_WORKERS: a number or `auto`, one per core). */
  readonly count: number;
  /** Restarts allowed within `restartWindowMs` before the primary gives up. */
  readonly restartLimit: number;
  readonly restartWindowMs: number;
}

/** GATEWAY_WORKERS, GATEWAY_WORKER_RESTART_LIMIT and GATEWAY_WORKER_RESTART_WINDOW. */
export function workerSettingsFromEnv(env: NodeJS.ProcessEnv): WorkerSettings {
  const raw = env.GATEWAY_WORKERS?.trim().toLowerCase();
  let count = DEFAULT_WORKERS;
  if (raw === 'auto') count = availableParallelism();
  else if (raw) {
    count = Number(raw);
    if (!/^\d+$/.test(raw) || count < 1 || count > MAX_WORKERS) {
      throw new SettingError('GATEWAY_WORKERS', `"${env.GATEWAY_WORKERS?.trim()}" is not auto or a whole number from 1 to ${MAX_WORKERS}`);
    }
  }
  const restartWindowMs = durationSetting(env, 'GATEWAY_WORKER_RESTART_WINDOW', DEFAULT_WORKER_RESTART_WINDOW_MS);
  if (restartWindowMs < 1000) throw new SettingError('GATEWAY_WORKER_RESTART_WINDOW', 'must be at least 1s');
  return Object.freeze({
    count,
    restartLimit: intSetting(env, 'GATEWAY_WORKER_RESTART_LIMIT', DEFAULT_WORKER_RESTART_LIMIT, 0, 1000),
    restartWindowMs,
  });
}
