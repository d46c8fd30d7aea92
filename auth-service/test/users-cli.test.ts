import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { sessionRef } from '@sessiongate/session';
import { usersCommand } from '../src/cli.js';
import { parseHash, verifyPassword } from '../src/users/password.js';
import { parseUsersFile } from '../src/users/users-file.js';
import { captureIo, fakeTty } from '../../test/support/auth-cli.js';
import { TEST_SCRYPT_COST, cookieToken, startTestAuth, type TestAuth } from '../../test/support/auth-service.js';
import { freePort } from '../../test/support/redis-server.js';
import { readSession } from '../../test/support/sessions.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'sg-users-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function fileIn(name: string): string {
  return path.join(tmp, name, 'users.yaml');
}

function usersOf(file: string) {
  const r = parseUsersFile(readFileSync(file, 'utf8'));
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.users;
}

describe('sessiongate users: the file', () => {
  const dir = path.join(tmp, 'basic');
  const file = path.join(dir, 'users.yaml');
  const env = { SESSIONGATE_USERS: file, SESSIONGATE_SCRYPT_COST: TEST_SCRYPT_COST, REDIS_URL: 'redis://127.0.0.1:1' };

  // the directory exists, the file does not: `add` creates it
  beforeAll(() => mkdirSync(dir, { recursive: true }));

  it('add creates the file (mode 0600) with a scrypt hash of the piped password', async () => {
    const io = captureIo(env, 'kate-secret-pw\nignored second line\n');
    const code = await usersCommand(['add', 'kate', '--roles', 'user,editor', '--profile', 'name=Kate K', '--profile', 'email=kate@example.com'], io);
    expect(io.err()).toBe('');
    expect(code).toBe(0);
    expect(io.out()).toMatch(/added user kate \(roles: user, editor\)/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain('kate-secret-pw');
    const kate = usersOf(file).get('kate')!;
    expect(kate.roles).toEqual(['user', 'editor']);
    expect(kate.profile).toEqual({ name: 'Kate K', email: 'kate@example.com' });
    expect(kate.disabled).toBe(false);
    expect(text).toMatch(/password: \$scrypt\$ln=14,r=8,p=1\$/);
    expect(await verifyPassword('kate-secret-pw', kate.hash)).toBe(true);
    expect(await verifyPassword('ignored second line', kate.hash)).toBe(false);
  });

  it('add refuses an existing user, a bad name, bad roles and a short password', async () => {
    let io = captureIo(env, 'another-password\n');
    expect(await usersCommand(['add', 'kate'], io)).toBe(1);
    expect(io.err()).toMatch(/already exists/);
    io = captureIo(env, 'another-password\n');
    expect(await usersCommand(['add', 'Bad Name'], io)).toBe(2);
    expect(io.err()).toMatch(/is not a user name/);
    io = captureIo(env, 'another-password\n');
    expect(await usersCommand(['add', 'leo', '--roles', 'ok,not ok'], io)).toBe(2);
    expect(io.err()).toMatch(/is not a role name/);
    io = captureIo(env, 'another-password\n');
    expect(await usersCommand(['add', 'leo', '--profile', 'sub=leo'], io)).toBe(2);
    expect(io.err()).toMatch(/reserved claim/);
    io = captureIo(env, 'short\n');
    expect(await usersCommand(['add', 'leo'], io)).toBe(1);
    expect(io.err()).toMatch(/shorter than 8/);
    io = captureIo(env, '\n');
    expect(await usersCommand(['add', 'leo'], io)).toBe(1);
    expect(io.err()).toMatch(/no password/);
    expect(usersOf(file).has('leo')).toBe(false);
  });

  it('never takes a password as an argument', async () => {
    for (const argv of [
      ['add', 'leo', '--password', 'leo-password-1'],
      ['add', 'leo', '--password=leo-password-1'],
      ['set-password', 'kate', '--password', 'x-password-1'],
      ['add', 'leo', 'leo-password-1'],
      ['set-password', 'kate', 'x-password-1'],
    ]) {
      const io = captureIo(env, 'from-stdin-pass\n');
      expect(await usersCommand(argv, io)).toBe(2);
      expect(io.err()).toMatch(/never (taken )?(as|from) arguments|standard input/);
      // and the message does not repeat it
      expect(io.err()).not.toMatch(/leo-password-1|x-password-1/);
    }
    expect(usersOf(file).has('leo')).toBe(false);
  });

  it('prompts twice without echo when stdin is a terminal', async () => {
    const tty = fakeTty();
    const io = captureIo(env, tty);
    const done = usersCommand(['add', 'mia', '--roles', 'user'], io);
    await vi.waitFor(() => expect(io.err()).toContain('New password: '));
    tty.write('mia-pass');
    tty.write('\u007fs'); // a backspace, then the right letter
    tty.write('word\r');
    await vi.waitFor(() => expect(io.err()).toContain('Repeat password: '));
    tty.write('mia-password\r');
    expect(await done).toBe(0);
    expect(io.err()).not.toContain('mia-pass');
    expect(tty.rawModes).toEqual([true, false, true, false]);
    expect(await verifyPassword('mia-password', usersOf(file).get('mia')!.hash)).toBe(true);

    // two different passwords change nothing
    const tty2 = fakeTty();
    const io2 = captureIo(env, tty2);
    const done2 = usersCommand(['set-password', 'mia'], io2);
    await vi.waitFor(() => expect(io2.err()).toContain('New password: '));
    tty2.write('first-password\r');
    await vi.waitFor(() => expect(io2.err()).toContain('Repeat password: '));
    tty2.write('other-password\r');
    expect(await done2).toBe(1);
    expect(io2.err()).toMatch(/differ/);
    expect(await verifyPassword('mia-password', usersOf(file).get('mia')!.hash)).toBe(true);
  });

  it('set-password --keep-sessions replaces the hash and leaves Redis alone', async () => {
    const before = readFileSync(file, 'utf8');
    const io = captureIo(env, 'kate-new-password\n');
    expect(await usersCommand(['set-password', 'kate', '--keep-sessions'], io)).toBe(0);
    const kate = usersOf(file).get('kate')!;
    expect(await verifyPassword('kate-new-password', kate.hash)).toBe(true);
    expect(await verifyPassword('kate-secret-pw', kate.hash)).toBe(false);
    // the rest of the file (profile, the other users, comments) is kept
    expect(kate.profile).toEqual({ name: 'Kate K', email: 'kate@example.com' });
    expect(before).toContain('# sessiongate users');
    expect(readFileSync(file, 'utf8')).toContain('# sessiongate users');
  });

  it('list shows users, roles and status, never hashes', async () => {
    const io = captureIo(env);
    expect(await usersCommand(['list'], io)).toBe(0);
    expect(io.out()).toMatch(/^NAME\s+ROLES\s+STATUS\n/);
    expect(io.out()).toMatch(/kate\s+user,editor\s+active/);
    expect(io.out()).toMatch(/mia\s+user\s+active/);
    expect(io.out()).not.toContain('$scrypt$');
    const json = captureIo(env);
    expect(await usersCommand(['list', '--json'], json)).toBe(0);
    expect(JSON.parse(json.out())).toEqual({
      users: [
        { name: 'kate', roles: ['user', 'editor'], disabled: false, profile: { name: 'Kate K', email: 'kate@example.com' } },
        { name: 'mia', roles: ['user'], disabled: false, profile: {} },
      ],
    });
  });

  it('enable/disable: the file changes even when Redis is unreachable, with a warning and exit 1', async () => {
    const io = captureIo(env);
    expect(await usersCommand(['disable', 'mia'], io)).toBe(1);
    expect(io.out()).toMatch(/disabled user mia/);
    expect(io.err()).toMatch(/^warning: the users file is changed, but Redis \(redis:\/\/127\.0\.0\.1:1\) did not answer within 3 s/);
    expect(usersOf(file).get('mia')!.disabled).toBe(true);
    const enable = captureIo(env);
    expect(await usersCommand(['enable', 'mia'], enable)).toBe(0);
    expect(usersOf(file).get('mia')!.disabled).toBe(false);
    expect(readFileSync(file, 'utf8')).not.toMatch(/disabled/);
  });

  it('every subcommand has --help; usage errors exit 2', async () => {
    for (const sub of ['add', 'set-roles', 'disable', 'enable', 'set-password', 'list', 'remove']) {
      const io = captureIo(env);
      expect(await usersCommand([sub, '--help'], io)).toBe(0);
      expect(io.out()).toMatch(new RegExp(`^Usage: sessiongate users ${sub}`));
    }
    const help = captureIo(env);
    expect(await usersCommand(['--help'], help)).toBe(0);
    expect(help.out()).toMatch(/never from arguments/);
    const cases: [string[], RegExp][] = [
      [[], /Usage: sessiongate users <command>/],
      [['frobnicate'], /unknown command "frobnicate"/],
      [['add'], /missing NAME/],
      [['set-roles', 'kate'], /missing roles/],
      [['disable', 'kate', 'extra'], /unexpected argument/],
      [['list', '--bogus'], /Unknown option '--bogus'/],
    ];
    for (const [argv, message] of cases) {
      const io = captureIo(env);
      expect(await usersCommand(argv, io)).toBe(2);
      expect(io.err()).toMatch(message);
    }
    const missing = captureIo(env);
    expect(await usersCommand(['disable', 'nobody'], missing)).toBe(1);
    expect(missing.err()).toMatch(/no user "nobody"/);
  });

  it('refuses to edit an invalid file, naming the line', async () => {
    const bad = fileIn('bad');
    mkdirSync(path.dirname(bad), { recursive: true });
    writeFileSync(bad, 'version: 1\nusers:\n  zed:\n    roles: [user]\n    password: plain-text\n');
    const io = captureIo({ ...env, SESSIONGATE_USERS: bad });
    expect(await usersCommand(['set-roles', 'zed', 'admin'], io)).toBe(1);
    expect(io.err()).toContain(`${bad}:5:15: users.zed.password: password is not a scrypt hash`);
  });
});

describe('sessiongate users add: default hash parameters', () => {
  it('writes N=2^17, r=8, p=1 with a 16-byte salt and a 32-byte key', async () => {
    const file = path.join(tmp, 'default-cost.yaml');
    const io = captureIo({ SESSIONGATE_USERS: file }, 'default-cost-pw\n');
    expect(await usersCommand(['add', 'nia'], io)).toBe(0);
    const text = readFileSync(file, 'utf8');
    const stored = /password: (\S+)/.exec(text)![1]!;
    expect(stored).toMatch(/^\$scrypt\$ln=17,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    const h = parseHash(stored);
    if (typeof h === 'string') throw new Error(h);
    expect(h.salt).toHaveLength(16);
    expect(h.key).toHaveLength(32);
    expect(await verifyPassword('default-cost-pw', h)).toBe(true);
  });

  it('refuses SESSIONGATE_SCRYPT_COST below 14, naming it', async () => {
    const io = captureIo({ SESSIONGATE_USERS: path.join(tmp, 'cost.yaml'), SESSIONGATE_SCRYPT_COST: '10' }, 'some-password\n');
    expect(await usersCommand(['add', 'ola'], io)).toBe(1);
    expect(io.err()).toMatch(/SESSIONGATE_SCRYPT_COST: "10" is not a whole number from 14 to 20/);
  });
});

describe('sessiongate users: live sessions follow', () => {
  let t: TestAuth;
  beforeAll(async () => {
    t = await startTestAuth({
      redisUrl: inject('redisUrl'),
      users: { pat: { password: 'pat-password', roles: ['user'] }, quinn: { password: 'quinn-password', roles: ['user'] } },
    });
  });
  afterAll(() => t.close());

  const cli = (stdin?: string) => captureIo(t.env, stdin);

  it('set-roles updates the live sessions at once, keeping their expiry', async () => {
    const tokens = [cookieToken(await t.login('pat', 'pat-password')), cookieToken(await t.login('pat', 'pat-password'))];
    const keys = tokens.map((tk) => t.keys.session(sessionRef(tk)));
    const before = await Promise.all(keys.map((k) => t.redis.pttl(k)));
    const io = cli();
    expect(await usersCommand(['set-roles', 'pat', 'user,admin'], io)).toBe(0);
    expect(io.out()).toMatch(/updated roles of 2 live sessions/);
    for (const [i, tk] of tokens.entries()) {
      const record = (await readSession(t.store, sessionRef(tk)))!;
      expect(record.roles).toEqual(['user', 'admin']);
      const pttl = await t.redis.pttl(keys[i]!);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(before[i]!);
    }
    // no re-login needed: the same session is still valid, and /auth/me shows the new roles
    // once the service has reloaded the file (it watches it)
    const header = await t.xSessionFor(tokens[0]!);
    await vi.waitFor(async () => {
      const me = await t.svc.app.inject({ method: 'GET', url: '/auth/me', headers: { 'x-session': header } });
      expect(me.json()).toMatchObject({ sub: 'pat', roles: ['user', 'admin'] });
    });
  });

  it('disable ends every live session and stops logins', async () => {
    const tokens = [cookieToken(await t.login('quinn', 'quinn-password')), cookieToken(await t.login('quinn', 'quinn-password'))];
    const io = cli();
    expect(await usersCommand(['disable', 'quinn'], io)).toBe(0);
    expect(io.out()).toMatch(/ended 2 live sessions/);
    for (const tk of tokens) expect(await t.redis.exists(t.keys.session(sessionRef(tk)))).toBe(0);
    // once reloaded, the right password no longer logs in, with the same answer as a wrong one
    await vi.waitFor(async () => {
      const res = await t.login('quinn', 'quinn-password');
      expect(res.statusCode).toBe(401);
      expect(res.json().error).toBe('invalid_credentials');
    });
    const enable = cli();
    expect(await usersCommand(['enable', 'quinn'], enable)).toBe(0);
    await vi.waitFor(async () => expect((await t.login('quinn', 'quinn-password')).statusCode).toBe(204));
  });

  it('set-password ends live sessions; remove ends them and the user', async () => {
    const token = cookieToken(await t.login('pat', 'pat-password'));
    const io = cli('pat-new-password\n');
    expect(await usersCommand(['set-password', 'pat'], io)).toBe(0);
    expect(io.out()).toMatch(/ended [1-9]\d* live sessions?/);
    expect(await t.redis.exists(t.keys.session(sessionRef(token)))).toBe(0);
    await vi.waitFor(async () => expect((await t.login('pat', 'pat-new-password')).statusCode).toBe(204));
    const rm = cli();
    expect(await usersCommand(['remove', 'pat'], rm)).toBe(0);
    expect(rm.out()).toMatch(/removed user pat\nended 1 live session\n/);
    expect(await t.redis.exists(t.keys.userIndex('pat'))).toBe(0);
  });

  it('a Redis that does not answer leaves the file changed, warns and exits 1', async () => {
    const io = captureIo({ ...t.env, REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    expect(await usersCommand(['set-roles', 'quinn', 'user,auditor'], io)).toBe(1);
    expect(io.err()).toMatch(/warning: .*did not answer within 3 s.*live sessions of quinn still carry their old roles/s);
    expect(usersOf(t.usersFile).get('quinn')!.roles).toEqual(['user', 'auditor']);
  });
});
