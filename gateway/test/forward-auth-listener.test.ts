import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateKeySet } from '@sessiongate/session';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { gatewayConfigFromEnv } from '../src/settings.js';
import { startTestGateway, type TestGateway } from '../../test/support/gateway.js';
import { assertBuilt, startService } from '../../test/support/process.js';
import { freePort } from '../../test/support/redis-server.js';

// FORWARD_AUTH_PORT: the endpoint gets a listener of its own, which serves nothing else,
// and the gateway's main listener stops serving it, even to a listed proxy address.

const ROUTES = `version: 1
routes:
  - name: site
    prefix: /
    roles: [user]
`;

function get(port: number, target: string, headers: Record<string, string>) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the forward-auth endpoint on its own listener', () => {
  let tg: TestGateway;
  let mainPort: number;
  let ownPort: number;

  beforeAll(async () => {
    tg = await startTestGateway({
      redisUrl: inject('redisUrl'),
      routes: ROUTES,
      // 127.0.0.1 is listed too: on the main listener that must not matter any more
      env: { FORWARD_AUTH_PORT: '1', SESSIONGATE_FORWARD_AUTH_PROXIES: '127.0.0.1/32' },
    });
    mainPort = await tg.listen();
    const own = tg.gw.forwardAuthServer!;
    await new Promise<void>((resolve) => own.listen(0, '127.0.0.1', resolve));
    ownPort = (own.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await tg?.close();
  });

  it('answers there, and only the endpoint', async () => {
    const token = await tg.login('ana', ['user']);
    const ask = { 'x-original-uri': '/page', 'x-original-method': 'GET', cookie: `sid=${token}` };
    const own = await get(ownPort, '/_sessiongate/authz', ask);
    expect([own.status, own.headers['cache-control'], typeof own.headers['x-session']]).toEqual([200, 'no-store', 'string']);
    const other = await get(ownPort, '/page', { cookie: `sid=${token}` });
    expect([other.status, JSON.parse(other.body).error]).toEqual([404, 'not_found']);
  });

  it('the main listener answers 404 for it, to a listed address too', async () => {
    const token = await tg.login('ana', ['user']);
    const res = await get(mainPort, '/_sessiongate/authz', { 'x-original-uri': '/page', 'x-original-method': 'GET', cookie: `sid=${token}` });
    expect([res.status, res.headers['x-session']]).toEqual([404, undefined]);
  });

  it('settings: bad CIDRs and a port shared with the gateway are refused at boot', () => {
    const base = { REDIS_URL: 'redis://127.0.0.1:6379', X_SESSION_KEYS: tg.keysJson };
    expect(() => gatewayConfigFromEnv({ ...base, SESSIONGATE_FORWARD_AUTH_PROXIES: '10.0.0.0/33' })).toThrow(/SESSIONGATE_FORWARD_AUTH_PROXIES/);
    expect(() => gatewayConfigFromEnv({ ...base, GATEWAY_PORT: '8080', FORWARD_AUTH_PORT: '8080' })).toThrow(/FORWARD_AUTH_PORT: must differ/);
    expect(() => gatewayConfigFromEnv({ ...base, FORWARD_AUTH_PORT: 'x' })).toThrow(/FORWARD_AUTH_PORT/);
    const c = gatewayConfigFromEnv({ ...base, GATEWAY_HOST: '127.0.0.1', FORWARD_AUTH_PORT: '8090' });
    expect(c.forwardAuth).toEqual({ proxies: [], port: 8090, host: '127.0.0.1' });
    expect(gatewayConfigFromEnv(base).forwardAuth.port).toBeNull();
  });
});

describe('the gateway process with FORWARD_AUTH_PORT', () => {
  it('listens on it, says so when ready, and stops cleanly', async () => {
    assertBuilt();
    const dir = mkdtempSync(path.join(tmpdir(), 'sessiongate-fa-'));
    const routesFile = path.join(dir, 'routes.yaml');
    writeFileSync(routesFile, 'version: 1\nroutes:\n  - name: open\n    prefix: /\n    auth: none\n');
    const [port, metricsPort, faPort] = [await freePort(), await freePort(), await freePort()];
    const svc = startService(['gateway'], {
      REDIS_URL: inject('redisUrl'),
      SESSIONGATE_ROUTES: routesFile,
      X_SESSION_KEYS: JSON.stringify(generateKeySet('HS256')),
      HOST: '127.0.0.1',
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      FORWARD_AUTH_PORT: String(faPort),
    });
    try {
      await svc.waitFor(/sessiongate gateway ready/);
      expect(svc.output()).toContain(`http://127.0.0.1:${faPort}/_sessiongate/authz`);
      const own = await get(faPort, '/_sessiongate/authz', { 'x-original-uri': '/x', 'x-original-method': 'GET' });
      expect([own.status, own.headers['cache-control'], own.headers['x-sessiongate-cookie']]).toEqual([200, 'no-store', '']);
      // the route has no upstream: the gateway's own listener has nowhere to send it
      expect((await get(port, '/x', {})).status).toBe(404);
      expect((await get(port, '/_sessiongate/authz', { 'x-original-uri': '/x', 'x-original-method': 'GET' })).status).toBe(404);
    } finally {
      await svc.stop();
    }
    expect((await svc.exited()).code).toBe(0);
  }, 30_000);
});
