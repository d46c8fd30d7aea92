import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { generateKeySet } from '@sessiongate/session';
import { KeyLayout, SessionStore, createRedisClient, waitUntilReady, type RedisClient } from '@sessiongate/session';
import { assertBuilt, startService, type Service } from '../../test/support/process.js';
import { routesYaml } from '../../test/support/gateway.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../../test/support/otlp-receiver.js';
import { freePort } from '../../test/support/redis-server.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// Tracing switched on by the standard OTEL_ environment, exported to a real OTLP/HTTP
// receiver: the span tree of one request, the traceparent the upstream got, the log line.

const SERVER = 2;
const CLIENT = 3;
const dir = mkdtempSync(path.join(tmpdir(), 'sg-tracing-'));
const prefix = `sgtest:${randomUUID()}:`;
let up: Upstream;
let otlp: OtlpReceiver;
let redis: RedisClient;
let svc: Service;
let port: number;

beforeAll(async () => {
  assertBuilt();
  up = await startUpstream('orders');
  otlp = await startOtlpReceiver();
  redis = createRedisClient({ connection: { mode: 'standalone', url: inject('redisUrl') } });
  await waitUntilReady(redis, 5000);
  const routesFile = path.join(dir, 'routes.yaml');
  writeFileSync(routesFile, routesYaml({ public: up.url }));
  port = await freePort();
  svc = startService(['gateway'], {
    REDIS_URL: inject('redisUrl'),
    SESSIONGATE_REDIS_PREFIX: prefix,
    SESSIONGATE_ROUTES: routesFile,
    SESSIONGATE_WATCH_ROUTES: 'false',
    X_SESSION_KEYS: JSON.stringify(generateKeySet('HS256')),
    HOST: '127.0.0.1',
    PORT: String(port),
    METRICS_PORT: String(await freePort()),
    COOKIE_SECURE: 'false',
    OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_SERVICE_NAME: 'edge-under-test',
    OTEL_BSP_SCHEDULE_DELAY: '100',
  });
  await svc.waitFor(/cache on/);
}, 60_000);

afterAll(async () => {
  await svc?.stop();
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
  await redis?.quit();
  await otlp?.close();
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function spansOf(traceId: string, count: number): Promise<ReceivedSpan[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const spans = otlp.spans.filter((s) => s.traceId === traceId);
    if (spans.length >= count || Date.now() > deadline) return spans;
    await new Promise((r) => setTimeout(r, 50));
  }
}

it('traces a request: server span → session lookup → Redis, server span → upstream, with traceparent upstream and the trace id in the log', async () => {
  const store = new SessionStore(redis, new KeyLayout(prefix));
  const s = await store.create({ sub: 'ann', roles: ['user'], claims: {}, idleTimeoutMs: 600_000, absoluteTimeoutMs: 3_600_000 });
  const res = await fetch(`http://127.0.0.1:${port}/api/orders/7`, { headers: { cookie: `sid=${s.token}` } });
  expect(res.status).toBe(200);
  await res.arrayBuffer();

  const traceparent = String(up.last().headers.traceparent ?? '');
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(traceparent);
  expect(m, `traceparent upstream: "${traceparent}"`).not.toBeNull();
  const traceId = m![1]!;
  const spans = await spansOf(traceId, 4);
  expect(otlp.contentTypes[0]).toMatch(/^application\/json/);

  const server = spans.find((x) => x.kind === SERVER);
  expect(server, JSON.stringify(spans)).toBeDefined();
  expect(server!.service).toBe('edge-under-test');
  expect(server!.parentSpanId).toBe('');
  const lookup = spans.find((x) => x.name === 'session lookup')!;
  expect(lookup.parentSpanId).toBe(server!.spanId);
  expect(lookup.attributes).toMatchObject({ 'sessiongate.session.outcome': 'valid', 'sessiongate.session.source': 'redis', 'sessiongate.session.cache_hit': false });
  const redisSpans = spans.filter((x) => x.attributes['db.system.name'] === 'redis');
  expect(redisSpans.length).toBeGreaterThanOrEqual(1);
  for (const r of redisSpans) expect(r.parentSpanId).toBe(lookup.spanId);
  // the span that called the upstream is the one whose id the upstream received
  const upstreamCall = spans.find((x) => x.kind === CLIENT && x.spanId === m![2])!;
  expect(upstreamCall, JSON.stringify(spans)).toBeDefined();
  expect(upstreamCall.parentSpanId).toBe(server!.spanId);
  expect(String(upstreamCall.attributes['url.full'])).toContain(`${up.url}/orders/7`);
  // no secret in any span: the session token never appears
  expect(JSON.stringify(spans)).not.toContain(s.token);

  await svc.waitFor(new RegExp(`"trace_id":"${traceId}"[^\\n]*"msg":"request"`));

  // the second request finds the session in the cache: no Redis span under its lookup
  const again = await fetch(`http://127.0.0.1:${port}/api/orders/8`, { headers: { cookie: `sid=${s.token}` } });
  expect(again.status).toBe(200);
  await again.arrayBuffer();
  const trace2 = /^00-([0-9a-f]{32})-/.exec(String(up.last().headers.traceparent))![1]!;
  expect(trace2).not.toBe(traceId);
  const spans2 = await spansOf(trace2, 3);
  const lookup2 = spans2.find((x) => x.name === 'session lookup')!;
  expect(lookup2.attributes).toMatchObject({ 'sessiongate.session.source': 'cache', 'sessiongate.session.cache_hit': true });
  expect(spans2.filter((x) => x.parentSpanId === lookup2.spanId)).toEqual([]);
});

it('continues a trace the client started, and the upstream gets one traceparent: the gateway\'s', async () => {
  const clientTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
  const res = await fetch(`http://127.0.0.1:${port}/public/x`, {
    headers: { traceparent: `00-${clientTrace}-00f067aa0ba902b7-01`, tracestate: 'vendor=client' },
  });
  expect(res.status).toBe(200);
  await res.arrayBuffer();
  const pairs = up.last().rawHeaders.filter(([k]) => k.toLowerCase() === 'traceparent');
  expect(pairs).toHaveLength(1);
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(pairs[0]![1])!;
  expect(m[1]).toBe(clientTrace);
  const spans = await spansOf(clientTrace, 2);
  const server = spans.find((x) => x.kind === SERVER)!;
  expect(server.parentSpanId).toBe('00f067aa0ba902b7');
  expect(spans.find((x) => x.spanId === m[2])?.parentSpanId).toBe(server.spanId);
});
