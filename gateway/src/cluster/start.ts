import cluster from 'node:cluster';
import type { GatewayConfig } from '../settings.js';

/** How long a worker that failed to start gives its error message before it exits. */
const FAILED_START_EXIT_DELAY_MS = 50;

/**
 * `--workers N` with N > 1: the first process becomes the primary, and the workers it forks
 * run the same command line and land here as workers.
 */
export async function startCluster(config: GatewayConfig, opts: { pretty?: boolean } = {}): Promise<void> {
  if (cluster.isPrimary) return (await import('./primary.js')).startPrimary(config, opts);
  try {
    await (await import('./worker.js')).startWorker(config, opts);
  } catch (err) {
    // the IPC channel to the primary would keep a failed worker alive: the CLI prints the
    // error, then the worker exits and the primary sees it
    setTimeout(() => process.exit(process.exitCode || 1), FAILED_START_EXIT_DELAY_MS);
    throw err;
  }
}
