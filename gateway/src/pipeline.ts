import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { pageHeaders, prefersHtml, type Brand } from '@sessiongate/service-kit';
import { DEFAULT_AUTH_ROUTE, DEFAULT_COOKIE_NAME, type KeySet } from '@sessiongate/session';
import {
  DEFAULT_LOGIN_PATH,
  DEFAULT_LOGOUT_PATH,
  DEFAULT_MAX_COOKIE_BYTES,
  DEFAULT_SIGNED_HEADERS_MAX,
  DEFAULT_UPSTREAM_CONNECTIONS,
  DEFAULT_UPSTREAM_KEEP_ALIVE_MS,
} from './defaults.js';
import { NotFound, errorResponse } from './errors.js';
import { ClientAssertionSigner, withClientAssertion } from './identity/client-assertion.js';
import jwks from './identity/jwks.js';
import { IdentityReuse } from './identity/reuse.js';
import { XSessionSigner } from './identity/signer.js';
import type { GatewayMetrics } from './ops/metrics.js';
import { ForwardAuth } from './forward-auth/endpoint.js';
import { resolveTraced } from './ops/tracing.js';
import { errorPage, errorPageContext } from './pages/error-page.js';
import { createAdmission, type GateState, type JwtResolver } from './policy/admission.js';
import { BearerThrottle, type BearerThrottleSettings } from './policy/bearer-throttle.js';
import { BODY_ERRORS, forwardedBody, hasBody } from './proxy/body.js';
import { UpstreamForwarder } from './proxy/forwarder.js';
import { clientResponseHeaders, plainRequestDropped, upstreamRequestHeaders, type ForwardContext } from './proxy/headers.js';
import { brokenUpstreamResponse, upstreamFailure } from './proxy/upstream-errors.js';
import { UpgradeProxy } from './proxy/upgrade.js';
import { upstreamPath, upstreamUrl } from './routes/match.js';
import type { RouteSet } from './routes/types.js';
import type { ResolvedSession, SessionResolver } from './session/resolver.js';

export interface SessionGateOptions {
  /** The routes in force; swap them later with `fastify.sessiongate.setRoutes()`. */
  routes: RouteSet;
  /** Resolves cookies to sessions; its owner (the session plugin) closes it. */
  resolver: SessionResolver;
  /** Keys that sign X-Session (the first signs, all are published). */
  keys: KeySet;
  /** @default DEFAULT_COOKIE_NAME */
  cookieName?: string;
  /** @default DEFAULT_AUTH_ROUTE */
  authRoute?: string;
  /** X-Session `iss` and lifetime. */
  xSession?: { issuer?: string; ttlMs?: number };
  /** Most sessions that keep their signed X-Session headers for reuse (at most the cache's size). @default DEFAULT_SIGNED_HEADERS_MAX */
  signedHeadersMax?: number;
  /** Origins allowed to send cookie-authenticated writes; empty: the gateway's own origin. */
  allowedOrigins?: readonly string[];
  /** CIDRs whose X-Forwarded-* / Forwarded headers are believed. */
  trustedProxies?: readonly string[];
  metrics?: GatewayMetrics;
  /** Linked from the HTML 401 and 403 pages browsers see; null for none. @default DEFAULT_LOGIN_PATH */
  loginPath?: string | null;
  /** Where the 403 page's "Sign out" posts; null for none. @default DEFAULT_LOGOUT_PATH (none without loginPath) */
  logoutPath?: string | null;
  /** The product's name and logo on the error pages browsers see. */
  brand?: Brand | null;
  /** Failed bearer credentials per client address and window before 429. */
  bearerThrottle?: BearerThrottleSettings;
  /** Verifies IdP access tokens on `bearer_jwt` routes; without it they refuse every JWT. */
  jwt?: JwtResolver;
  /** Largest Cookie header accepted; more is 431. @default DEFAULT_MAX_COOKIE_BYTES */
  maxCookieBytes?: number;
  /** Upstream connection pool settings (undici Agent options). */
  upstreamPool?: {
    /** @default DEFAULT_UPSTREAM_CONNECTIONS */
    connections?: number;
    /** @default DEFAULT_UPSTREAM_KEEP_ALIVE_MS */
    keepAliveTimeoutMs?: number;
  };
  /** While true, every proxied response closes its client connection (the server is draining). */
  closing?: () => boolean;
  /** How long a WebSocket (or other upgraded connection) may stay silent both ways. @default DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS */
  websocketIdleTimeoutMs?: number;
  /** The forward-auth endpoint (docs/forward-auth.md); off when neither field is set. */
  forwardAuth?: {
    /** CIDRs of the proxies that may ask on the main listener. */
    proxies?: readonly string[];
    /** The endpoint is served on a listener of its own (`SessionGate.forwardAuth.handleOwn`), never on the main one. */
    ownListener?: boolean;
  };
}

