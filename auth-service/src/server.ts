import { gracefulShutdown, type LoggerChoice } from '@sessiongate/service-kit';
import { describeConnection } from '@sessiongate/session';
import { buildAuthService, type AuthService } from './app.js';
import type { AuthConfig } from './config.js';
import { FileUserDirectory } from './users/file-directory.js';

/**
 * Runs the auth service: builds it, listens on the public and the metrics port, reloads the
 * users file on SIGHUP (and on change), and shuts down gracefully on SIGTERM/SIGINT.
 */
export async function startAuthServer(config: AuthConfig, opts: { logger?: LoggerChoice } = {}): Promise<AuthService> {
  const svc = await buildAuthService(config, { logger: opts.logger ?? {} });
  const log = svc.app.log;
  try {
    await svc.app.listen({ host: config.host, port: config.port });
    await svc.ops.listen({ host: config.metricsHost, port: config.metricsPort });
  } catch (err) {
    await svc.close();
    throw err;
  }
  const directory = svc.directory;
  log.info(
    {
      usersFile: directory instanceof FileUserDirectory ? directory.file : '(custom directory)',
      users: directory instanceof FileUserDirectory ? directory.size : undefined,
      redis: describeConnection(config.redis.connection),
      keyPrefix: config.session.keyPrefix,
      verifies: { issuer: config.xSession.issuer, audience: config.xSession.audience, kids: config.xSession.keys.keys.map((k) => `${k.alg}:${k.kid}`) },
      trustedProxies: config.trustedProxies,
      throttle: config.throttle,
    },
    'sessiongate auth ready',
  );

  const close = gracefulShutdown({
    log,
    delayMs: config.shutdownTimeoutMs,
    onHup: () => {
      if (directory instanceof FileUserDirectory) void directory.reload();
    },
    close: () => svc.close(),
  });
  return { ...svc, close };
}
