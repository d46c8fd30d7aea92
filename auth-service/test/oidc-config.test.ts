import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { authConfigFromEnv } from '../src/config.js';
import { parseOidcFile } from '../src/oidc/config.js';
import { startTestAuth, newKeysJson, writeUsersFile } from '../../test/support/auth-service.js';
import { deadPort } from '../../test/support/oidc-provider.js';

// The OIDC file is checked at start, every problem named with file:line:column and never a
// secret; a provider that is down gives a clear page while password sign-in goes on; password
// sign-in can be switched off.

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sg-oidc-config-'));
  writeFileSync(path.join(dir, 'secret'), 'super-secret-value\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const good = (issuer = 'https://sso.example.com/realms/corp', extra = '') => `version: 1
base_url: https://app.example.com
providers:
  - id: corp
    display_name: Corp SSO
    issuer: ${issuer}
    client_id: sessiongate
    client_secret_file: secret
    rules:
      - roles: [user]
${extra}`;

describe('the OIDC file', () => {
  it('a good file gives frozen providers with their redirect URIs and the secret read', () => {
    const c = parseOidcFile(good(), path.join(dir, 'oidc.yaml'), {});
    if ('problems' in c) throw new Error(JSON.stringify(c.problems));
    expect(c.passwordLogin).toBe(true);
    expect(c.providers[0]).toMatchObject({
      id: 'corp',
      clientSecret: 'super-secret-value',
      scopes: ['openid', 'email', 'profile'],
      redirectUri: 'https://app.example.com/auth/oidc/corp/callback',
      postLogoutRedirectUri: 'https://app.example.com/auth/login',
    });
    expect(Object.isFrozen(c.providers[0])).toBe(true);
  });

  it('names each problem with its line and column', () => {
    const text = `version: 1
base_url: https://app.example.com/some/path
providers:
  - id: Corp!
    display_name: Corp SSO
    issuer: http://sso.example.com
    client_id: sessiongate
    client_secret_env: NOT_SET_ANYWHERE
    colour: blue
    rules:
      - roles: [user]
        when: [{ claim: groups, contains: admins }]
`;
    const r = parseOidcFile(text, path.join(dir, 'oidc.yaml'), {});
    expect('problems' in r).toBe(true);
    const lines = (r as { problems: { line: number; col: number; message: string }[] }).problems.map((p) => `${p.line}:${p.col}: ${p.message}`);
    expect(lines).toContain('4:9: providers.0.id: must be lower-case letters, digits and "-", at most 32');
    expect(lines).toContain('9:5: providers.0.colour: is not a known setting');
    expect(lines.some((l) => l.startsWith('12:16: providers.0.rules.0.when.0: must be { claim, equals }'))).toBe(true);
  });

  it('semantic problems: origin only, https, a secret that cannot be had, openid scope', () => {
    const text = good('http://sso.example.com', '    scopes: [email]\n').replace('client_secret_file: secret', 'client_secret_env: CORP_SECRET').replace('https://app.example.com', 'https://app.example.com/x');
    const r = parseOidcFile(text, path.join(dir, 'oidc.yaml'), {}) as { problems: { line: number; col: number; message: string }[] };
    const lines = r.problems.map((p) => `${p.line}:${p.col}: ${p.message}`);
    expect(lines).toEqual([
      '2:11: base_url: must be an origin only (scheme, host and port), without a path',
      '6:13: providers.0.issuer: must be an https: URL (http: only on localhost, 127.0.0.1 or [::1])',
      '8:24: providers.0.client_secret_env: the variable CORP_SECRET is not set',
      '11:13: providers.0.scopes: must include openid',
    ]);
  });

  it('refuses to start with file:line:column in the message, and never shows the secret', () => {
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, good().replace('display_name: Corp SSO', 'display_name: ""').replace('client_secret_file: secret', 'client_secret_env: S'));
    let message = '';
    try {
      authConfigFromEnv({ REDIS_URL: 'redis://127.0.0.1:1', X_SESSION_KEYS: newKeysJson(), SESSIONGATE_OIDC: file });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain(`SESSIONGATE_OIDC: ${file} is not valid:`);
    expect(message).toContain(`${file}:5:19: providers.0.display_name: must be a name of 1 to 64 characters`);
    // fixed, the next run names the secret that cannot be used, and not its value
    writeFileSync(file, good().replace('client_secret_file: secret', 'client_secret_env: S'));
    try {
      authConfigFromEnv({ REDIS_URL: 'redis://127.0.0.1:1', X_SESSION_KEYS: newKeysJson(), SESSIONGATE_OIDC: file, S: `line one\n${'x'.repeat(40)}` });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain(`${file}:8:24: providers.0.client_secret_env: the client secret must be one line of at most 4096 bytes`);
    expect(message).not.toContain('line one');
    expect(message).not.toContain('xxxxxxxx');
  });
});

describe('a provider that is down, and password sign-in switched off', () => {
  const redisUrl = () => inject('redisUrl');

  it('a provider on a dead port: a 502 page and a log line; password sign-in still works', async () => {
    const file = path.join(dir, 'down.yaml');
    writeFileSync(file, good(`http://127.0.0.1:${await deadPort()}`));
    let logs = '';
    const logStream = new Writable({ write: (c, _e, cb) => ((logs += c.toString()), cb()) });
    const auth = await startTestAuth({ redisUrl: redisUrl(), users: { pat: { password: 'pat-password', roles: ['user'] } }, env: { SESSIONGATE_OIDC: file }, logStream });
    try {
      const res = await auth.svc.app.inject({ url: '/auth/oidc/corp/start?next=%2Fapp', headers: { accept: 'text/html' } });
      expect(res.statusCode).toBe(502);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.body).toContain('Corp SSO cannot be reached right now.');
      expect(res.body).toContain('href="/auth/login?next=%2Fapp"');
      expect(res.headers['set-cookie']).toBeUndefined();
      expect(logs).toMatch(/"provider":"corp","outcome":"unreachable","reason":"discovery: ECONNREFUSED/);
      expect((await auth.login('pat', 'pat-password')).statusCode).toBe(204);
      // the sign-out page does not hang on it either
      const out = await auth.svc.app.inject({ url: '/auth/oidc/corp/signed-out' });
      expect(out.statusCode).toBe(200);
      expect(out.body).toContain('You are signed out.');
    } finally {
      await auth.close();
    }
  });

  it('password_login: false hides the form and refuses POST /auth/login', async () => {
    const file = path.join(dir, 'nopw.yaml');
    writeFileSync(file, good().replace('providers:', 'password_login: false\nproviders:'));
    const usersFile = await writeUsersFile({ pat: { password: 'pat-password', roles: ['user'] } });
    const auth = await startTestAuth({ redisUrl: redisUrl(), usersFile, env: { SESSIONGATE_OIDC: file } });
    try {
      const page = await auth.svc.app.inject({ url: '/auth/login?next=%2Fapp' });
      expect(page.statusCode).toBe(200);
      expect(page.body).not.toContain('<form');
      expect(page.body).toContain('<a class="provider" href="/auth/oidc/corp/start?next=%2Fapp">Sign in with Corp SSO</a>');
      const res = await auth.login('pat', 'pat-password');
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ error: 'password_login_disabled' });
      expect(res.headers['set-cookie']).toBeUndefined();
    } finally {
      await auth.close();
      rmSync(path.dirname(usersFile), { recursive: true, force: true });
    }
  });
});
