import formbody from '@fastify/formbody';
import Fastify, { LogController, type FastifyError, type FastifyInstance } from 'fastify';
import { ApiKeyStore, type CookieAttributes, type RedisClient } from '@sessiongate/session';
import type { AuthConfig } from './config.js';
import { BadRequest, NotFound, errorResponse } from './errors.js';
import identityPlugin, { XSessionVerifier } from './identity.js';
import clientAddressPlugin, { ClientAssertionVerifier } from './client-address.js';
import { Draining, buildOpsApp, frameworkErrorHandler, loggerOptions, type LoggerChoice } from '@sessiongate/service-kit';
import { AuthMetrics } from './metrics.js';
import sessionStorePlugin from './session-store.js';
import loginRoute from './routes/login.js';
import loginPageRoute from './routes/login-page.js';
import { oidcHooks, passwordLoginOff } from './oidc/hooks.js';
import { OidcProviders } from './oidc/providers.js';
import oidcRoutes from './oidc/routes.js';
import logoutRoutes from './routes/logout.js';
import meRoute from './routes/me.js';
import type { AuthRouteOptions } from './routes/options.js';
import keysRoutes from './routes/keys.js';
import sessionsRoutes from './routes/sessions.js';
import { LoginThrottle } from './throttle.js';
import type { UserChange, UserDirectory } from './users/directory.js';
import { FileUserDirectory } from './users/file-directory.js';

/** Largest request body outside the login route. */
const BODY_LIMIT = 16 * 1024;

export interface BuildAuthServiceOptions {
  /** Log as JSON lines (redacted) at this level / to this stream; false for silence. @default false */
  logger?: false | LoggerChoice;
  /** A Redis client the caller owns (left open on close); otherwise one is opened from `config.redis`. */
  redis?: RedisClient;
  /** A users directory the caller owns; otherwise the users file of `config.usersFile` is opened. */
  directory?: UserDirectory;
}

/** A built auth service: the public app, the metrics/health app, and the operations on them. */
export interface AuthService {
  readonly app: FastifyInstance;
  readonly ops: FastifyInstance;
  readonly metrics: AuthMetrics;
  readonly directory: UserDirectory;
  /** Marks the service as draining: /readyz answers 503 from now on. */
  drain(): void;
  /** Closes both apps (in-flight requests finish first), the users file watch and Redis. */
  close(): Promise<void>;
}

/**
 * Builds the auth service from its configuration: what the server listens with and what
 * tests build. Nothing listens yet.
 */
