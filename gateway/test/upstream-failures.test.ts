import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestGateway, routesYaml, upstreamErrorCount, type TestGateway } from '../../test/support/gateway.js';
import { freePort } from '../../test/support/redis-server.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// An upstream that never answers, one that is not there, and one that hangs up: the
// client gets 504 upstream_timeout or 502 upstream_unavailable as JSON, never internal
// text, and the failure is counted in sessiongate_upstream_errors_total.

const ROUTE_TIMEOUT_MS = 300;

let up: Upstream;
let silent: Upstream;
let hangup: Upstream;
let t: TestGateway;

beforeAll(async () => {
  up = await startUpstream('svc');
  silent = await startUpstream('silent');
  // reads the request, never writes a byte back
  silent.respond(() => undefined);
  hangup = await startUpstream('hangup');
  hangup.respond((req) => req.socket.destroy());
  // a port nothing listens on: taken from the OS, then released
  const deadPort = await freePort();
  const extra = `  - name: slow
    prefix: /slow
    upstream: ${silent.url}
    roles: [user]
    timeout: ${ROUTE_TIMEOUT_MS}ms
  - name: dead
    prefix: /dead
    upstream: http://127.0.0.1:${deadPort}
    auth: none
  - name: hangup
    prefix: /hangup
    upstream: ${hangup.url}
    auth: none
`;
  t = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }, extra) });
});

afterAll(async () => {
  await t?.close();
  await up?.close();
  await silent?.close();
  await hangup?.close();
});

const upstreamErrors = (route: string, kind: string) => upstreamErrorCount(t, route, kind);

function expectNoInternals(body: string) {
  expect(body).not.toMatch(/ECONN|UND_ERR|FST_|socket|refused|127\.0\.0\.1|localhost|\bat .+:\d+:\d+/i);
}

describe('upstream failures', () => {
  it('answers 504 upstream_timeout when the upstream never answers within the route timeout', async () => {
    const before = await upstreamErrors('slow', 'timeout');
    const alice = await t.login('alice', ['user']);
    const t0 = performance.now();
    const res = await t.gw.app.inject({ method: 'GET', url: '/slow/report', headers: { cookie: `sid=${alice}` } });
    // bounded by the route's timeout, not the default 30 s
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(res.statusCode).toBe(504);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({ error: 'upstream_timeout', message: expect.any(String) });
    expectNoInternals(res.body);
    // it was forwarded (the timeout is the upstream's, not the gateway's refusal)
    expect(silent.received.map((r) => r.url)).toEqual(['/slow/report']);
    expect(await upstreamErrors('slow', 'timeout')).toBe(before + 1);
  });

  it('answers 502 upstream_unavailable when nothing listens on the upstream port', async () => {
    const before = await upstreamErrors('dead', 'unavailable');
    const res = await t.gw.app.inject({ method: 'GET', url: '/dead/x' });
    expect(res.statusCode).toBe(502);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({ error: 'upstream_unavailable', message: expect.any(String) });
    expectNoInternals(res.body);
    expect(await upstreamErrors('dead', 'unavailable')).toBe(before + 1);
  });

  it('answers 502 upstream_unavailable when the upstream hangs up without answering', async () => {
    const text = () => t.gw.metrics.registry.metrics();
    const countOf = async () => {
      const lines = (await text()).split('\n').filter((l) => l.startsWith('sessiongate_upstream_errors_total{route="hangup"'));
      return lines.reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
    };
    const before = await countOf();
    const res = await t.gw.app.inject({ method: 'GET', url: '/hangup/x' });
    expect(res.statusCode).toBe(502);
    expect(res.json()).toEqual({ error: 'upstream_unavailable', message: expect.any(String) });
    expectNoInternals(res.body);
    expect(await countOf()).toBe(before + 1);
  });

  it('keeps serving healthy routes after upstream failures', async () => {
    const res = await t.gw.app.inject({ method: 'GET', url: '/public/ok' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ upstream: 'svc', url: '/public/ok' });
  });
});
