import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// With the session cache off, Redis is read on every request; an unchanged record is neither
// parsed nor signed again (docs/performance.md), a changed one is.

let up: Upstream;
let t: TestGateway;

beforeAll(async () => {
  up = await startUpstream('svc');
  t = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }), env: { SESSION_CACHE: 'false' } });
});

afterAll(async () => {
  await t?.close();
  await up?.close();
});

async function counts(): Promise<{ signed: number; reused: number; gets: number }> {
  // onResponse hooks run after inject() resolves: let them finish
  await new Promise((r) => setTimeout(r, 20));
  const text = (await t.gw.ops.inject({ url: '/metrics' })).body;
  const value = (series: string) => Number(text.split('\n').find((l) => l.startsWith(`${series} `))?.split(' ')[1] ?? 0);
  return {
    signed: value('sessiongate_xsession_headers_total{reused="false"}'),
    reused: value('sessiongate_xsession_headers_total{reused="true"}'),
    gets: value('sessiongate_redis_command_duration_seconds_count{command="get",result="ok"}'),
  };
}

const order = (token: string) => t.gw.app.inject({ url: '/api/orders/1', headers: { cookie: `sid=${token}` } });

describe('session cache off', () => {
  it('reads Redis on every request and signs an unchanged session once', async () => {
    const alice = await t.login('alice', ['user']);
    const before = await counts();
    for (let i = 0; i < 3; i++) expect((await order(alice)).statusCode).toBe(200);
    const after = await counts();
    expect(after.gets - before.gets).toBe(3);
    expect(after.signed - before.signed).toBe(1);
    expect(after.reused - before.reused).toBe(2);
  });

  it('signs again once the record changed in Redis', async () => {
    const bob = await t.login('bob', ['user']);
    expect((await order(bob)).statusCode).toBe(200);
    const before = await counts();
    expect(await t.store.setRoles('bob', ['user', 'auditor'])).toBe(1);
    expect((await order(bob)).statusCode).toBe(200);
    expect((await order(bob)).statusCode).toBe(200);
    const after = await counts();
    expect(after.signed - before.signed).toBe(1);
    expect(after.reused - before.reused).toBe(1);
  });
});
