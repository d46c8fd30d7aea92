import { createServer, type Server } from 'node:http';
import Fastify, { LogController, type FastifyRequest, type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { GatewayConfig } from './settings.js';
import { Draining, buildOpsApp, frameworkErrorHandler, infoEnabled, rawErrorResponse } from '@sessiongate/service-kit';
import { BadRequest, HeadersTooLarge, InvalidConfig, RequestTimeout, errorResponse } from './errors.js';
import { JwtVerifier } from './session/bearer-jwt.js';
import type { ForwardAuth } from './forward-auth/endpoint.js';
import { XSessionSigner } from './identity/signer.js';
import { CredentialVerifier } from './session-data/credential.js';
import sessionDataEndpoint from './session-data/endpoint.js';
import sessiongate, { type SessionGateOptions } from './pipeline.js';
import { GatewayMetrics } from './ops/metrics.js';
import { canonicalize } from './routes/canonical-path.js';
import { loadRoutesFile } from './routes/load.js';
import { formatProblems } from './routes/problems.js';
import type { RouteSet } from './routes/types.js';
import type { SessionResolver } from './session/resolver.js';
import sessionPlugin from './session/plugin.js';

export interface BuildGatewayOptions {
  /** Fastify logger options, or a pino logger to use as is. @default false (silent) */
  logger?: FastifyServerOptions['logger'] | FastifyBaseLogger;
  /** Routes already loaded (else read from `config.routesFile`). */
  routes?: RouteSet;
}

export type ReloadResult = { ok: true; routes: number } | { ok: false; problems: string };

/** A built gateway: the public app, the metrics/health app, and the operations on them. */
export interface Gateway {
  readonly app: FastifyInstance;
  readonly ops: FastifyInstance;
  readonly metrics: GatewayMetrics;
  /** The forward-auth endpoint's own listener (FORWARD_AUTH_PORT), not listening yet; null: none. */
  readonly forwardAuthServer: Server | null;
  /** The session data endpoint (SESSION_DATA_PORT), not listening yet; null: none. */
  readonly sessionData: FastifyInstance | null;
  /** Re-reads the routes file; an invalid file keeps the routes in force. */
  reload(): Promise<ReloadResult>;
  /** Marks the gateway as draining: /readyz answers 503 from now on. */
  drain(): void;
  /** Closes both apps (in-flight requests finish first), Redis and upstream pools. */
  close(): Promise<void>;
}

async function loadRoutesOrThrow(file: string): Promise<RouteSet> {
  const r = await loadRoutesFile(file);
  if (!r.ok) throw new InvalidConfig(`invalid routes file:\n${formatProblems(file, r.problems)}`);
  return r.routes;
}

/** The canonical path for the request log: also for requests refused after routing (401, 403, 503). */
function loggedPath(request: FastifyRequest): string {
  if (request.gate) return request.gate.path;
  if (request.gateRoute === null) return '(unrouted)';
  const c = canonicalize(request.raw.url ?? '');
  return c.ok ? c.path : '(unrouted)';
}

/**
 * The gateway plugin's options from a gateway configuration, for these routes and this
 * resolver: what buildGateway passes, and what an application embedding the plugin passes.
 */
export function sessiongateOptions(config: GatewayConfig, routes: RouteSet, resolver: SessionResolver): SessionGateOptions {
  return {
    routes,
    resolver,
    keys: config.keys,
    cookieName: config.session.cookieName,
    authRoute: config.authRoute,
    xSession: config.xSession,
    allowedOrigins: config.allowedOrigins,
    trustedProxies: config.trustedProxies,
    maxCookieBytes: config.maxCookieBytes,
    bearerThrottle: config.bearerThrottle,
    brand: config.brand,
    websocketIdleTimeoutMs: config.websocketIdleTimeoutMs,
    forwardAuth: { proxies: config.forwardAuth.proxies, ownListener: config.forwardAuth.port !== null },
  };
}

/**
 * Builds the gateway from its configuration: what the server listens with and what tests
 * build. Nothing listens yet.
 */
export async function buildGateway(config: GatewayConfig, opts: BuildGatewayOptions = {}): Promise<Gateway> {
  const routes = opts.routes ?? (await loadRoutesOrThrow(config.routesFile));
  const loggerOpt = opts.logger ?? false;
  const isInstance = typeof loggerOpt === 'object' && loggerOpt !== null && typeof (loggerOpt as FastifyBaseLogger).child === 'function';
  // the forward-auth endpoint is matched on the raw target before Fastify routes anything;
  // set once the request path is registered
  let forwardAuth: ForwardAuth | null = null;
  const app = Fastify({
    // Fastify's own HTTP/1 server, with the endpoint's requests taken out first
    serverFactory: (handler, options) => {
      const server = createServer({ maxHeaderSize: config.maxHeaderBytes }, (req, res) => {
        if (forwardAuth !== null && forwardAuth.claims(req)) forwardAuth.handleMain(req, res);
        else handler(req, res);
      });
      const o = options as { keepAliveTimeout?: number; connectionTimeout?: number };
      if (typeof o.keepAliveTimeout === 'number') server.keepAliveTimeout = o.keepAliveTimeout;
      server.requestTimeout = config.requestTimeoutMs;
      server.setTimeout(o.connectionTimeout ?? 0);
      return server;
    },
    ...(isInstance ? { loggerInstance: loggerOpt as FastifyBaseLogger } : { logger: loggerOpt as FastifyServerOptions['logger'] }),
    // one line per request is ours (onResponse below): route, status, duration, user
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    requestTimeout: config.requestTimeoutMs,
    http: { maxHeaderSize: config.maxHeaderBytes },
    // the gateway never parses bodies; limits are per route and enforced on the stream
    bodyLimit: Number.MAX_SAFE_INTEGER,
    // errors Node's parser raises before Fastify sees a request: same JSON as everything else
    clientErrorHandler(err: Error & { code?: string }, socket) {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const refused =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? new HeadersTooLarge('The request head exceeds the size limit')
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? new RequestTimeout()
            : new BadRequest('Malformed HTTP request');
      const { statusCode, body } = errorResponse(refused);
      if (socket.writable) socket.write(rawErrorResponse(statusCode, body));
      socket.destroy();
    },
    frameworkErrors: frameworkErrorHandler(errorResponse),
  });

  const draining = new Draining();
  const metrics = new GatewayMetrics({
    sessionGauges: () => ({
      active: app.sessions?.resolver.activeSessions ?? 0,
      cached: app.sessions?.resolver.cacheSize ?? 0,
      cacheEnabled: config.cache.enabled,
      cacheActive: app.sessions?.resolver.cacheActive ?? false,
    }),
  });
  metrics.configLastReloadSuccess.set(Date.now() / 1000);

  await app.register(sessionPlugin, {
    connection: config.redis,
    keyPrefix: config.session.keyPrefix,
    cache: config.cache,
    refreshFraction: config.refreshFraction,
    onRedisCommand: (command, seconds, ok) => metrics.redisCommand(command, seconds, ok),
  });

  // while draining, every response closes its connection, so keep-alive clients let go (the
  // request path's proxied answers bypass onSend: the plugin is told through `closing`)
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (draining.active()) reply.header('connection', 'close');
    done(null, payload);
  });

  app.addHook('onResponse', (request, reply, done) => {
    const route = request.gateRoute ?? '(none)';
    const status = reply.statusCode;
    const seconds = reply.elapsedTime / 1000;
    metrics.request(route, request.raw.method ?? 'GET', status);
    metrics.requestDuration.observe({ route }, seconds);
    // the line is built only when it will be written (LOG_LEVEL=warn skips it at no cost)
    if (!infoEnabled(request.log)) {
      done();
      return;
    }
    request.log.info(
      {
        route,
        method: request.raw.method,
        path: loggedPath(request),
        status,
        ms: Math.round(reply.elapsedTime * 100) / 100,
        ...(request.gateSession ? { sub: request.gateSession.record.sub } : {}),
      },
      'request',
    );
    done();
  });

  const jwt = new JwtVerifier(config.jwtIssuers);
  if (!jwt.configured && routes.routes.some((r) => r.credentials.includes('bearer_jwt'))) {
    app.log.warn('routes accept bearer_jwt but SESSIONGATE_JWT_ISSUERS names no issuer: every JWT is refused');
  }
  await app.register(sessiongate, {
    ...sessiongateOptions(config, routes, app.sessions.resolver),
    ...(jwt.configured ? { jwt: (token: string) => jwt.resolve(token) } : {}),
    metrics,
    closing: draining.active,
  });
  forwardAuth = app.sessiongate.forwardAuth;
  const fa = forwardAuth;
  const forwardAuthServer =
    config.forwardAuth.port === null ? null : createServer({ maxHeaderSize: config.maxHeaderBytes, requestTimeout: config.requestTimeoutMs }, (req, res) => fa.handleOwn(req, res));

  const sessionData = config.sessionData.port === null ? null : await buildSessionDataApp(config, app, metrics);
  if (sessionData === null && routes.routes.some((r) => r.sessionData !== null)) {
    app.log.warn('routes declare sessionData but SESSION_DATA_PORT is not set: upstreams cannot write session data');
  }

  const pingTimeout = config.redis.commandTimeoutMs ?? 1000;
  const ops = await buildOpsApp(app.log, {
    registry: metrics.registry,
    draining: draining.active,
    checks: [
      app.sessionRedis.readiness(pingTimeout),
      { name: 'routes', check: async () => app.sessiongate.routes.routes.length > 0 },
    ],
  });

  await app.ready();

  return {
    app,
    ops,
    metrics,
    forwardAuthServer,
    sessionData,
    async reload() {
      const r = await loadRoutesFile(config.routesFile);
      if (!r.ok) {
        const problems = formatProblems(config.routesFile, r.problems);
        metrics.configReloads.inc({ result: 'failure' });
        metrics.configLastReloadSuccessful.set(0);
        app.log.error({ file: config.routesFile, problems: problems.split('\n') }, 'routes reload failed: keeping the routes in force');
        return { ok: false, problems };
      }
      app.sessiongate.setRoutes(r.routes);
      metrics.configReloads.inc({ result: 'success' });
      metrics.configLastReloadSuccessful.set(1);
      metrics.configLastReloadSuccess.set(Date.now() / 1000);
      app.log.info({ file: config.routesFile, routes: r.routes.routes.length }, 'routes reloaded');
      return { ok: true, routes: r.routes.routes.length };
    },
    drain() {
      draining.start();
    },
    async close() {
      if (forwardAuthServer?.listening) {
        await new Promise<void>((resolve) => {
          forwardAuthServer.close(() => resolve());
          forwardAuthServer.closeIdleConnections();
        });
      }
      await sessionData?.close();
      await draining.close(app, ops);
    },
  };
}

/** The session data endpoint's own Fastify instance (docs/session-data.md): the routes in force, the store, the keys. */
async function buildSessionDataApp(config: GatewayConfig, app: FastifyInstance, metrics: GatewayMetrics): Promise<FastifyInstance> {
  const data = Fastify({
    loggerInstance: app.log.child({ listener: 'session-data' }),
    logController: new LogController({ disableRequestLogging: true }),
    requestTimeout: config.requestTimeoutMs,
    http: { maxHeaderSize: config.maxHeaderBytes },
    frameworkErrors: frameworkErrorHandler(errorResponse),
  });
  await data.register(sessionDataEndpoint, {
    routes: () => app.sessiongate.routes,
    store: app.sessions.resolver.store,
    verifier: new CredentialVerifier(config.keys, config.xSession.issuer),
    signer: new XSessionSigner(config.keys, config.xSession),
    metrics,
  });
  await data.ready();
  return data;
}
