import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, inject, it, vi } from 'vitest';
import { sessionRef } from '@sessiongate/session';
import { usersCommand } from '../src/cli.js';
import { FileUserDirectory } from '../src/users/file-directory.js';
import { defaultParams, hashPassword } from '../src/users/password.js';
import { parseUsersFile } from '../src/users/users-file.js';
import { captureIo } from '../../test/support/auth-cli.js';
import { cookieToken, startTestAuth } from '../../test/support/auth-service.js';
import { readSession } from '../../test/support/sessions.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'sg-users-file-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const HASH = await hashPassword('some-password', defaultParams(14));

function problems(text: string): string[] {
  const r = parseUsersFile(text);
  if (r.ok) throw new Error('expected problems');
  return r.problems.map((p) => `${p.line}:${p.col}: ${p.message}`);
}

describe('users file format', () => {
  it('accepts a valid file and an empty one', () => {
    const r = parseUsersFile(`version: 1\nusers:\n  ann:\n    roles: [user]\n    password: ${HASH}\n    profile: { name: Ann, age: 40, staff: true }\n`);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.users.get('ann')).toMatchObject({ name: 'ann', roles: ['user'], disabled: false, profile: { name: 'Ann', age: 40, staff: true } });
    expect(parseUsersFile('version: 1\nusers:\n').ok).toBe(true);
  });

  it('reports every problem with its line and column', () => {
    expect(problems('version: 1\nusers: [\n')[0]).toMatch(/^\d+:\d+: /);
    expect(problems(`version: 2\nusers: {}\nextra: 1\n`)).toEqual(['1:10: version: must be 1', '3:8: extra: is not a known setting']);
    expect(
      problems(
        [
          'version: 1',
          'users:',
          '  Bob:',
          '    roles: [user]',
          `    password: ${HASH}`,
          '  cat:',
          '    roles: [user, "has space"]',
          '    password: plain',
          '    profile: { sub: x, note: "a\\u0001b" }',
          '    colour: blue',
          '',
        ].join('\n'),
      ),
    ).toEqual([
      '3:3: users: "Bob" is not a user name (lower case a-z, 0-9 and . _ @ + -, at most 64, starting with a letter or digit)',
      '7:19: users.cat.roles.1: is not a role name ([A-Za-z0-9._:-], at most 64)',
      '8:15: users.cat.password: password is not a scrypt hash like $scrypt$ln=17,r=8,p=1$<salt>$<key> (set it with `sessiongate users set-password`)',
      '9:21: users.cat.profile.sub: "sub" is a reserved claim and cannot be a profile field',
      '9:30: users.cat.profile.note: "note" holds a control character',
      '10:13: users.cat.colour: is not a known setting',
    ]);
  });

  it('refuses a profile value holding a lone UTF-16 surrogate', () => {
    // YAML's double-quoted escapes can spell one; UTF-8 (and so a signed header) cannot carry it
    expect(problems(`version: 1\nusers:\n  ann:\n    roles: []\n    password: ${HASH}\n    profile: { name: "A\\ud800" }\n`)).toEqual([
      '6:22: users.ann.profile.name: "name" holds a lone UTF-16 surrogate (not valid Unicode text)',
    ]);
  });

  it('refuses hashes that would ask for absurd memory', () => {
    const huge = HASH.replace('ln=14', 'ln=22').replace('r=8', 'r=32');
    expect(problems(`version: 1\nusers:\n  ann:\n    roles: []\n    password: ${huge}\n`)[0]).toMatch(/out of range|more than 1 GiB/);
  });
});

