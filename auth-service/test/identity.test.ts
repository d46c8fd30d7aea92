import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SettingError } from '@sessiongate/service-kit';
import { XSessionVerifier, loadVerificationKeys } from '../src/identity.js';
import { newKeysJson, startTestAuth, type TestAuth } from '../../test/support/auth-service.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'sg-auth-identity-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function settingError(fn: () => unknown): SettingError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SettingError);
    expect((err as SettingError).variable).toBe('X_SESSION_KEYS');
    return err as SettingError;
  }
  throw new Error('expected a SettingError');
}

function edKey(kid: string) {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return { privateKey, jwk: { kty: 'OKP', crv: 'Ed25519', x: jwk.x, d: jwk.d, kid, alg: 'EdDSA', use: 'sig' } };
}

describe('X_SESSION_KEYS', () => {
  it('is required, and never echoed when wrong', () => {
    expect(settingError(() => loadVerificationKeys(undefined)).message).toMatch(/^X_SESSION_KEYS: required/);
    const secret = 'S3CRET'.repeat(8);
    const bad = settingError(() => loadVerificationKeys(`{"keys":[{"kty":"oct","k":"${secret}" "kid":"a"}]}`));
    expect(bad.message).toMatch(/not valid JSON/);
    expect(bad.message).not.toContain('S3CRET');
    expect(settingError(() => loadVerificationKeys(secret)).message).not.toContain('S3CRET');
    expect(settingError(() => loadVerificationKeys(JSON.stringify({ keys: [{ kty: 'oct', k: 'c2hvcnQ', kid: 'a' }] }))).message).toMatch(/at least 32 random bytes are required/);
    expect(settingError(() => loadVerificationKeys('{"keys":[]}')).message).toMatch(/"keys" is empty/);
    expect(settingError(() => loadVerificationKeys(JSON.stringify({ keys: [{ kty: 'RSA', kid: 'r' }] }))).message).toMatch(/kty "RSA" is not supported/);
  });

  it('reads a file, keeps only public parts, and accepts only the algorithms present', () => {
    const ed = edKey('ed-1');
    const file = path.join(tmp, 'keys.json');
    writeFileSync(file, JSON.stringify({ keys: [ed.jwk] }));
    const keys = loadVerificationKeys(file);
    expect(keys.algorithms).toEqual(['EdDSA']);
    expect(keys.keys[0]!.key.type).toBe('public');
    expect(settingError(() => loadVerificationKeys(path.join(tmp, 'missing.json'))).message).toMatch(/missing\.json", which does not exist/);
  });
});

describe('X-Session verification', () => {
  const ed = edKey('ed-1');
  const hs = JSON.parse(newKeysJson('hs-1')).keys[0];
  const keys = loadVerificationKeys(JSON.stringify({ keys: [ed.jwk, hs] }));
  const verifier = new XSessionVerifier(keys, { issuer: 'sessiongate', audience: 'auth' });
  const iat = () => Math.floor(Date.now() / 1000);

  const sign = (o: { alg?: 'EdDSA' | 'HS256'; kid?: string | null; iss?: string; aud?: string; exp?: number; sub?: unknown; roles?: unknown } = {}) => {
    const alg = o.alg ?? 'EdDSA';
    const header: Record<string, unknown> = { alg, typ: 'JWT' };
    if (o.kid !== null) header.kid = o.kid ?? (alg === 'EdDSA' ? 'ed-1' : 'hs-1');
    const jwt = new SignJWT({ sub: o.sub ?? 'u1', roles: o.roles ?? ['user'], sid: 's1' } as Record<string, unknown>)
      .setProtectedHeader(header as { alg: string })
      .setIssuer(o.iss ?? 'sessiongate')
      .setAudience(o.aud ?? 'auth')
      .setIssuedAt(iat())
      .setExpirationTime(o.exp ?? iat() + 60);
    return alg === 'EdDSA' ? jwt.sign(ed.privateKey) : jwt.sign(Buffer.from(hs.k, 'base64url'));
  };

  it('accepts what the gateway signs, EdDSA or HS256', async () => {
    expect(await verifier.verify(await sign())).toEqual({ sub: 'u1', sid: 's1', roles: ['user'], amr: [] });
    expect(await verifier.verify(await sign({ alg: 'HS256' }))).toEqual({ sub: 'u1', sid: 's1', roles: ['user'], amr: [] });
    // without a kid, the only key of that algorithm is used
    expect((await verifier.verify(await sign({ kid: null }))).sub).toBe('u1');
  });

  it('refuses another audience, issuer, an expired token, an unknown kid, a forged signature', async () => {
    await expect(verifier.verify(await sign({ aud: 'orders' }))).rejects.toThrow(/aud/);
    await expect(verifier.verify(await sign({ iss: 'someone-else' }))).rejects.toThrow(/iss/);
    await expect(verifier.verify(await sign({ exp: iat() - 60 }))).rejects.toThrow(/exp/);
    await expect(verifier.verify(await sign({ kid: 'nope' }))).rejects.toThrow();
    const good = await sign();
    const forged = `${good.split('.').slice(0, 2).join('.')}.${randomBytes(64).toString('base64url')}`;
    await expect(verifier.verify(forged)).rejects.toThrow(/signature/);
    await expect(verifier.verify(await sign({ roles: 'admin' }))).rejects.toThrow(/roles/);
  });

  it('refuses an algorithm that is not in the set', async () => {
    const edOnly = new XSessionVerifier(loadVerificationKeys(JSON.stringify({ keys: [ed.jwk] })), { issuer: 'sessiongate', audience: 'auth' });
    await expect(edOnly.verify(await sign({ alg: 'HS256', kid: 'ed-1' }))).rejects.toThrow();
  });
});

describe('X-Session on the endpoints', () => {
  let t: TestAuth;
  beforeAll(async () => {
    t = await startTestAuth({ redisUrl: inject('redisUrl'), users: { xena: { password: 'xena-password', roles: ['user'] } } });
  });
  afterAll(() => t.close());

  it('an X-Session for another route, or from another key, is no session', async () => {
    const other = await t.xSession({ sub: 'xena', sid: 'x' }, { aud: 'orders' });
    const res = await t.svc.app.inject({ method: 'GET', url: '/auth/me', headers: { 'x-session': other } });
    expect(res.statusCode).toBe(401);
    expect(res.json().error).toBe('unauthenticated');
    const good = await t.xSession({ sub: 'xena', sid: 'x' });
    expect((await t.svc.app.inject({ method: 'GET', url: '/auth/me', headers: { 'x-session': good } })).statusCode).toBe(200);
    // two headers are ambiguous: never trusted
    const two = await t.svc.app.inject({ method: 'GET', url: '/auth/me', headers: { 'x-session': [good, good] } });
    expect(two.statusCode).toBe(401);
  });

  it('answers JSON errors for unknown endpoints', async () => {
    const res = await t.svc.app.inject({ method: 'GET', url: '/auth/nope?x=1' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: 'not_found', message: 'No endpoint GET /auth/nope' });
  });
});
