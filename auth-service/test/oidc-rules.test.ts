import { describe, expect, it } from 'vitest';
import { parseOidcFile, type OidcProviderConfig } from '../src/oidc/config.js';
import { admit, providerOfUserId, userIdFor } from '../src/oidc/rules.js';

// From verified ID token claims to a user id, roles and session claims.

function provider(rules: string, extra = ''): OidcProviderConfig {
  const c = parseOidcFile(
    `version: 1
base_url: https://app.example.com
providers:
  - id: corp
    display_name: Corp
    issuer: https://sso.example.com
    client_id: c
    client_secret_env: S
${extra}    rules:
${rules}`,
    '/oidc.yaml',
    { S: 'secret' },
  );
  if ('problems' in c) throw new Error(JSON.stringify(c.problems));
  return c.providers[0]!;
}

describe('mapping rules', () => {
  it('joins the roles of every matching rule; one_of and includes work on lists and strings', () => {
    const p = provider(`      - roles: [user]
        when: [{ claim: dept, one_of: [eng, ops] }]
      - roles: [admin, user]
        when: [{ claim: groups, includes: admins }]
      - roles: [auditor]
        when: [{ claim: groups, includes: audit }]
`);
    expect(admit(p, { sub: 's1', dept: 'eng', groups: ['admins'] })).toMatchObject({ admitted: true, roles: ['user', 'admin'] });
    expect(admit(p, { sub: 's1', dept: ['x', 'ops'], groups: 'audit' })).toMatchObject({ admitted: true, roles: ['user', 'auditor'] });
    expect(admit(p, { sub: 's1', dept: 'sales', groups: [] })).toEqual({ admitted: false, reason: 'no_rule' });
  });

  it('require must hold before any rule; email_domain needs a verified address', () => {
    const p = provider('      - roles: [user]\n        when: [{ email_domain: [Example.com] }]\n', '    require: [{ claim: email_verified, equals: true }]\n');
    expect(admit(p, { sub: 'a', email: 'a@EXAMPLE.com', email_verified: true })).toMatchObject({ admitted: true, roles: ['user'] });
    expect(admit(p, { sub: 'a', email: 'a@example.com', email_verified: 'true' })).toEqual({ admitted: false, reason: 'required_condition' });
    expect(admit(p, { sub: 'a', email: 'a@example.com.evil.test', email_verified: true })).toEqual({ admitted: false, reason: 'no_rule' });
    const noRequire = provider('      - roles: [user]\n        when: [{ email_domain: [example.com] }]\n');
    expect(admit(noRequire, { sub: 'a', email: 'a@example.com', email_verified: false })).toEqual({ admitted: false, reason: 'no_rule' });
  });

  it('copies the listed profile claims that fit a session, names those that do not, adds idp', () => {
    const p = provider('      - roles: []\n', '    claims: [name, email, locale]\n');
    const a = admit(p, { sub: 'x', name: 'N'.repeat(300), email: 'x@example.com', locale: 'en\u0000' });
    expect(a).toMatchObject({ admitted: true, roles: [], claims: { idp: 'corp', email: 'x@example.com' }, dropped: ['name', 'locale'] });
  });

  it('user ids are namespaced by provider, and hashed when the sub cannot be carried', () => {
    expect(userIdFor('corp', 'abc')).toBe('oidc:corp:abc');
    expect(userIdFor('other', 'abc')).not.toBe(userIdFor('corp', 'abc'));
    const long = userIdFor('corp', 'x'.repeat(300));
    expect(long).toMatch(/^oidc:corp#[A-Za-z0-9_-]{43}$/);
    expect(userIdFor('corp', 'a\nb')).toMatch(/^oidc:corp#/);
    expect(providerOfUserId(long)).toBe('corp');
    expect(providerOfUserId('oidc:corp:abc')).toBe('corp');
    expect(providerOfUserId('alice')).toBeNull();
  });
});
