import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { gatewayConfigFromEnv } from '../gateway/src/settings.js';
import { routesYaml, startTestGateway, type TestGateway } from './support/gateway.js';
import { startUpstream, type Upstream } from './support/upstream.js';

// Access tokens of an identity provider on `bearer_jwt` routes: verified against the
// issuer's JWK set served by a real HTTP server, with iss, aud, exp and the algorithm
// allow-list enforced, and roles from the same rules as OIDC sign-in.

const ISSUER = 'https://idp.test/realms/corp';

function payloadOf(jws: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('bearer JWTs from a configured issuer', () => {
  let up: Upstream;
  let t: TestGateway;
  let jwks: http.Server;
  let dir: string;
  let rsa: { privateKey: CryptoKey; publicKey: CryptoKey };
  let ec: { privateKey: CryptoKey; publicKey: CryptoKey };
  const logs: string[] = [];

  beforeAll(async () => {
    rsa = await generateKeyPair('RS256');
    ec = await generateKeyPair('ES256');
    const keys = [
      { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
      { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
    ];
    jwks = http.createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
    dir = mkdtempSync(path.join(tmpdir(), 'sg-jwt-'));
    const file = path.join(dir, 'jwt-issuers.yaml');
    writeFileSync(
      file,
      `version: 1
issuers:
  - id: corp
    issuer: ${ISSUER}
    jwks_uri: http://127.0.0.1:${(jwks.address() as AddressInfo).port}/certs
    audience: [orders-api]
    algorithms: [RS256]
    require: [{ claim: azp, equals: ci }]
    rules:
      - roles: [user]
      - roles: [admin]
        when: [{ claim: groups, includes: platform-admins }]
`,
    );
    up = await startUpstream('svc');
    const routes = routesYaml(
      { public: up.url },
      `  - name: api
    prefix: /api
    upstream: ${up.url}
    roles: [user]
    credentials: [cookie, api_key, bearer_jwt]
    methods:
      DELETE: { roles: [admin] }
  - name: keys-only
    prefix: /keys-only
    upstream: ${up.url}
    credentials: [api_key]
`,
    );
    const logStream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(chunk.toString());
        cb();
      },
    });
    t = await startTestGateway({ redisUrl: inject('redisUrl'), routes, env: { SESSIONGATE_JWT_ISSUERS: file }, logStream });
  }, 30_000);

  afterAll(async () => {
    await t?.close();
    await up?.close();
    await new Promise((r) => jwks?.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  type Claims = Record<string, unknown>;
  async function token(claims: Claims = {}, o: { alg?: string; kid?: string; key?: CryptoKey | Uint8Array; iss?: string; aud?: string; exp?: number } = {}): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ azp: 'ci', ...claims })
      .setProtectedHeader({ alg: o.alg ?? 'RS256', kid: o.kid ?? 'rsa-1' })
      .setIssuer(o.iss ?? ISSUER)
      .setAudience(o.aud ?? 'orders-api')
      .setSubject('build-bot')
      .setIssuedAt(now)
      .setExpirationTime(o.exp ?? now + 300)
      .sign(o.key ?? rsa.privateKey);
  }

  let ip = 0;
  const call = (method: 'GET' | 'DELETE', url: string, jwt: string) =>
    t.gw.app.inject({ method, url, headers: { authorization: `Bearer ${jwt}` }, remoteAddress: `10.2.0.${++ip}` });

  it('a valid token passes with roles from the rules; X-Session says amr jwt; the token never reaches the upstream', async () => {
    const jwt = await token({ groups: ['platform-admins'] });
    up.clear();
    const res = await call('DELETE', '/api/jobs/1', jwt);
    expect(res.statusCode, res.body).toBe(200);
    const rec = up.last();
    expect(rec.headers.authorization).toBeUndefined();
    expect(payloadOf(rec.headers['x-session'] as string)).toMatchObject({ sub: 'jwt:corp:build-bot', roles: ['user', 'admin'], amr: ['jwt'], idp: 'corp' });
    // without the group: a user, not an admin
    expect((await call('DELETE', '/api/jobs/1', await token())).statusCode).toBe(403);
    expect((await call('GET', '/api/jobs/1', await token())).statusCode).toBe(200);
  });

  it('a wrong algorithm, issuer, audience, key id or signature, an expired token, or one no rule admits: 401', async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: Record<string, string> = {
      'alg not allowed (ES256, a key of the set)': await token({}, { alg: 'ES256', kid: 'ec-1', key: ec.privateKey }),
      'alg HS256': await token({}, { alg: 'HS256', key: new Uint8Array(32).fill(7) }),
      'alg none': `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: ISSUER, aud: 'orders-api', sub: 'x', exp: now + 60 })).toString('base64url')}.`,
      'wrong iss': await token({}, { iss: 'https://evil.test' }),
      'wrong aud': await token({}, { aud: 'other-api' }),
      'unknown kid': await token({}, { kid: 'nope' }),
      expired: await token({}, { exp: now - 60 }),
      'required condition fails': await token({ azp: 'someone-else' }),
      'signature of another key': await token({}, { key: (await generateKeyPair('RS256')).privateKey }),
    };
    for (const [what, jwt] of Object.entries(cases)) {
      const res = await call('GET', '/api/x', jwt);
      expect(res.statusCode, what).toBe(401);
      expect(res.json().error, what).toBe('invalid_credentials');
      expect(logs.join(''), what).not.toContain(jwt.split('.')[2] || jwt);
    }
  });

  it('a route that does not list bearer_jwt refuses JWTs', async () => {
    expect((await call('GET', '/keys-only/x', await token())).statusCode).toBe(401);
    expect((await call('GET', '/admin/x', await token())).statusCode).toBe(401);
  });

  it('an invalid issuers file stops the gateway at boot, naming the line and column', () => {
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, `version: 1\nissuers:\n  - id: corp\n    issuer: ${ISSUER}\n    jwks_uri: http://x/certs\n    audience: [a]\n    algorithms: [HS256]\n    rules: [{ roles: [user] }]\n`);
    expect(() => gatewayConfigFromEnv({ REDIS_URL: 'redis://127.0.0.1:1', X_SESSION_KEYS: t.keysJson, SESSIONGATE_JWT_ISSUERS: bad })).toThrow(
      /bad\.yaml:7:18: issuers\.0\.algorithms\.0: .*RS256/,
    );
  });
});
