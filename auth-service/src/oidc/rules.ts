import { createHash } from 'node:crypto';
import { MAX_ROLES, MAX_VALUE_LENGTH, UNSAFE_CHARS, rolesFromClaims } from '@sessiongate/session';
import type { OidcProviderConfig } from './config.js';

// From a provider's verified ID token claims to a sessiongate user: a user id namespaced by
// the provider, the roles of every rule that matches, and the profile claims the session
// may carry. Pure functions: the callback route does the I/O.


export type ProfileClaims = Record<string, string | number | boolean>;

export type Admission =
  | { readonly admitted: true; readonly sub: string; readonly roles: readonly string[]; readonly claims: ProfileClaims; readonly dropped: readonly string[] }
  | { readonly admitted: false; readonly reason: 'required_condition' | 'no_rule' };

/**
 * Our user id for a provider's `sub`: `oidc:<provider id>:<sub>`, or, when that would be too
 * long or hold characters a session cannot carry, `oidc:<provider id>#<sha256 of sub>`. A
 * password user's name can hold neither `:` nor `#`, and two providers have two ids, so no
 * two accounts can ever share one.
 */
export function userIdFor(providerId: string, sub: string): string {
  const plain = `oidc:${providerId}:${sub}`;
  if (plain.length <= MAX_VALUE_LENGTH && !UNSAFE_CHARS.test(sub)) return plain;
  return `oidc:${providerId}#${createHash('sha256').update(sub).digest('base64url')}`;
}

/** The provider id of a user id made by {@link userIdFor}, or null for any other user. */
export function providerOfUserId(userId: string): string | null {
  const m = /^oidc:([a-z0-9-]+)[:#]/.exec(userId);
  return m ? m[1]! : null;
}

/**
 * Decides whether a provider's user may sign in and with which roles: every `require`
 * condition must hold, then the roles of every matching rule are joined; no matching rule
 * means no sign-in. Profile claims that could not travel in a session are dropped (and named).
 */
export function admit(provider: OidcProviderConfig, claims: Readonly<Record<string, unknown>>): Admission {
  const granted = rolesFromClaims(provider.require, provider.rules, claims, MAX_ROLES);
  if ('refused' in granted) return { admitted: false, reason: granted.refused };
  const roles = granted.roles;
  const profile: ProfileClaims = { idp: provider.id };
  const dropped: string[] = [];
  for (const name of provider.profileClaims) {
    const v = claims[name];
    if (v === undefined) continue;
    const ok =
      (typeof v === 'string' && v.length > 0 && v.length <= MAX_VALUE_LENGTH && !UNSAFE_CHARS.test(v)) ||
      (typeof v === 'number' && Number.isFinite(v)) ||
      typeof v === 'boolean';
    if (ok) profile[name] = v as string | number | boolean;
    else dropped.push(name);
  }
  return { admitted: true, sub: userIdFor(provider.id, String(claims.sub)), roles, claims: profile, dropped };
}
