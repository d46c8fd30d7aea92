import cluster, { type Worker } from 'node:cluster';
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { buildOpsApp, loggerOptions } from '@sessiongate/service-kit';
import type { GatewayConfig } from '../settings.js';
import { WorkerStartFailed } from '../errors.js';
import { READY, READYZ, READYZ_RESULT, RELOAD, SHUTDOWN, isMessage, type PrimaryMessage, type WorkerMessage } from './messages.js';
import { PrimaryMetrics } from './metrics.js';

/** First restart delay after a worker died; doubles with each restart in the window. @default 100 ms */
export const RESTART_BACKOFF_MS = 100;
/** Longest delay before a restart. @default 5 s */
export const RESTART_BACKOFF_MAX_MS = 5_000;
/** How long a worker may take to answer the primary's readiness question. @default 2 s */
export const WORKER_READYZ_TIMEOUT_MS = 2_000;
/** Beyond SHUTDOWN_TIMEOUT, how long the primary waits for workers to exit before SIGKILL. @default 2 s */
export const SHUTDOWN_MARGIN_MS = 2_000;

interface Slot {
  readonly worker: Worker;
  ready: boolean;
}

/** A routes file watch (of its directory: editors replace files by rename). */
function watchRoutesFile(file: string, onChange: () => void, log: Logger): FSWatcher | undefined {
  const full = path.resolve(file);
  let timer: NodeJS.Timeout | undefined;
  try {
    const watcher = watch(path.dirname(full), (_event, name) => {
      if (name !== null && name !== path.basename(full)) return;
      clearTimeout(timer);
      timer = setTimeout(onChange, 150);
    });
    watcher.on('error', (err) => log.warn({ err }, 'routes file watch failed; SIGHUP still reloads'));
    return watcher;
  } catch (err) {
    log.warn({ err }, 'cannot watch the routes file; SIGHUP still reloads');
    return undefined;
  }
}

/**
 * The primary of `sessiongate gateway --workers N`: forks N workers that share the public
 * listen socket (node:cluster hands connections out round-robin on Linux), serves the
 * metrics port with every worker's metrics summed, relays SIGHUP and routes file changes,
 * replaces crashed workers with a growing back-off and gives up on a crash loop, and on
 * SIGTERM/SIGINT drains every worker and exits 0. Resolves once every worker is ready.
 */
