import { decodeJwt } from 'jose';
import { describe, expect, it } from 'vitest';
import { RECORD_VERSION, generateKeySet, mintToken, parseKeySet, sessionRef } from '@sessiongate/session';
import { IdentityReuse } from '../src/identity/reuse.js';
import { XSessionSigner } from '../src/identity/signer.js';
import type { ResolvedSession } from '../src/session/resolver.js';

// The identity stage's reuse of signed X-Session headers: kept in the session's slot for half
// their lifetime, for at most `max` sessions (the oldest let go first), and never carried
// over to a record read afresh.

const T0 = 1_700_000_000_000;
const TTL = 60_000;

function signer(): XSessionSigner {
  const keys = parseKeySet(JSON.stringify(generateKeySet('HS256', 'k1')), 'X_SESSION_KEYS');
  return new XSessionSigner(keys, { ttlMs: TTL });
}

/** A session as the resolver hands it over, with an empty slot. */
function session(sub: string): ResolvedSession {
  const ref = sessionRef(mintToken(sub));
  const record = {
    v: RECORD_VERSION,
    sid: ref.sid,
    sub,
    roles: ['user'],
    createdAt: T0,
    absoluteExpiresAt: T0 + 3_600_000,
    idleTimeoutMs: 600_000,
    claims: {},
  };
  return { via: 'session', record, sid: ref.sid, ref, slot: { derived: undefined } };
}

describe('identity reuse', () => {
  it('reuses a signed header for half its lifetime, then signs a new one', () => {
    const reuse = new IdentityReuse(signer(), 10);
    const s = session('alice');
    const first = reuse.headerFor(s, 'orders', T0);
    expect(decodeJwt(first)).toMatchObject({ sub: 'alice', aud: 'orders', iat: T0 / 1000 });
    expect(reuse.headerFor(s, 'orders', T0 + TTL / 2 - 1000)).toBe(first);
    const next = reuse.headerFor(s, 'orders', T0 + TTL / 2 + 1000);
    expect(next).not.toBe(first);
    expect(decodeJwt(next).iat).toBe((T0 + TTL / 2 + 1000) / 1000);
    // each route has its own audience
    expect(decodeJwt(reuse.headerFor(s, 'reports', T0 + TTL / 2 + 1000)).aud).toBe('reports');
  });

  it('keeps signed headers for at most max sessions, the oldest let go first', () => {
    const reuse = new IdentityReuse(signer(), 2);
    const [a, b, c] = [session('a'), session('b'), session('c')];
    const signed = [a, b, c].map((s) => reuse.headerFor(s, 'orders', T0));
    // a second route of the same session takes no further place
    const cReports = reuse.headerFor(c, 'reports', T0);
    const later = T0 + 2000;
    expect(reuse.headerFor(b, 'orders', later)).toBe(signed[1]);
    expect(reuse.headerFor(c, 'orders', later)).toBe(signed[2]);
    expect(reuse.headerFor(c, 'reports', later)).toBe(cReports);
    // a let go of its header when c came: signed anew
    const again = reuse.headerFor(a, 'orders', later);
    expect(again).not.toBe(signed[0]);
    expect(decodeJwt(again).iat).toBe(later / 1000);
    expect(a.slot.derived).toBeDefined();
  });

  it('never reuses a header for a record read afresh (a new slot)', () => {
    const reuse = new IdentityReuse(signer(), 10);
    const s = session('alice');
    const first = reuse.headerFor(s, 'orders', T0);
    const reread = { ...s, slot: { derived: undefined } };
    const fresh = reuse.headerFor(reread, 'orders', T0 + 2000);
    expect(fresh).not.toBe(first);
    expect(decodeJwt(fresh).iat).toBe((T0 + 2000) / 1000);
  });
});