describe('the service reloads the users file', () => {
  it('a user added while it runs can log in without a restart; an invalid edit keeps the old users', async () => {
    const t = await startTestAuth({ redisUrl: inject('redisUrl'), users: { rosa: { password: 'rosa-password', roles: ['user'] } } });
    try {
      expect((await t.login('sam', 'sam-password')).statusCode).toBe(401);
      expect(await usersCommand(['add', 'sam', '--roles', 'user'], captureIo(t.env, 'sam-password\n'))).toBe(0);
      await vi.waitFor(async () => expect((await t.login('sam', 'sam-password')).statusCode).toBe(204), { timeout: 5000 });

      const lastReload = async () => (await t.svc.metrics.usersLastReloadSuccessful.get()).values[0]?.value;
      expect(await lastReload()).toBe(1);

      const good = readFileSync(t.usersFile, 'utf8');
      writeFileSync(t.usersFile, `${good}\n  broken: [`);
      // give the watcher its chance; the users in force stay
      await vi.waitFor(async () => {
        const m = await t.svc.metrics.registry.getSingleMetricAsString('sessiongate_auth_users_reloads_total');
        expect(m).toMatch(/result="failure"} [1-9]/);
      });
      expect(await lastReload()).toBe(0);
      expect((await t.login('rosa', 'rosa-password')).statusCode).toBe(204);
      expect(t.svc.directory.ready()).toBe(true);
    } finally {
      await t.close();
    }
  });

  it('a hand edit of roles or disabled reaches live sessions too', async () => {
    const t = await startTestAuth({ redisUrl: inject('redisUrl'), users: { tom: { password: 'tom-password', roles: ['user'] }, uma: { password: 'uma-password', roles: ['user'] } } });
    try {
      const tom = cookieToken(await t.login('tom', 'tom-password'));
      const uma = cookieToken(await t.login('uma', 'uma-password'));
      const text = readFileSync(t.usersFile, 'utf8');
      const edited = text
        .replace(/(tom:\n\s+roles:\n\s+- user)/, '$1\n      - admin')
        .replace(/(uma:\n)/, '$1    disabled: true\n');
      expect(edited).not.toBe(text);
      writeFileSync(t.usersFile, edited);
      await vi.waitFor(async () => {
        expect((await readSession(t.store, sessionRef(tom)))?.roles).toEqual(['user', 'admin']);
        expect(await t.redis.exists(t.keys.session(sessionRef(uma)))).toBe(0);
      });
      expect(await t.svc.metrics.registry.getSingleMetricAsString('sessiongate_auth_sessions_revoked_total')).toMatch(/reason="disable"} 1/);
    } finally {
      await t.close();
    }
  });

  it('a file that does not exist yet makes the service not ready until it appears', async () => {
    const dir = path.join(tmp, 'later');
    mkdirSync(dir);
    const file = path.join(dir, 'users.yaml');
    const d = await FileUserDirectory.open(file, { scryptCost: 14, watch: true, debounceMs: 20 });
    try {
      expect(d.ready()).toBe(false);
      expect(await d.verify('vic', 'vic-password')).toEqual({ outcome: 'unknown_user' });
      expect(await usersCommand(['add', 'vic', '--roles', 'user'], captureIo({ SESSIONGATE_USERS: file, SESSIONGATE_SCRYPT_COST: '14' }, 'vic-password\n'))).toBe(0);
      await vi.waitFor(() => expect(d.ready()).toBe(true));
      expect(await d.verify('vic', 'vic-password')).toMatchObject({ outcome: 'ok', user: { name: 'vic', roles: ['user'] } });
      expect(await d.verify('vic', 'nope-nope')).toEqual({ outcome: 'wrong_password' });
    } finally {
      await d.close();
    }
  });

  it('checks unknown names against a dummy hash at the cost the file uses', async () => {
    const file = path.join(tmp, 'cost.yaml');
    writeFileSync(file, `version: 1\nusers:\n  wes:\n    roles: []\n    password: ${await hashPassword('wes-password', defaultParams(15))}\n    disabled: true\n`);
    const checked: string[] = [];
    const d = await FileUserDirectory.open(file, { scryptCost: 14, onCheck: (cost) => checked.push(cost) });
    try {
      expect(await d.verify('nobody', 'x-password')).toEqual({ outcome: 'unknown_user' });
      expect(await d.verify('wes', 'x-password')).toEqual({ outcome: 'wrong_password' });
      expect(await d.verify('wes', 'wes-password')).toMatchObject({ outcome: 'disabled' });
      // the file's only cost, not the configured one
      expect(checked).toEqual(['ln=15,r=8,p=1', 'ln=15,r=8,p=1', 'ln=15,r=8,p=1']);
    } finally {
      await d.close();
    }
  });
});