export interface SessionGate {
  /** Routes in force. */
  readonly routes: RouteSet;
  /** Swaps the routes atomically; requests already past routing finish on the old ones. */
  setRoutes(routes: RouteSet): void;
  readonly resolver: SessionResolver;
  /** The forward-auth endpoint; the server hands it requests before Fastify routes them. */
  readonly forwardAuth: ForwardAuth;
}

declare module 'fastify' {
  interface FastifyInstance {
    sessiongate: SessionGate;
  }
  interface FastifyRequest {
    gate: GateState | null;
    /** The matched route's name, set as soon as it is known (also on refused requests). */
    gateRoute: string | null;
    /** The valid session, set as soon as it is known (also on refused requests: a 403 page names its user). */
    gateSession: ResolvedSession | null;
  }
}

const LOGGED_ELSEWHERE = new Set(['SG_ERR_SESSION_STORE_UNAVAILABLE', 'SG_ERR_UPSTREAM_UNAVAILABLE', 'SG_ERR_UPSTREAM_TIMEOUT']);
const ALL_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/**
 * The request path as a Fastify plugin: canonical path → route → session → policy → signed
 * X-Session → upstream. Everything it adds (a catch-all route, body pass-through, the JWKS
 * endpoint) lives in an encapsulated context, so a host application's own routes and
 * parsers are untouched.
 */
