#!/usr/bin/env node
// An existing Fastify application that takes sessiongate in as two plugins, instead of
// running the `sessiongate gateway` server in front of it. Its own routes (/health,
// /hello) stay exactly as they were; every other path goes through the gateway: the
// routes of routes.yaml, roles, the signed X-Session, the proxy.
//
//   npm run build && REDIS_URL=redis://127.0.0.1:6379 X_SESSION_KEYS="$(npx sessiongate keys generate)" \
//     COOKIE_SECURE=false node examples/embed-fastify/app.mjs
//
// Settings are the gateway's environment variables (`sessiongate gateway --help`).
// `buildGateway(config)` from 'sessiongate' is the batteries-included alternative: a whole
// gateway app with metrics and health endpoints, which this application does not want.
import { pathToFileURL } from 'node:url';
import Fastify from 'fastify';
import { formatProblems, gatewayConfigFromEnv, loadRoutesFile, readSessionCookie, sessionPlugin, sessiongate } from 'sessiongate';

/**
 * Builds the application; `env` holds the gateway's settings (REDIS_URL, X_SESSION_KEYS,
 * SESSIONGATE_ROUTES, ...). Nothing listens yet: tests use `inject()`.
 */
export async function buildApp({ env = process.env, logger = true } = {}) {
  // throws naming the variable when a setting is missing or wrong
  const config = gatewayConfigFromEnv(env);
  const loaded = await loadRoutesFile(config.routesFile);
  if (!loaded.ok) throw new Error(`invalid routes file:\n${formatProblems(config.routesFile, loaded.problems)}`);

  const app = Fastify({ logger });

  // --- the application as it was -------------------------------------------------------
  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/hello', async (request, reply) => {
    // the app may read the session too: the same resolver (and cache) the gateway uses
    const { token } = readSessionCookie(request.headers.cookie, config.session.cookieName);
    const lookup = await app.sessions.resolver.resolve(token);
    if (lookup.outcome === 'store_error') {
      request.log.error({ err: lookup.error }, 'session store unavailable');
      return reply.code(503).send({ error: 'session_store_unavailable', message: 'Try again shortly' });
    }
    return { hello: lookup.outcome === 'valid' ? lookup.session.record.sub : 'world' };
  });

  // --- sessiongate ---------------------------------------------------------------------
  // 1. Redis and sessions: opens the client, closes it in onClose
  await app.register(sessionPlugin, {
    connection: config.redis,
    keyPrefix: config.session.keyPrefix,
    cache: config.cache,
    refreshFraction: config.refreshFraction,
  });
  // 2. the gateway: a catch-all in its own encapsulated context, so the routes above, and
  //    this app's parsers and hooks, are untouched; it also serves /.well-known/jwks.json
  await app.register(sessiongate, {
    routes: loaded.routes,
    resolver: app.sessions.resolver,
    keys: config.keys,
    cookieName: config.session.cookieName,
    authRoute: config.authRoute,
    xSession: config.xSession,
    allowedOrigins: config.allowedOrigins,
    trustedProxies: config.trustedProxies,
  });
  return app;
}

// run directly: listen like any Fastify app
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const app = await buildApp();
  const port = Number(process.env.PORT || 3000);
  await app.listen({ host: process.env.HOST || '127.0.0.1', port });
  for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => void app.close().then(() => process.exit(0)));
}
