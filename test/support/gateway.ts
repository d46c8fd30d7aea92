import { randomUUID } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { buildGateway, formatProblems, gatewayConfigFromEnv, generateKeySet, parseRoutes, type Gateway, type GatewayConfig } from 'sessiongate';
import type { Redis } from 'ioredis';
import { KeyLayout, SessionStore, createRedisClient, waitUntilReady } from '@sessiongate/session';
import { afterAll, beforeAll, inject } from 'vitest';
import { deletePrefix } from './redis-commands.js';
import { startUpstream, type Upstream } from './upstream.js';

export interface TestGatewayOptions {
  redisUrl: string;
  /** routes.yaml text. */
  routes: string;
  /** Extra environment settings (strings), e.g. { SESSION_CACHE: 'false' }. */
  env?: Record<string, string>;
  alg?: 'HS256' | 'EdDSA';
  /** Share the key prefix (and so the sessions) of another gateway. */
  keyPrefix?: string;
  /** Share the keys of another gateway. */
  keysJson?: string;
  /** A pino destination to capture logs. */
  logStream?: NodeJS.WritableStream;
}

export interface TestGateway {
  readonly gw: Gateway;
  readonly config: GatewayConfig;
  readonly keyPrefix: string;
  /** X_SESSION_KEYS as given to the gateway (private parts included). */
  readonly keysJson: string;
  /** A client of the test's own for arranging sessions directly. */
  readonly redis: Redis;
  readonly store: SessionStore;
  /** Listens on a free port (once) and returns it, for raw-socket requests. */
  listen(): Promise<number>;
  /** Creates a session the way the auth service does and returns its cookie token. */
  login(sub: string, roles: string[], extra?: { claims?: Record<string, string>; idleTimeoutMs?: number; absoluteTimeoutMs?: number }): Promise<string>;
  close(): Promise<void>;
}

/** A gateway built from app.ts on a real Redis, isolated by its own key prefix. */
export async function startTestGateway(o: TestGatewayOptions): Promise<TestGateway> {
  const keyPrefix = o.keyPrefix ?? `sgtest:${randomUUID()}:`;
  const keysJson = o.keysJson ?? JSON.stringify(generateKeySet(o.alg ?? 'HS256'));
  const parsed = parseRoutes(o.routes, 'routes.yaml');
  if (!parsed.ok) throw new Error(formatProblems('routes.yaml', parsed.problems));
  const config = gatewayConfigFromEnv({
    REDIS_URL: o.redisUrl,
    SESSIONGATE_REDIS_PREFIX: keyPrefix,
    X_SESSION_KEYS: keysJson,
    SESSIONGATE_WATCH_ROUTES: 'false',
    ...o.env,
  });
  const logger = o.logStream ? { level: 'info', stream: o.logStream } : false;
  const gw = await buildGateway(config, { routes: parsed.routes, logger });
  const redis = createRedisClient({ connection: { mode: 'standalone', url: o.redisUrl } }) as Redis;
  redis.on('error', () => undefined); // fault tests kill its server on purpose
  const store = new SessionStore(redis, new KeyLayout(keyPrefix));
  // start from a settled state: both clients connected, the cache subscribed (when on)
  await Promise.all([waitUntilReady(redis, 5000), waitUntilReady(gw.app.sessions.redis, 5000)]);
  if (config.cache.enabled) {
    const deadline = Date.now() + 5000;
    while (!gw.app.sessions.resolver.cacheActive && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }
  let port: number | undefined;
  return {
    gw,
    config,
    keyPrefix,
    keysJson,
    redis,
    store,
    async listen() {
      if (port === undefined) {
        await gw.app.listen({ port: 0, host: '127.0.0.1' });
        port = (gw.app.server.address() as { port: number }).port;
      }
      return port;
    },
    async login(sub, roles, extra = {}) {
      const s = await store.create({
        sub,
        roles,
        claims: extra.claims ?? {},
        idleTimeoutMs: extra.idleTimeoutMs ?? config.session.idleTimeoutMs,
        absoluteTimeoutMs: extra.absoluteTimeoutMs ?? config.session.absoluteTimeoutMs,
      });
      return s.token;
    },
    async close() {
      await gw.close();
      // remove what this test wrote (never FLUSHDB: the Redis may be shared)
      await deletePrefix(redis, keyPrefix);
      await redis.quit();
    },
  };
}

/** A routes.yaml naming the given upstream URLs. */
export function routesYaml(up: Record<string, string>, extra = ''): string {
  return `version: 1
routes:
  - name: auth
    prefix: /auth
    upstream: ${up.auth ?? up.public}
    auth: optional
  - name: public
    prefix: /public
    upstream: ${up.public}
    auth: none
  - name: opt
    prefix: /opt
    upstream: ${up.opt ?? up.public}
    auth: optional
  - name: orders
    prefix: /api/orders
    upstream: ${up.orders ?? up.public}
    rewritePrefix: /orders
    roles: [user]
    methods:
      DELETE: { roles: [admin] }
  - name: admin
    prefix: /admin
    upstream: ${up.admin ?? up.public}
    roles: [admin]
  - name: reports
    prefix: /reports
    upstream: ${up.reports ?? up.public}
    roles: { all: [analyst, billing] }
${extra}`;
}

/** routes.yaml for the process tests: /public and /slow (both auth: none), then `extra`. */
export function publicAndSlowRoutes(publicUrl: string, slowUrl: string, extra = ''): string {
  return `version: 1
routes:
  - name: public
    prefix: /public
    upstream: ${publicUrl}
    auth: none
  - name: slow
    prefix: /slow
    upstream: ${slowUrl}
    auth: none
${extra}`;
}

/** Writes a file the way editors and config management do: a new file renamed over the old one. */
export function replaceFile(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

/** `sessiongate_upstream_errors_total` for one route and kind (0 when never counted). */
export async function upstreamErrorCount(t: TestGateway, route: string, kind: string): Promise<number> {
  const text = await t.gw.metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`sessiongate_upstream_errors_total{route="${route}",kind="${kind}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

/** A gateway with one `public` route (`auth: none`) in front of a recording upstream, listening on a free port. */
export interface PublicGateway {
  readonly up: Upstream;
  readonly t: TestGateway;
  readonly port: number;
}

/**
 * Starts a {@link PublicGateway} before the file's tests and stops it after them (the
 * fields are set once the file's `beforeAll` hooks have run).
 */
export function usePublicGateway(): PublicGateway {
  const fixture = {} as { up: Upstream; t: TestGateway; port: number };
  beforeAll(async () => {
    fixture.up = await startUpstream('svc');
    fixture.t = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: fixture.up.url }) });
    fixture.port = await fixture.t.listen();
  });
  afterAll(async () => {
    await fixture.t?.close();
    await fixture.up?.close();
  });
  return fixture;
}
