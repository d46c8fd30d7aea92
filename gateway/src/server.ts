import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import closeWithGrace from 'close-with-grace';
import { buildGateway, type Gateway } from './app.js';
import type { GatewayConfig } from './settings.js';
import { loggerOptions } from '@sessiongate/service-kit';
import { describeConnection } from './session/redis.js';

const METHOD_NOT_ALLOWED =
  'HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\nContent-Length: ';

/**
 * Runs the gateway: builds it, listens on the public and the metrics port, reloads routes on
 * SIGHUP and on file change, and shuts down gracefully on SIGTERM/SIGINT.
 */
export async function startGatewayServer(config: GatewayConfig, opts: { pretty?: boolean } = {}): Promise<Gateway> {
  const gw = await buildGateway(config, { logger: loggerOptions({ level: config.logLevel, pretty: opts.pretty ?? false }) });
  const log = gw.app.log;
  const closeGateway = gw.close.bind(gw);

  // CONNECT never reaches a route handler: answer it here, never tunnel
  gw.app.server.on('connect', (_req, socket) => {
    const body = JSON.stringify({ error: 'method_not_allowed', message: 'Method CONNECT is not allowed here' });
    socket.end(`${METHOD_NOT_ALLOWED}${Buffer.byteLength(body)}\r\n\r\n${body}`);
  });

  await gw.app.listen({ host: config.host, port: config.port });
  await gw.ops.listen({ host: config.metricsHost, port: config.metricsPort });
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
  const onHup = () => void reload('SIGHUP');
  process.on('SIGHUP', onHup);

  let watcher: FSWatcher | undefined;
  if (config.watchRoutes) {
    // watch the directory: editors replace files (rename), which a file watch would lose
    const file = path.resolve(config.routesFile);
    let timer: NodeJS.Timeout | undefined;
    try {
      watcher = watch(path.dirname(file), (_event, name) => {
        if (name !== null && name !== path.basename(file)) return;
        clearTimeout(timer);
        timer = setTimeout(() => void reload('file changed'), 150);
      });
      watcher.on('error', (err) => log.warn({ err }, 'routes file watch failed; SIGHUP still reloads'));
    } catch (err) {
      log.warn({ err }, 'cannot watch the routes file; SIGHUP still reloads');
    }
  }

  const grace = closeWithGrace({ delay: config.shutdownTimeoutMs, skip: ['SIGHUP'], logger: false }, async ({ signal, err }) => {
    if (err) log.error({ err }, 'fatal error: shutting down');
    else log.info({ signal, deadlineMs: config.shutdownTimeoutMs }, 'shutting down: draining in-flight requests');
    process.off('SIGHUP', onHup);
    watcher?.close();
    await closeGateway();
    log.info('shutdown complete');
  });
  return Object.assign(gw, {
    async close() {
      grace.uninstall();
      process.off('SIGHUP', onHup);
      watcher?.close();
      await closeGateway();
    },
  });
}
