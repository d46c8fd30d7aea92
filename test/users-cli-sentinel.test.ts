import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyLayout, SessionStore, parseRecord, type SessionRef } from '@sessiongate/session';
import { TEST_SCRYPT_COST, writeUsersFile } from './support/auth-service.js';
import { assertBuilt, runCli } from './support/process.js';
import { startRedisSentinel, type RedisSentinelSetup } from './support/redis-sentinel.js';

// `sessiongate users`, run as a process, against a Sentinel that has a password of its own:
// the command reads REDIS_SENTINEL_PASSWORD like the services do, so a role change and a
// disable reach the user's live sessions at once.

const SENTINEL_PASSWORD = 'sentinel-only-password';
const PREFIX = 'sgcli:';

let s: RedisSentinelSetup;
let dir: string;
let env: Record<string, string>;
let master: Redis;
let store: SessionStore;
const keys = new KeyLayout(PREFIX);

beforeAll(async () => {
  assertBuilt();
  s = await startRedisSentinel({ sentinelPassword: SENTINEL_PASSWORD });
  dir = mkdtempSync(path.join(tmpdir(), 'sg-cli-sentinel-'));
  const usersFile = await writeUsersFile({ alice: { password: 'alice-password-1', roles: ['user'] } }, dir);
  env = { ...s.env, SESSIONGATE_USERS: usersFile, SESSIONGATE_REDIS_PREFIX: PREFIX, SESSIONGATE_SCRYPT_COST: TEST_SCRYPT_COST };
  master = s.connect(s.master.port);
  store = new SessionStore(master, keys);
}, 60_000);

afterAll(async () => {
  await s?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function newSession(): Promise<SessionRef> {
  return store.create({ sub: 'alice', roles: ['user'], idleTimeoutMs: 60_000, absoluteTimeoutMs: 3_600_000 }).then((c) => c.ref);
}

describe('sessiongate users through a password-protected Sentinel', () => {
  it('the sentinel refuses a client without its password', async () => {
    const anonymous = new Redis(s.sentinelPort, '127.0.0.1', { maxRetriesPerRequest: 0, retryStrategy: () => null });
    anonymous.on('error', () => undefined);
    await expect(anonymous.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster')).rejects.toThrow(/NOAUTH/);
    anonymous.disconnect();
  });

  it('set-roles gives the live sessions their new roles', async () => {
    const ref = await newSession();
    const r = await runCli(['users', 'set-roles', 'alice', 'user,admin'], { env });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/updated roles of 1 live session\n/);
    expect(r.code).toBe(0);
    expect(parseRecord((await master.get(keys.session(ref)))!, ref.sid).roles).toEqual(['user', 'admin']);
  });

  it('disable ends the live sessions', async () => {
    const refs = [await newSession(), await newSession()];
    const r = await runCli(['users', 'disable', 'alice'], { env });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/ended 3 live sessions\n/);
    expect(r.code).toBe(0);
    for (const ref of refs) expect(await master.exists(keys.session(ref))).toBe(0);
  });
});