export async function startPrimary(config: GatewayConfig, opts: { pretty?: boolean } = {}): Promise<void> {
  const log = pino(loggerOptions({ level: config.logLevel, pretty: opts.pretty ?? false })).child({ role: 'primary' });
  const want = config.workers.count;
  const slots = new Map<number, Slot>();
  const metrics = new PrimaryMetrics(() => [...slots.values()].filter((s) => s.ready).length);
  let shuttingDown = false;
  let restartTimes: number[] = [];

  function broadcast(msg: PrimaryMessage): void {
    for (const { worker } of slots.values()) if (worker.isConnected()) worker.send(msg);
  }

  let askId = 0;
  function askReady(worker: Worker): Promise<boolean> {
    const id = ++askId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(false), WORKER_READYZ_TIMEOUT_MS);
      function onMessage(msg: unknown) {
        if (isMessage<Extract<WorkerMessage, { type: typeof READYZ_RESULT }>>(msg, READYZ_RESULT) && msg.id === id) done(msg.ready);
      }
      function done(ready: boolean) {
        clearTimeout(timer);
        worker.off('message', onMessage);
        resolve(ready);
      }
      worker.on('message', onMessage);
      if (worker.isConnected()) worker.send({ type: READYZ, id } satisfies PrimaryMessage);
      else done(false);
    });
  }

  const ops = await buildOpsApp(log, {
    registry: metrics.source(),
    draining: () => shuttingDown,
    checks: [
      {
        name: 'workers',
        // ready when every worker is: a missing or restarting one makes the gateway not ready
        check: async () => {
          const live = [...slots.values()].filter((s) => s.ready);
          if (live.length < want) return false;
          return (await Promise.all(live.map((s) => askReady(s.worker)))).every(Boolean);
        },
      },
    ],
  });

  function fork(): Worker {
    const worker = cluster.fork();
    const slot: Slot = { worker, ready: false };
    slots.set(worker.id, slot);
    worker.on('message', (msg: unknown) => {
      if (isMessage(msg, READY)) {
        slot.ready = true;
        log.info({ worker: worker.id, pid: worker.process.pid }, 'worker ready');
      }
    });
    worker.on('exit', (code, signal) => {
      slots.delete(worker.id);
      if (!shuttingDown && booted) onCrash(worker, code, signal);
    });
    return worker;
  }

  function onCrash(worker: Worker, code: number | null, signal: string | null): void {
    const now = Date.now();
    restartTimes = restartTimes.filter((t) => now - t < config.workers.restartWindowMs);
    if (restartTimes.length >= config.workers.restartLimit) {
      log.fatal(
        { worker: worker.id, pid: worker.process.pid, code, signal, restarts: restartTimes.length, windowS: config.workers.restartWindowMs / 1000 },
        `worker crash loop: ${restartTimes.length} restarts within ${config.workers.restartWindowMs / 1000} s and a worker died again; giving up`,
      );
      void shutdown(1);
      return;
    }
    restartTimes.push(now);
    const delay = Math.min(RESTART_BACKOFF_MS * 2 ** (restartTimes.length - 1), RESTART_BACKOFF_MAX_MS);
    metrics.restarts.inc();
    log.error({ worker: worker.id, pid: worker.process.pid, code, signal, restartInMs: delay }, 'worker exited unexpectedly: starting a replacement');
    setTimeout(() => {
      if (!shuttingDown) fork();
    }, delay);
  }

  // --- boot: every worker ready, or none -----------------------------------------------------
  let booted = false;
  const first = Array.from({ length: want }, () => fork());
  try {
    await Promise.all(
      first.map(
        (worker) =>
          new Promise<void>((resolve, reject) => {
            worker.on('message', (msg: unknown) => isMessage(msg, READY) && resolve());
            worker.once('exit', (code, signal) => reject(new WorkerStartFailed(`worker ${worker.id} exited ${signal ?? code}`)));
          }),
      ),
    );
  } catch (err) {
    shuttingDown = true;
    for (const w of first) if (!w.isDead()) w.process.kill('SIGTERM');
    await ops.close();
    throw err;
  }
  booted = true;

  const reload = (why: string) => {
    log.info({ why, workers: slots.size }, 'reloading routes in every worker');
    broadcast({ type: RELOAD, why });
  };
  const onHup = () => reload('SIGHUP');
  process.on('SIGHUP', onHup);
  const watcher = config.watchRoutes ? watchRoutesFile(config.routesFile, () => reload('file changed'), log) : undefined;

  async function shutdown(exitCode: number): Promise<void> {
    if (shuttingDown) return;
    shuttingDown = true;
    process.off('SIGHUP', onHup);
    watcher?.close();
    log.info({ workers: slots.size, deadlineMs: config.shutdownTimeoutMs }, 'shutting down: draining every worker');
    const exits = [...slots.values()].map(
      ({ worker }) => new Promise<number | null>((resolve) => (worker.isDead() ? resolve(worker.process.exitCode) : worker.once('exit', (code) => resolve(code)))),
    );
    broadcast({ type: SHUTDOWN });
    const deadline = setTimeout(() => {
      for (const { worker } of slots.values()) {
        log.error({ worker: worker.id, pid: worker.process.pid }, 'worker did not drain in time: killing it');
        worker.process.kill('SIGKILL');
      }
    }, config.shutdownTimeoutMs + SHUTDOWN_MARGIN_MS);
    const codes = await Promise.all(exits);
    clearTimeout(deadline);
    await ops.close();
    const clean = codes.every((c) => c === 0);
    log.info({ workers: codes.length }, clean ? 'shutdown complete' : 'shutdown complete; a worker did not exit cleanly');
    log.flush();
    process.exit(exitCode || (clean ? 0 : 1));
  }

  let signals = 0;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      // a second signal: stop waiting
      if (++signals > 1) process.exit(1);
      void shutdown(0);
    });
  }

  await ops.listen({ host: config.metricsHost, port: config.metricsPort });
  log.info(
    {
      workers: want,
      pids: [...slots.values()].map((s) => s.worker.process.pid),
      listen: `${config.host}:${config.port}`,
      metrics: `http://${config.metricsHost}:${config.metricsPort}/metrics`,
    },
    'sessiongate gateway workers ready',
  );
}
