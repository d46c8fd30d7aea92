import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { keysCommand } from '../src/cli/keys.js';
import { jwksPlugin } from '../src/identity/jwks.js';
import { generateKeySet, KeyConfigError, loadKeySet, parseKeySet, type KeySet } from '@sessiongate/session';
import { IdentityTooLarge, MAX_X_SESSION_BYTES, XSessionSigner, type IdentityClaims } from '../src/identity/signer.js';

const NOW = 1_700_000_000_123;
const CLAIMS: IdentityClaims = { sub: 'u-42', roles: ['user', 'analyst'], sid: 'sess-1' };

const tmp = mkdtempSync(join(tmpdir(), 'sg-identity-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function keySet(...jwks: JsonWebKeyLike[]): KeySet {
  return parseKeySet(JSON.stringify({ keys: jwks }), 'X_SESSION_KEYS');
}
type JsonWebKeyLike = Record<string, unknown>;

function newKey(alg: 'HS256' | 'EdDSA', kid: string): JsonWebKeyLike {
  return generateKeySet(alg, kid).keys[0] as JsonWebKeyLike;
}

function publicPart(jwk: JsonWebKeyLike): JsonWebKeyLike {
  const { d: _d, ...rest } = jwk;
  return rest;
}

/** The KeyConfigError thrown by `fn`, checked for its code. */
function keyError(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(KeyConfigError);
    expect((err as { code: string }).code).toBe('SG_ERR_INVALID_KEYS');
    return err as Error;
  }
  throw new Error('expected a KeyConfigError');
}

function payloadOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('X_SESSION_KEYS parsing', () => {
  it('refuses a missing value, naming the variable', () => {
    expect(keyError(() => loadKeySet(undefined)).message).toMatch(/^X_SESSION_KEYS is not set/);
    expect(keyError(() => loadKeySet('  ')).message).toMatch(/^X_SESSION_KEYS is not set/);
  });

  it('refuses bad JSON, naming X_SESSION_KEYS and where, never quoting the text', () => {
    const secret = 'TOPSECRET'.repeat(5);
    const err = keyError(() => loadKeySet(`{"keys":[{"kty":"oct","k":"${secret}" "kid":"a"}]}`));
    expect(err.message).toMatch(/^X_SESSION_KEYS: is not valid JSON \(syntax error at line 1, column \d+\)/);
    expect(err.message).not.toContain('TOPSECRET');
    // V8 quotes the input in "Unexpected token" messages: those must not get through either
    const quoted = keyError(() => loadKeySet(`{"keys": ${secret}}`));
    expect(quoted.message).toMatch(/^X_SESSION_KEYS: is not valid JSON/);
    expect(quoted.message).not.toContain('TOPSECRET');
  });

  it('refuses an HS256 secret shorter than 32 bytes, without echoing it', () => {
    const k = Buffer.alloc(16, 7).toString('base64url');
    const err = keyError(() => keySet({ kty: 'oct', k, kid: 'short', alg: 'HS256' }));
    expect(err.message).toBe(
      'X_SESSION_KEYS: keys[0] (kid "short"): the HS256 secret "k" is 16 bytes; at least 32 random bytes are required ' +
        '(create one with `sessiongate keys generate --alg HS256`)',
    );
    expect(err.message).not.toContain(k);
  });

  it('refuses a key without kid', () => {
    const { kid: _kid, ...noKid } = newKey('EdDSA', 'x');
    expect(keyError(() => keySet(noKid)).message).toBe(
      'X_SESSION_KEYS: keys[0] has no "kid": every key needs a unique, non-empty string kid (it names the key in the JWS header)',
    );
  });

  it('refuses duplicate kids', () => {
    expect(keyError(() => keySet(newKey('EdDSA', 'k1'), newKey('HS256', 'k2'), newKey('HS256', 'k1'))).message).toBe(
      'X_SESSION_KEYS: keys[2]: kid "k1" is already used by keys[0]; kids must be unique',
    );
  });

  it('refuses a first key that cannot sign, but accepts verification-only keys after it', () => {
    const old = publicPart(newKey('EdDSA', 'old'));
    expect(keyError(() => keySet(old, newKey('EdDSA', 'new'))).message).toBe(
      'X_SESSION_KEYS: keys[0] (kid "old") has no "d": the first key signs, so it needs its private part; ' +
        'verification-only keys may only follow it',
    );
    expect(keySet(newKey('EdDSA', 'new'), old).keys.map((k) => k.kid)).toEqual(['new', 'old']);
  });

  it('refuses an unknown kty or curve', () => {
    expect(keyError(() => keySet({ kty: 'RSA', kid: 'r', n: 'AQAB', e: 'AQAB' })).message).toBe(
      'X_SESSION_KEYS: keys[0] (kid "r"): kty "RSA" is not supported; use "oct" (HS256) or "OKP" with crv "Ed25519" (EdDSA)',
    );
    expect(keyError(() => keySet({ ...newKey('EdDSA', 'e'), crv: 'Ed448' })).message).toBe(
      'X_SESSION_KEYS: keys[0] (kid "e"): crv "Ed448" is not supported for kty "OKP"; only Ed25519 is',
    );
  });

  it('refuses an alg that contradicts the key type, and implies it when omitted', () => {
    expect(keyError(() => keySet({ ...newKey('HS256', 'h'), alg: 'HS512' })).message).toBe(
      'X_SESSION_KEYS: keys[0] (kid "h"): alg "HS512" is not supported for kty "oct"; only HS256 is',
    );
    const { alg: _a, ...hs } = newKey('HS256', 'h');
    const { alg: _b, ...ed } = newKey('EdDSA', 'e');
    expect(keySet(hs, ed).keys.map((k) => k.alg)).toEqual(['HS256', 'EdDSA']);
  });

  it('refuses a private key whose d does not belong to x', () => {
    const a = newKey('EdDSA', 'a');
    const b = newKey('EdDSA', 'b');
    const err = keyError(() => keySet({ ...a, x: b.x }));
    expect(err.message).toBe('X_SESSION_KEYS: keys[0] (kid "a"): "d" and "x" are not the same key pair');
    expect(err.message).not.toContain(a.d as string);
  });

  it('refuses malformed base64url and non-sets', () => {
    expect(keyError(() => keySet({ kty: 'oct', kid: 'h', k: 'a+b/'.repeat(12) })).message).toBe(
      'X_SESSION_KEYS: keys[0] (kid "h"): "k" must be base64url without padding',
    );
    expect(keyError(() => parseKeySet(JSON.stringify(newKey('EdDSA', 'e')), 'X_SESSION_KEYS')).message).toBe(
      'X_SESSION_KEYS: is a single JWK, not a JWK set: wrap it as {"keys":[ <the key> ]}',
    );
    expect(keyError(() => parseKeySet('{"keys":[]}', 'X_SESSION_KEYS')).message).toMatch(/^X_SESSION_KEYS: "keys" is empty/);
  });

  it('reads a file when the value is a path, and names a missing one', () => {
    const path = join(tmp, 'keys.json');
    writeFileSync(path, `\uFEFF${JSON.stringify({ keys: [newKey('EdDSA', 'from-file')] }, null, 2)}\n`);
    expect(loadKeySet(path).signing.kid).toBe('from-file');

    const missing = join(tmp, 'nope.json');
    expect(keyError(() => loadKeySet(missing)).message).toBe(
      `X_SESSION_KEYS names the file "${missing}", which does not exist; it must hold a JWK set (JSON)`,
    );
    writeFileSync(path, '{"keys": [');
    expect(keyError(() => loadKeySet(path)).message).toBe(
      `X_SESSION_KEYS (file "${path}"): is not valid JSON (it ends too early); it must be a JWK set, {"keys":[...]}`,
    );
  });

  it('does not echo a raw secret pasted instead of a JWK set', () => {
    const raw = Buffer.alloc(32, 9).toString('base64url');
    const err = keyError(() => loadKeySet(raw));
    expect(err.message).toMatch(/^X_SESSION_KEYS is neither a JWK set/);
    expect(err.message).not.toContain(raw);
  });

  it('publishes only the public parts of EdDSA keys', () => {
    const hs = newKey('HS256', 'hs');
    const ed = newKey('EdDSA', 'ed');
    const verifyOnly = publicPart(newKey('EdDSA', 'ed-old'));
    const set = keySet(hs, ed, verifyOnly);
    expect(set.publicJwks.keys.map((k) => k.kid)).toEqual(['ed', 'ed-old']);
    for (const jwk of set.publicJwks.keys) {
      expect(Object.keys(jwk).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x']);
      expect(jwk).toMatchObject({ alg: 'EdDSA', use: 'sig', kty: 'OKP', crv: 'Ed25519' });
    }
    const published = JSON.stringify(set.publicJwks);
    expect(published).not.toContain(hs.k as string);
    expect(published).not.toContain(ed.d as string);
    expect(published).not.toContain('"oct"');
    expect(Object.isFrozen(set.publicJwks.keys)).toBe(true);
  });

  it('round-trips generateKeySet through parseKeySet for both algorithms', () => {
    for (const alg of ['HS256', 'EdDSA'] as const) {
      const generated = generateKeySet(alg);
      const set = parseKeySet(JSON.stringify(generated), 'X_SESSION_KEYS');
      expect(set.signing.alg).toBe(alg);
      expect(set.signing.kid).toMatch(/^\d{4}-\d{2}-\d{2}-[0-9a-f]{8}$/);
      expect(set.signing.kid).toBe(generated.keys[0]!.kid);
    }
    expect(generateKeySet('EdDSA').keys[0]!.kid).not.toBe(generateKeySet('EdDSA').keys[0]!.kid);
  });
});

describe('XSessionSigner', () => {
  it('signs HS256 tokens a stock library verifies with the raw secret', async () => {
    const jwk = newKey('HS256', 'hs-1');
    const { token, expiresAtMs } = new XSessionSigner(keySet(jwk)).sign('orders', CLAIMS, NOW);

    expect(decodeProtectedHeader(token)).toEqual({ alg: 'HS256', typ: 'JWT', kid: 'hs-1' });
    const { payload } = await jwtVerify(token, Buffer.from(jwk.k as string, 'base64url'), {
      algorithms: ['HS256'],
      issuer: 'sessiongate',
      audience: 'orders',
      currentDate: new Date(NOW),
    });
    expect(payload).toEqual({
      iss: 'sessiongate',
      aud: 'orders',
      sub: 'u-42',
      roles: ['user', 'analyst'],
      sid: 'sess-1',
      iat: 1_700_000_000,
      exp: 1_700_000_060,
    });
    expect(payload.exp! - payload.iat!).toBe(60);
    expect(expiresAtMs).toBe(1_700_000_060_000);
  });

  it('signs EdDSA tokens a stock library verifies with the public JWKS', async () => {
    const set = keySet(newKey('EdDSA', 'ed-1'));
    const { token } = new XSessionSigner(set, { issuer: 'edge.example', ttlMs: 1_500 }).sign('reports', CLAIMS, NOW);

    expect(decodeProtectedHeader(token)).toEqual({ alg: 'EdDSA', typ: 'JWT', kid: 'ed-1' });
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(set.publicJwks as JSONWebKeySet), {
      algorithms: ['EdDSA'],
      issuer: 'edge.example',
      audience: 'reports',
      currentDate: new Date(NOW),
    });
    expect(protectedHeader.kid).toBe('ed-1');
    expect(payload).toMatchObject({ sub: 'u-42', roles: ['user', 'analyst'], sid: 'sess-1', iat: 1_700_000_000 });
    // 1.5 s rounds up to a whole second
    expect(payload.exp! - payload.iat!).toBe(2);
    await expect(
      jwtVerify(token, createLocalJWKSet(set.publicJwks as JSONWebKeySet), { currentDate: new Date(NOW + 3_000) }),
    ).rejects.toMatchObject({ code: 'ERR_JWT_EXPIRED' });
  });

  it('rotates: [new, old] signs with new, and tokens of the old key still verify', async () => {
    const oldKey = newKey('EdDSA', 'old');
    const newKey_ = newKey('EdDSA', 'new');
    const oldToken = new XSessionSigner(keySet(oldKey)).sign('orders', CLAIMS, NOW).token;

    const rotated = keySet(newKey_, publicPart(oldKey));
    const newToken = new XSessionSigner(rotated).sign('orders', CLAIMS, NOW).token;
    expect(decodeProtectedHeader(newToken).kid).toBe('new');

    const jwks = createLocalJWKSet(rotated.publicJwks as JSONWebKeySet);
    for (const token of [oldToken, newToken]) {
      await expect(jwtVerify(token, jwks, { audience: 'orders', currentDate: new Date(NOW) })).resolves.toBeTruthy();
    }
    // and a set that has dropped the old key no longer accepts it
    const dropped = createLocalJWKSet(keySet(newKey_).publicJwks as JSONWebKeySet);
    await expect(jwtVerify(oldToken, dropped, { currentDate: new Date(NOW) })).rejects.toMatchObject({
      code: 'ERR_JWKS_NO_MATCHING_KEY',
    });
  });

  it('puts extras first and never lets them override registered claims', async () => {
    const jwk = newKey('HS256', 'hs');
    const extra = {
      name: 'Ann',
      admin: true,
      n: 3,
      iss: 'evil',
      aud: 'everything',
      sub: 'root',
      roles: 'admin',
      sid: 'other',
      iat: 0,
      exp: 9_999_999_999,
      nbf: 9_999_999_999,
      jti: 'replay-me',
    };
    const { token } = new XSessionSigner(keySet(jwk)).sign('orders', { ...CLAIMS, extra }, NOW);
    const raw = payloadOf(token);
    expect(Object.keys(raw)).toEqual(['name', 'admin', 'n', 'iss', 'aud', 'sub', 'roles', 'sid', 'iat', 'exp']);
    const { payload } = await jwtVerify(token, Buffer.from(jwk.k as string, 'base64url'), { currentDate: new Date(NOW) });
    expect(payload).toEqual({
      name: 'Ann',
      admin: true,
      n: 3,
      iss: 'sessiongate',
      aud: 'orders',
      sub: 'u-42',
      roles: ['user', 'analyst'],
      sid: 'sess-1',
      iat: 1_700_000_000,
      exp: 1_700_000_060,
    });
  });

  it('refuses an identity whose token would exceed MAX_X_SESSION_BYTES, with a code', () => {
    for (const alg of ['HS256', 'EdDSA'] as const) {
      const signer = new XSessionSigner(keySet(newKey(alg, 'k')));
      const huge = { ...CLAIMS, extra: { bio: 'x'.repeat(MAX_X_SESSION_BYTES) } };
      expect(() => signer.sign('orders', huge, NOW)).toThrow(IdentityTooLarge);
      try {
        signer.sign('orders', huge, NOW);
      } catch (err) {
        expect(err).toMatchObject({ code: 'SG_ERR_IDENTITY_TOO_LARGE', statusCode: 500 });
      }

      // right at the edge: the size check predicts the real length exactly
      let longest = 0;
      for (let n = 5_900; n < 6_200; n++) {
        try {
          longest = signer.sign('orders', { ...CLAIMS, extra: { bio: 'x'.repeat(n) } }, NOW).token.length;
        } catch (err) {
          expect(err).toBeInstanceOf(IdentityTooLarge);
          break;
        }
      }
      expect(longest).toBeLessThanOrEqual(MAX_X_SESSION_BYTES);
      expect(longest).toBeGreaterThanOrEqual(MAX_X_SESSION_BYTES - 2);
    }
  });

  it('refuses a non-positive TTL', () => {
    expect(() => new XSessionSigner(keySet(newKey('HS256', 'h')), { ttlMs: 0 })).toThrow(/X_SESSION_TTL/);
  });
});

