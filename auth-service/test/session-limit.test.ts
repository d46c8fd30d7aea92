import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { sessionRef } from '@sessiongate/session';
import { cookieToken, startTestAuth, type TestAuth } from '../../test/support/auth-service.js';
import { startRedisServer } from '../../test/support/redis-server.js';
import { watchSessionKeys, type SessionKeyWatch } from '../../test/support/session-tracking.js';

// SESSION_MAX_PER_USER: a login past the cap ends the user's oldest session, tells every
// gateway, and says so in the log (never with a token); other users are not touched.

const USERS = {
  vera: { password: 'vera-password', roles: ['user'] },
  walt: { password: 'walt-password', roles: ['user'] },
};

describe('sessions per user', () => {
  let t: TestAuth;
  let watch: SessionKeyWatch;
  let logs = '';

  beforeAll(async () => {
    const logStream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs += chunk.toString();
        cb();
      },
    });
    t = await startTestAuth({ redisUrl: inject('redisUrl'), users: USERS, env: { SESSION_MAX_PER_USER: '3' }, logStream });
    // a gateway's view: Redis reports every change to a session key
    watch = await watchSessionKeys(inject('redisUrl'), t.keys);
  });
  afterAll(async () => {
    await watch?.close();
    await t?.close();
  });

  const login = async (user: keyof typeof USERS) => cookieToken(await t.login(user, USERS[user].password));
  const alive = async (token: string) => (await t.redis.exists(t.keys.session(sessionRef(token)))) === 1;

  it('ends the oldest session when a login goes past the cap, and publishes and logs it', async () => {
    const other = await login('walt');
    const tokens: string[] = [];
    for (let i = 0; i < 3; i++) tokens.push(await login('vera'));
    for (const tk of tokens) expect(await alive(tk)).toBe(true);
    // the logins so far have been reported (their writes)
    await vi.waitFor(() => expect(watch.sids).toContain(sessionRef(tokens[2]!).sid));
    const seen = watch.sids.length;

    const fourth = await login('vera');
    const oldest = sessionRef(tokens[0]!).sid;
    expect(await alive(tokens[0]!)).toBe(false);
    for (const tk of [...tokens.slice(1), fourth, other]) expect(await alive(tk)).toBe(true);
    expect((await t.redis.zrange(t.keys.userIndex('vera'), 0, '-1')).sort()).toEqual([...tokens.slice(1), fourth].map((tk) => sessionRef(tk).sid).sort());
    // reported: the new session's write and the oldest one's end, nothing else
    await vi.waitFor(() => expect(watch.sids.slice(seen).sort()).toEqual([oldest, sessionRef(fourth).sid].sort()));

    const line = logs.split('\n').find((l) => l.includes('"event":"session-limit"'));
    expect(line).toBeDefined();
    expect(JSON.parse(line!)).toMatchObject({ level: 30, user: 'vera', ended: [oldest] });
    for (const tk of [...tokens, fourth]) expect(logs).not.toContain(tk);
    const metrics = await t.svc.metrics.registry.getSingleMetricAsString('sessiongate_auth_sessions_revoked_total');
    expect(metrics).toContain('sessiongate_auth_sessions_revoked_total{reason="limit"} 1');
  });

  it('never holds more than the cap, however many logins', async () => {
    for (let i = 0; i < 10; i++) await login('vera');
    expect(await t.redis.zcard(t.keys.userIndex('vera'))).toBe(3);
    expect((await t.store.list('vera')).length).toBe(3);
  });
});

describe('pruning on login', () => {
  it('checks a fixed number of sessions per login, not every live one', async () => {
    // a Redis of its own: its command counts are this test's alone
    const redis = await startRedisServer();
    const t = await startTestAuth({ redisUrl: redis.url, users: USERS, env: { SESSION_MAX_PER_USER: '100' } });
    try {
      const logins = 40;
      await t.redis.call('CONFIG', 'RESETSTAT');
      for (let i = 0; i < logins; i++) expect((await t.login('walt', USERS.walt.password)).statusCode).toBe(204);
      const stats = (await t.redis.info('commandstats')).match(/cmdstat_exists:calls=(\d+)/);
      const exists = Number(stats?.[1] ?? 0);
      // every session is still alive: one EXISTS per live session and login would be 780; a
      // login runs one to look for an index of the earlier release, and pruning at most two
      expect((await t.store.list('walt')).length).toBe(logins);
      expect(exists).toBeGreaterThan(logins);
      expect(exists).toBeLessThanOrEqual(3 * logins);
    } finally {
      await t.close();
      await redis.stop();
    }
  });
});
