import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { usersCommand } from '../src/cli.js';
import { FileUserDirectory } from '../src/users/file-directory.js';
import { MAX_PROFILE_BYTES, MAX_PROFILE_FIELDS, MAX_PROFILE_VALUE_LENGTH } from '../src/users/users-file.js';
import { captureIo } from '../../test/support/auth-cli.js';
import { TEST_SCRYPT_COST, cookieToken, startTestAuth, writeUsersFile } from '../../test/support/auth-service.js';
import { routesYaml, startTestGateway } from '../../test/support/gateway.js';
import { startUpstream } from '../../test/support/upstream.js';

// Every profile field travels in each X-Session of the user: a profile too large for the
// gateway's header limit must be refused when it is written or loaded, never at request time.

const tmp = mkdtempSync(path.join(tmpdir(), 'sg-profile-size-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// the per-field limits at their most: 32 fields of 256 three-byte characters
const HUGE = Array.from({ length: MAX_PROFILE_FIELDS }, (_, i) => `f${i}=${'€'.repeat(MAX_PROFILE_VALUE_LENGTH)}`);

describe('profile size', () => {
  it('users add refuses a profile over the limit, before asking for a password, and writes nothing', async () => {
    const file = path.join(tmp, 'cli', 'users.yaml');
    const io = captureIo({ SESSIONGATE_USERS: file, SESSIONGATE_SCRYPT_COST: TEST_SCRYPT_COST, REDIS_URL: 'redis://127.0.0.1:1' }, 'pat-password-1\n');
    const code = await usersCommand(['add', 'pat', ...HUGE.flatMap((p) => ['--profile', p])], io);
    expect(code).toBe(2);
    expect(io.err()).toMatch(new RegExp(`--profile: the profile takes \\d+ bytes as JSON, over the limit of ${MAX_PROFILE_BYTES}`));
    expect(existsSync(file)).toBe(false);
  });

  it('a users file with such a profile is refused at load, naming the user and the line', async () => {
    const usersFile = await writeUsersFile({
      ok: { password: 'ok-password-1' },
      pat: { password: 'pat-password-1', profile: Object.fromEntries(HUGE.map((p) => p.split('='))) },
    });
    try {
      const text = readFileSync(usersFile, 'utf8');
      // the profile map starts on the line after `profile:`
      const line = text.split('\n').findIndex((l) => l.startsWith('    profile:')) + 2;
      await expect(FileUserDirectory.open(usersFile, { scryptCost: 14 })).rejects.toThrow(
        new RegExp(`users\\.yaml:${line}:\\d+: users\\.pat\\.profile: the profile takes \\d+ bytes as JSON, over the limit of ${MAX_PROFILE_BYTES}`),
      );
      await expect(startTestAuth({ redisUrl: inject('redisUrl'), usersFile })).rejects.toMatchObject({ code: 'SA_ERR_INVALID_USERS_FILE' });
    } finally {
      rmSync(path.dirname(usersFile), { recursive: true, force: true });
    }
  });

  it('a reload that brings such a profile keeps the users in force', async () => {
    const file = path.join(tmp, 'reload.yaml');
    writeFileSync(file, readFileSync(await writeUsersFile({ ok: { password: 'ok-password-1' } }, mkdtempSync(path.join(tmp, 'r-'))), 'utf8'));
    const d = await FileUserDirectory.open(file, { scryptCost: 14 });
    try {
      const grown = readFileSync(file, 'utf8').replace(/(\n\s+password: .*\n)/, `$1    profile: { big: "${'é'.repeat(MAX_PROFILE_VALUE_LENGTH)}", more: "${'é'.repeat(MAX_PROFILE_VALUE_LENGTH)}", most: "${'é'.repeat(MAX_PROFILE_VALUE_LENGTH)}" }\n`);
      writeFileSync(file, grown);
      const r = await d.reload();
      expect(r).toMatchObject({ ok: false, problems: expect.stringMatching(/users\.ok\.profile: the profile takes \d+ bytes/) });
      expect(await d.find('ok')).toMatchObject({ name: 'ok', profile: {} });
    } finally {
      await d.close();
    }
  });

  it('the largest profile allowed, with 64 long roles, still passes the gateway', async () => {
    const name = 'n'.repeat(64);
    const roles = Array.from({ length: 64 }, (_, i) => `role${i}`.padEnd(64, 'x'));
    // one field filled with three-byte characters up to the byte limit
    const profile: Record<string, string> = { a: '' };
    while (Buffer.byteLength(JSON.stringify({ a: `${profile.a}€` })) <= MAX_PROFILE_BYTES && profile.a!.length < MAX_PROFILE_VALUE_LENGTH) profile.a += '€';
    for (let i = 0; Buffer.byteLength(JSON.stringify(profile)) < MAX_PROFILE_BYTES - 16; i++) {
      profile[`b${i}`] = 'é'.repeat(Math.min(MAX_PROFILE_VALUE_LENGTH, Math.floor((MAX_PROFILE_BYTES - 16 - Buffer.byteLength(JSON.stringify(profile))) / 2)));
    }
    expect(Buffer.byteLength(JSON.stringify(profile))).toBeLessThanOrEqual(MAX_PROFILE_BYTES);
    expect(Buffer.byteLength(JSON.stringify(profile))).toBeGreaterThan(MAX_PROFILE_BYTES - 20);

    const auth = await startTestAuth({ redisUrl: inject('redisUrl'), users: { [name]: { password: 'long-password-1', roles, profile } } });
    const app = await startUpstream('app');
    const authUrl = await auth.listen();
    const gw = await startTestGateway({
      redisUrl: inject('redisUrl'),
      routes: routesYaml({ auth: authUrl, public: app.url }),
      keyPrefix: auth.keyPrefix,
      keysJson: auth.keysJson,
      alg: 'EdDSA',
    });
    try {
      const login = await gw.gw.app.inject({ method: 'POST', url: '/auth/login', payload: { username: name, password: 'long-password-1' } });
      expect(login.statusCode).toBe(204);
      const me = await gw.gw.app.inject({ method: 'GET', url: '/auth/me', headers: { cookie: `sid=${cookieToken(login)}` } });
      expect(me.statusCode).toBe(200);
      expect(me.json()).toMatchObject({ sub: name, roles, ...profile });
    } finally {
      await gw.close();
      await app.close();
      await auth.close();
    }
  });
});
