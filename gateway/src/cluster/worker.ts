import { AggregatorRegistry } from 'prom-client';
import type { GatewayConfig } from '../settings.js';
import { READY, READYZ, READYZ_RESULT, RELOAD, SHUTDOWN, isMessage, type PrimaryMessage, type WorkerMessage } from './messages.js';

function send(msg: WorkerMessage): void {
  if (process.connected) process.send?.(msg);
}

/**
 * One worker of `sessiongate gateway --workers N`: a whole gateway (its own Redis clients,
 * session cache and invalidation subscription) on the listen socket the primary shares. The
 * primary serves the metrics port, watches the routes file and relays signals, so a worker
 * opens neither the metrics port nor a file watch of its own.
 */
export async function startWorker(config: GatewayConfig, opts: { pretty?: boolean } = {}): Promise<void> {
  const { startGatewayServer } = await import('../server.js');
  const gw = await startGatewayServer({ ...config, watchRoutes: false }, { pretty: opts.pretty ?? false, listenOps: false });
  const log = gw.app.log;

  // the primary asks every worker for its registry and sums them (prom-client's cluster mode)
  AggregatorRegistry.setRegistries([gw.metrics.registry]);
  new AggregatorRegistry();

  let signalled = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => (signalled = true));
  let reloading: Promise<unknown> = Promise.resolve();
  process.on('message', (msg: unknown) => {
    const m = msg as PrimaryMessage;
    if (isMessage<Extract<PrimaryMessage, { type: typeof RELOAD }>>(m, RELOAD)) {
      reloading = reloading
        .then(() => {
          log.info({ why: m.why }, 'reloading routes');
          return gw.reload();
        })
        .catch((err: unknown) => log.error({ err }, 'routes reload failed'));
    } else if (isMessage<Extract<PrimaryMessage, { type: typeof READYZ }>>(m, READYZ)) {
      gw.ops.inject({ method: 'GET', url: '/readyz' }).then(
        (res) => send({ type: READYZ_RESULT, id: m.id, ready: res.statusCode === 200 }),
        () => send({ type: READYZ_RESULT, id: m.id, ready: false }),
      );
    } else if (isMessage(m, SHUTDOWN)) {
      // a terminal's Ctrl-C reaches every process of the group: a worker already draining
      // must not see a second signal (that one exits at once)
      if (!signalled) process.kill(process.pid, 'SIGTERM');
    }
  });
  send({ type: READY });
}
