import path from 'node:path';
import { gracefulShutdown, loggerOptions, rawErrorResponse, watchFile } from '@sessiongate/service-kit';
import { describeConnection } from '@sessiongate/session';
import { buildGateway, type Gateway } from './app.js';
import type { GatewayConfig } from './settings.js';
import { MethodNotAllowed, errorResponse } from './errors.js';
import { startTracing, stopTracing, tracingLoggerOptions } from './ops/tracing.js';

/** Edits of the routes file closer together than this make one reload. */
const ROUTES_RELOAD_DEBOUNCE_MS = 150;

/**
 * Runs the gateway: builds it, listens on the public and the metrics port, reloads routes on
 * SIGHUP and on file change, and shuts down gracefully on SIGTERM/SIGINT.
 */
export async function startGatewayServer(config: GatewayConfig, opts: { pretty?: boolean; listenOps?: boolean } = {}): Promise<Gateway> {
  // before the server is built: its requests are what gets traced (off: nothing loads)
  await startTracing(process.env, { ignorePorts: [config.metricsPort] });
  const gw = await buildGateway(config, { logger: { ...loggerOptions({ level: config.logLevel, pretty: opts.pretty ?? false }), ...tracingLoggerOptions() } });
  const log = gw.app.log;
  const closeApps = gw.close.bind(gw);
  const closeGateway = () => closeApps().then(stopTracing);

  // CONNECT never reaches a route handler: answer it here, never tunnel
  gw.app.server.on('connect', (_req, socket) => {
    const { statusCode, body } = errorResponse(new MethodNotAllowed('CONNECT'));
    socket.end(rawErrorResponse(statusCode, body));
  });

  await gw.app.listen({ host: config.host, port: config.port });
  // a cluster worker: the primary serves the metrics port for all workers
  if (opts.listenOps !== false) await gw.ops.listen({ host: config.metricsHost, port: config.metricsPort });
  const faServer = gw.forwardAuthServer;
  if (faServer !== null && config.forwardAuth.port !== null) {
    const { host, port } = config.forwardAuth;
    await new Promise<void>((resolve, reject) => {
      faServer.once('error', reject);
      faServer.listen(port, host, () => {
        faServer.off('error', reject);
        resolve();
      });
    });
  }
  if (gw.sessionData !== null && config.sessionData.port !== null) {
    await gw.sessionData.listen({ host: config.sessionData.host, port: config.sessionData.port });
  }
  log.info(
    {
      routes: gw.app.sessiongate.routes.routes.map((r) => `${r.name} ${r.host ?? ''}${r.prefix} → ${r.upstream ?? '(forward auth only)'}`),
      routesFile: path.resolve(config.routesFile),
      redis: describeConnection(config.redis.connection),
      metrics: `http://${config.metricsHost}:${config.metricsPort}/metrics`,
      signingKey: `${config.keys.signing.alg} kid=${config.keys.signing.kid}`,
      cache: config.cache.enabled ? `on (max ${config.cache.max}, ttl ${config.cache.ttlMs} ms)` : 'off',
      forwardAuth:
        config.forwardAuth.port !== null
          ? `http://${config.forwardAuth.host}:${config.forwardAuth.port}/_sessiongate/authz`
          : config.forwardAuth.proxies.length
            ? `/_sessiongate/authz for ${config.forwardAuth.proxies.join(', ')}`
            : 'off',
      sessionData: config.sessionData.port !== null ? `http://${config.sessionData.host}:${config.sessionData.port}/_sessiongate/session-data` : 'off',
    },
    'sessiongate gateway ready',
  );

  let reloading: Promise<unknown> = Promise.resolve();
  const reload = (why: string) => {
    reloading = reloading.then(() => {
      log.info({ why }, 'reloading routes');
      return gw.reload();
    });
    return reloading;
  };
  const watcher = config.watchRoutes
    ? watchFile(path.resolve(config.routesFile), { what: 'routes file', log, debounceMs: ROUTES_RELOAD_DEBOUNCE_MS, onChange: () => void reload('file changed') })
    : undefined;
  const close = gracefulShutdown({
    log,
    delayMs: config.shutdownTimeoutMs,
    onHup: () => void reload('SIGHUP'),
    close: async () => {
      watcher?.close();
      await closeGateway();
    },
  });
  return Object.assign(gw, { close });
}
