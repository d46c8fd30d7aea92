import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import closeWithGrace from 'close-with-grace';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';

/** Whether a service is shutting down: /readyz says 503 from then on, so load balancers stop sending. */
export class Draining {
  private on = false;

  /** True once shutdown began. */
  readonly active = (): boolean => this.on;

  start(): void {
    this.on = true;
  }

  /** Starts draining, then closes the public app (in-flight requests finish first) and the ops app. */
  async close(app: FastifyInstance, ops: FastifyInstance): Promise<void> {
    this.on = true;
    await app.close();
    await ops.close();
  }
}

export interface GracefulShutdownOptions {
  log: FastifyBaseLogger;
  /** How long shutdown waits for in-flight requests. */
  delayMs: number;
  /** SIGHUP: reload what the service reads from files. */
  onHup: () => void;
  /** Closes the service. */
  close: () => Promise<void>;
}

/**
 * The signal Node.js writes a heap snapshot on (`--heapsnapshot-signal`, on the command line
 * or in NODE_OPTIONS), if any: an operator who sends it wants a snapshot, not a shutdown.
 */
function heapSnapshotSignal(): string | undefined {
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg.startsWith('--heapsnapshot-signal=')) return arg.slice('--heapsnapshot-signal='.length);
    if (arg === '--heapsnapshot-signal') return args[i + 1];
  }
  return undefined;
}

/**
 * Wires the termination signals (SIGTERM, SIGINT and the others close-with-grace knows) and a
 * fatal error to a graceful close, and SIGHUP to a reload; the signal of
 * `--heapsnapshot-signal` keeps writing heap snapshots. Resolves to the close for callers
 * that stop the service themselves; it runs once.
 */
export function gracefulShutdown(opts: GracefulShutdownOptions): () => Promise<void> {
  const { log, delayMs, onHup } = opts;
  process.on('SIGHUP', onHup);
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      process.off('SIGHUP', onHup);
      grace.uninstall();
      await opts.close();
    })());
  // SIGHUP reloads (above), and Node.js answers the heap snapshot signal itself:
  // close-with-grace would otherwise treat either as a shutdown
  const snapshot = heapSnapshotSignal();
  const skip: closeWithGrace.AllEvents[] = ['SIGHUP'];
  // a signal close-with-grace does not know (SIGUSR1, say) never reached it anyway
  if (snapshot) skip.push(snapshot as closeWithGrace.AllEvents);
  const grace = closeWithGrace({ delay: delayMs, skip, logger: false }, async ({ signal, err }) => {
    if (err) log.error({ err }, 'fatal error: shutting down');
    else log.info({ signal, deadlineMs: delayMs }, 'shutting down: draining in-flight requests');
    await close();
    log.info('shutdown complete');
  });
  return close;
}

export interface FileWatchOptions {
  /** What the file is, for the log lines, e.g. `routes file`. */
  what: string;
  log: { warn(obj: object, msg: string): void };
  /** Changes closer together than this make one call. */
  debounceMs: number;
  onChange: () => void;
}

/**
 * Calls `onChange` when `file` changes. It watches the directory: editors and atomic writes
 * replace the file (rename), which a watch on the file itself would lose. Without a watch
 * (it failed), SIGHUP still reloads. Never keeps the process alive.
 */
export function watchFile(file: string, opts: FileWatchOptions): { close(): void } {
  const base = path.basename(file);
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(path.dirname(file), (_event, name) => {
      if (name !== null && name !== base) return;
      clearTimeout(timer);
      timer = setTimeout(opts.onChange, opts.debounceMs);
    });
    watcher.on('error', (err) => opts.log.warn({ err }, `${opts.what} watch failed; SIGHUP still reloads`));
    watcher.unref();
  } catch (err) {
    opts.log.warn({ err, file }, `cannot watch the ${opts.what}; SIGHUP still reloads`);
  }
  return {
    close() {
      clearTimeout(timer);
      watcher?.close();
    },
  };
}