const sessiongate: FastifyPluginAsync<SessionGateOptions> = async (fastify, opts) => {
  const cookieName = opts.cookieName ?? DEFAULT_COOKIE_NAME;
  const authRoute = opts.authRoute ?? DEFAULT_AUTH_ROUTE;
  const resolver = opts.resolver;
  const metrics = opts.metrics;
  const signer = new XSessionSigner(opts.keys, opts.xSession);
  const identities = new IdentityReuse(signer, Math.min(resolver.capacity, opts.signedHeadersMax ?? DEFAULT_SIGNED_HEADERS_MAX), metrics);
  const assertions = new ClientAssertionSigner(opts.keys, opts.xSession?.issuer ? { issuer: opts.xSession.issuer } : {});
  // where a browser that hit a 401 can sign in: the auth route's login page, when there is one
  const loginPath = opts.loginPath === undefined ? DEFAULT_LOGIN_PATH : opts.loginPath;
  const logoutPath = opts.logoutPath === undefined ? (loginPath === null ? null : DEFAULT_LOGOUT_PATH) : opts.logoutPath;
  const brand = opts.brand ?? null;
  const htmlHeaders = pageHeaders(brand);

  const admission = createAdmission({
    routes: opts.routes,
    resolve: (token) => resolveTraced(resolver, token),
    cookieName,
    authRoute,
    allowedOrigins: opts.allowedOrigins ?? [],
    trustedProxies: opts.trustedProxies ?? [],
    maxCookieBytes: opts.maxCookieBytes ?? DEFAULT_MAX_COOKIE_BYTES,
    metrics,
    resolveApiKey: (key) => resolver.resolveApiKey(key),
    throttle: new BearerThrottle(resolver.store.redis, resolver.apiKeys.layout, opts.bearerThrottle),
    ...(opts.jwt ? { jwt: opts.jwt } : {}),
  });
  const admit = admission.admit;
  const gate: SessionGate = {
    get routes() {
      return admission.routes;
    },
    setRoutes: (next: RouteSet) => admission.setRoutes(next),
    resolver,
    forwardAuth: new ForwardAuth({
      admission,
      identities,
      proxies: opts.forwardAuth?.proxies ?? [],
      ownListener: opts.forwardAuth?.ownListener ?? false,
      trustedProxies: opts.trustedProxies ?? [],
      loginPath,
      metrics,
      log: fastify.log,
    }),
  };
  fastify.decorate('sessiongate', gate);
  fastify.decorateRequest('gate', null);
  fastify.decorateRequest('gateRoute', null);
  fastify.decorateRequest('gateSession', null);

  // runs before the body is read, so a refusal costs nothing
  async function admitRequest(request: FastifyRequest): Promise<void> {
    request.gate = await admit(
      request.raw,
      request.log,
      (route) => {
        request.gateRoute = route.name;
      },
      false,
      (session) => {
        request.gateSession = session;
      },
    );
  }

  /** What the gateway tells the upstream about this request: its headers' part. */
  function forwardHeaders(g: GateState): ForwardContext {
    const addr = g.client;
    return {
      cookie: g.cookie,
      xSession: g.session ? identities.headerFor(g.session, g.route.name, Date.now(), g.route.reads) : null,
      forwardedFor: addr.forwardedFor,
      forwardedProto: addr.proto,
      forwardedHost: addr.host ?? undefined,
      dropAuthorization: g.dropAuthorization,
    };
  }

  /** Everything the upstream needs to know about an upgrade request. */
  function forwardContext(g: GateState, _raw: IncomingMessage) {
    // without the query: the client's is appended exactly as received
    return { url: upstreamUrl(g.route, g.path), query: g.query, headers: forwardHeaders(g) };
  }

  const upstream = new UpstreamForwarder(
    {
      connections: opts.upstreamPool?.connections ?? DEFAULT_UPSTREAM_CONNECTIONS,
      keepAliveTimeoutMs: opts.upstreamPool?.keepAliveTimeoutMs ?? DEFAULT_UPSTREAM_KEEP_ALIVE_MS,
    },
    opts.closing,
  );
  fastify.addHook('onClose', () => upstream.close());

  async function forward(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const g = request.gate;
    if (!g) throw new NotFound();
    const route = g.route;
    const raw = request.raw;
    // the auth service throttles logins per client: it gets the address signed, so it need
    // not trust whatever hop the gateway's request reaches it through
    const assertion = route.name === authRoute && g.client.ip ? assertions.sign(route.name, g.client.ip) : null;
    const headers = upstreamRequestHeaders(raw.headers, forwardHeaders(g), plainRequestDropped(raw.headers));
    try {
      await upstream.forward(raw, reply.raw, {
        upstream: route.upstream,
        path: upstreamPath(route, g.path) + g.query,
        method: raw.method ?? 'GET',
        headers: withClientAssertion(headers, assertion),
        body: (request.body as Readable | undefined) ?? null,
        timeoutMs: route.timeout,
        responseHeaders: (h) => clientResponseHeaders(h, route.name === authRoute, cookieName),
        onBrokenResponse: (err) => brokenUpstreamResponse(err, route, request.log, metrics),
      });
    } catch (err) {
      throw upstreamFailure(err, route, request.log, metrics);
    }
    // the answer is on its way: Fastify sends nothing more (its onResponse hooks still run)
    return reply.hijack();
  }

  await fastify.register(jwks, { getKeys: () => opts.keys });

  // WebSocket (and any other) upgrades pass the same gate as plain requests
  const upgrades = new UpgradeProxy({
    admit: (raw) => admit(raw, fastify.log, undefined, true),
    forward: forwardContext,
    onRevoked: (ref, cb) => resolver.onRevoked(ref, cb),
    idleTimeoutMs: opts.websocketIdleTimeoutMs,
    log: fastify.log,
    onRejected: (err) => errorResponse(err),
  });
  fastify.addHook('onListen', async () => {
    fastify.server.on('upgrade', upgrades.handle);
  });
  fastify.addHook('preClose', async () => {
    fastify.server.off('upgrade', upgrades.handle);
    upgrades.closeAll();
  });

  await fastify.register(async function proxyContext(instance: FastifyInstance) {
    // bodies stream through untouched; the route's limit is enforced on the way
    instance.removeAllContentTypeParsers();
    function bodyOf(request: FastifyRequest, payload: IncomingMessage, done: (err: Error | null, body?: Readable) => void): void {
      forwardedBody(request.gate?.route, request.method, request.headers, payload, done);
    }
    instance.addContentTypeParser('*', bodyOf);
    instance.setErrorHandler((err: Error & { code?: string; statusCode?: number }, request, reply) => {
      const { statusCode, body } = errorResponse(err);
      // store and upstream failures were logged where they happened, with their cause
      if (statusCode >= 500 && !LOGGED_ELSEWHERE.has(err.code ?? '')) request.log.error({ err }, 'request failed');
      // the rest of an oversized or refused body may still be on the wire, unread: the
      // connection cannot carry another request, so say so and close it
      if (statusCode === 413 || (BODY_ERRORS.has(err.code ?? '') && !request.raw.complete)) reply.header('connection', 'close');
      if (prefersHtml(request.headers.accept)) {
        const user = request.gateSession?.record ?? null;
        const page = errorPage(statusCode, body, errorPageContext(request.raw, { loginPath, logoutPath, brand, user }));
        return reply.code(statusCode).headers(htmlHeaders).send(page);
      }
      return reply.code(statusCode).type('application/json; charset=utf-8').send(body);
    });
    instance.route({ method: ALL_METHODS, url: '/*', onRequest: admitRequest, handler: forward });
    // other methods (TRACE, WebDAV…) and targets no route pattern fits (absolute-form, '*')
    // get the same gate, which answers them with 405 or 400
    instance.setNotFoundHandler(async (request, reply) => {
      await admitRequest(request);
      // Fastify reads no body for methods it does not know (PROPFIND, PURGE…): a route that
      // lists one gets its body forwarded like any other
      if (request.body === undefined && hasBody(request.headers)) {
        request.body = await new Promise<Readable | undefined>((resolve, reject) => bodyOf(request, request.raw, (err, body) => (err ? reject(err) : resolve(body))));
      }
      return forward(request, reply);
    });
    instance.route({ method: ALL_METHODS, url: '/', onRequest: admitRequest, handler: forward });
  });
};

export default fp(sessiongate, { name: 'sessiongate', fastify: '5.x' });
export { sessiongate };