export async function buildAuthService(config: AuthConfig, opts: BuildAuthServiceOptions = {}): Promise<AuthService> {
  const app = Fastify({
    logger: opts.logger ? loggerOptions({ level: config.logLevel, ...opts.logger }) : false,
    // our own one line per request (onResponse below), never bodies or headers
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    bodyLimit: BODY_LIMIT,
    // the client IP (for the IP limit), when the gateway signed none, is the peer, unless the
    // peer is a trusted proxy: then it is the rightmost X-Forwarded-For hop that is not one
    trustProxy: config.trustedProxies.length ? [...config.trustedProxies] : false,
    frameworkErrors: frameworkErrorHandler(errorResponse),
  });

  const ownsDirectory = !opts.directory;
  let size = () => 0;
  const metrics = new AuthMetrics({ users: () => size() });
  const directory =
    opts.directory ??
    (await FileUserDirectory.open(config.usersFile, {
      scryptCost: config.scryptCost,
      watch: config.watchUsers,
      log: app.log.child({ component: 'users' }),
      onReload: (ok) => metrics.usersReloaded(ok),
      onCheck: (cost) => metrics.passwordChecks.inc({ cost }),
    }));
  if (directory instanceof FileUserDirectory) size = () => directory.size;
  const draining = new Draining();

  try {
    // a body-less POST with a JSON content type (fetch('/auth/logout', …)) is not an error
    const json = app.getDefaultJsonParser('error', 'error');
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
      if (body === '') return done(null, undefined);
      json(req, body as string, (err, value) => (err ? done(new BadRequest('The body is not valid JSON')) : done(null, value)));
    });
    await app.register(formbody);
    await app.register(sessionStorePlugin, {
      ...(opts.redis ? { client: opts.redis } : { connection: config.redis }),
      keyPrefix: config.session.keyPrefix,
      maxSessionsPerUser: config.maxSessionsPerUser,
    });
    await app.register(identityPlugin, { verifier: new XSessionVerifier(config.xSession.keys, config.xSession) });
    await app.register(clientAddressPlugin, { verifier: new ClientAssertionVerifier(config.xSession.keys, config.xSession) });

    const store = app.sessionStore;
    const apiKeys = new ApiKeyStore(store);
    const unsubscribe = directory.onChange?.((changes) => void applyUserChanges(changes));
    // an edited users file reaches live sessions here as well as through the CLI: a hand
    // edit (or a config-management push) counts as much as `sessiongate users`
    async function applyUserChanges(changes: readonly UserChange[]): Promise<void> {
      const log = app.log.child({ component: 'users' });
      for (const c of changes) {
        try {
          if (c.kind === 'roles') {
            const n = await store.setRoles(c.name, c.roles);
            const k = await apiKeys.setOwnerRoles(c.name, c.roles);
            log.info({ user: c.name, roles: c.roles, sessions: n, apiKeys: k }, 'roles changed: live sessions and API keys updated');
          } else {
            const n = await store.destroyAll(c.name);
            const k = await apiKeys.revokeAll(c.name);
            metrics.sessionsRevoked.inc({ reason: 'disable' }, n);
            log.info({ user: c.name, change: c.kind, sessions: n, apiKeys: k }, `user ${c.kind}: live sessions ended, API keys revoked`);
          }
        } catch (err) {
          log.error({ err, user: c.name }, 'could not apply a user change to live sessions');
        }
      }
    }

    app.setErrorHandler((err: FastifyError, request, reply) => {
      const { statusCode, body } = errorResponse(err);
      if (statusCode >= 500) request.log.error({ err }, 'request failed');
      if (request.routeOptions.url === '/auth/login' && [400, 413, 415].includes(statusCode)) {
        metrics.logins.inc({ outcome: 'bad_request' });
      }
      return reply.code(statusCode).type('application/json; charset=utf-8').send(body);
    });
    app.setNotFoundHandler((request, reply) => {
      const { statusCode, body } = errorResponse(new NotFound(`No endpoint ${request.method} ${request.url.split('?')[0]}`));
      return reply.code(statusCode).send(body);
    });
    app.addHook('onSend', async (_request, reply) => {
      // nothing the auth service says may be kept by a cache
      reply.header('cache-control', 'no-store');
    });
    app.addHook('onResponse', async (request, reply) => {
      request.log.info(
        {
          method: request.method,
          path: request.url.split('?')[0],
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime * 100) / 100,
          ip: request.clientAddress,
          ...(request.identity ? { sub: request.identity.sub } : {}),
        },
        'request',
      );
    });

    const cookie: CookieAttributes = { name: config.session.cookieName, secure: config.session.cookieSecure };
    const routeOpts: AuthRouteOptions = {
      directory,
      session: config.session,
      cookie,
      throttle: new LoginThrottle(store.redis, store.keys, config.throttle),
      metrics,
      allowedOrigins: config.allowedOrigins,
      defaultNext: config.loginDefaultNext,
      brand: config.brand,
    };
    const providers = config.oidc ? new OidcProviders(config.oidc.providers) : null;
    if (config.oidc && providers) routeOpts.oidc = oidcHooks(config.oidc, providers);
    await app.register(routeOpts.oidc?.passwordLogin === false ? passwordLoginOff : loginRoute, routeOpts);
    if (config.oidc && providers) await app.register(oidcRoutes, { ...routeOpts, oidcConfig: config.oidc, providers });
    await app.register(loginPageRoute, routeOpts);
    await app.register(logoutRoutes, routeOpts);
    await app.register(sessionsRoutes, routeOpts);
    await app.register(keysRoutes, routeOpts);
    await app.register(meRoute, routeOpts);

    app.addHook('onClose', async () => {
      unsubscribe?.();
      if (ownsDirectory && directory instanceof FileUserDirectory) await directory.close();
    });
    await app.ready();
  } catch (err) {
    await app.close().catch(() => undefined);
    if (ownsDirectory && directory instanceof FileUserDirectory) await directory.close();
    throw err;
  }

  const pingTimeout = config.redis.commandTimeoutMs ?? 1000;
  const ops = await buildOpsApp(app.log, {
    registry: metrics.registry,
    draining: draining.active,
    checks: [
      app.sessionRedis.readiness(pingTimeout),
      { name: 'users', check: async () => directory.ready() },
    ],
  });

  return {
    app,
    ops,
    metrics,
    directory,
    drain() {
      draining.start();
    },
    async close() {
      await draining.close(app, ops);
    },
  };
}