describe('JWKS endpoint', () => {
  it('serves the current public keys, following a key swap', async () => {
    let current = keySet(newKey('EdDSA', 'a'), newKey('HS256', 'h'));
    const app = Fastify();
    await app.register(jwksPlugin, { getKeys: () => current });

    const first = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
    expect(first.statusCode).toBe(200);
    expect(first.headers['content-type']).toMatch(/^application\/jwk-set\+json/);
    expect(first.headers['cache-control']).toBe('public, max-age=300');
    expect(first.json()).toEqual(current.publicJwks);

    // what an upstream does: verify an X-Session against the served set
    const { token } = new XSessionSigner(current).sign('orders', CLAIMS, NOW);
    const served = createLocalJWKSet(first.json<JSONWebKeySet>());
    await expect(jwtVerify(token, served, { currentDate: new Date(NOW) })).resolves.toBeTruthy();

    current = keySet(newKey('EdDSA', 'b'));
    const second = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
    expect(second.json<JSONWebKeySet>().keys.map((k) => k.kid)).toEqual(['b']);

    // HS256 only: a valid, empty set, never the secret
    current = keySet(newKey('HS256', 'only'));
    expect((await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json()).toEqual({ keys: [] });
    await app.close();
  });

  it('accepts a fixed KeySet and refuses to start without keys', async () => {
    const set = keySet(newKey('EdDSA', 'fixed'));
    const app = Fastify();
    await app.register(jwksPlugin, { keys: set });
    expect((await app.inject({ url: '/.well-known/jwks.json' })).json()).toEqual(set.publicJwks);
    await app.close();

    const broken = Fastify();
    broken.register(jwksPlugin, {} as never);
    await expect(broken.ready()).rejects.toMatchObject({ code: 'SG_ERR_INVALID_KEYS' });
    await broken.close();
  });
});

describe('sessiongate keys generate', () => {
  class Capture extends Writable {
    text = '';
    constructor(readonly isTTY = false) {
      super();
    }
    override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
      this.text += chunk.toString();
      done();
    }
  }

  async function run(argv: string[], tty = false) {
    const stdout = new Capture(tty);
    const stderr = new Capture();
    const code = await keysCommand(argv, { stdout, stderr });
    return { code, stdout: stdout.text, stderr: stderr.text };
  }

  it('prints one line of JWK set that loads as X_SESSION_KEYS (EdDSA by default)', async () => {
    const out = await run(['generate']);
    expect(out.code).toBe(0);
    expect(out.stdout.endsWith('\n')).toBe(true);
    expect(out.stdout.trimEnd()).not.toContain('\n');
    expect(out.stderr).toBe('');
    const set = loadKeySet(out.stdout);
    expect(set.signing.alg).toBe('EdDSA');
    expect(set.publicJwks.keys).toHaveLength(1);
  });

  it('honours --alg and --kid, and hints on stderr only for a terminal', async () => {
    const out = await run(['generate', '--alg', 'HS256', '--kid', 'k-2025'], true);
    expect(out.code).toBe(0);
    const set = loadKeySet(out.stdout);
    expect(set.signing).toMatchObject({ alg: 'HS256', kid: 'k-2025' });
    expect(out.stderr).toContain('X_SESSION_KEYS');
    expect(JSON.parse(out.stdout)).toEqual({ keys: [expect.objectContaining({ kty: 'oct', kid: 'k-2025' })] });
  });

  it('explains itself on --help', async () => {
    const out = await run(['generate', '--help']);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('Usage: sessiongate keys generate');
    expect(out.stdout).toContain('default: EdDSA');
    // rotation: published second first, signing only after upstreams have it, the auth service included
    expect(out.stdout).toMatch(/add it SECOND, after the key that signs today/);
    expect(out.stdout).toMatch(/every gateway AND the auth service/);
    expect(out.stdout.indexOf('SECOND')).toBeLessThan(out.stdout.indexOf('to the FRONT'));
    expect((await run(['--help'])).stdout).toContain('generate');
  });

  it('exits 2 on usage errors', async () => {
    const unknown = await run(['generate', '--force']);
    expect(unknown).toMatchObject({ code: 2, stdout: '' });
    expect(unknown.stderr).toContain("'--force'");
    expect((await run(['generate', '--alg', 'RS256'])).stderr).toContain('--alg must be EdDSA or HS256');
    expect((await run(['generate', '--alg', 'RS256'])).code).toBe(2);
    expect((await run(['generate', 'extra'])).code).toBe(2);
    expect((await run(['rotate'])).code).toBe(2);
    expect((await run([])).code).toBe(2);
  });
});
