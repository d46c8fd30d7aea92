// Roles from an identity provider's claims: the conditions and rules of OpenID Connect
// sign-in (the auth service) and of bearer JWTs (the gateway), evaluated the same way.
// Pure functions over already verified claims.

/** One condition on a provider's claims. */
export type Condition =
  | { readonly claim: string; readonly equals: string | number | boolean }
  | { readonly claim: string; readonly includes: string }
  | { readonly claim: string; readonly one_of: readonly (string | number | boolean)[] }
  | { readonly email_domain: readonly string[] };

/** The roles granted when every condition holds. */
export interface RoleRule {
  readonly roles: readonly string[];
  readonly when: readonly Condition[];
}

/** Whether every condition holds for these claims. */
export function allHold(conditions: readonly Condition[], claims: Readonly<Record<string, unknown>>): boolean {
  return conditions.every((c) => holds(c, claims));
}

function holds(c: Condition, claims: Readonly<Record<string, unknown>>): boolean {
  if ('email_domain' in c) {
    // an address the provider did not verify proves nothing about its domain
    if (claims.email_verified !== true || typeof claims.email !== 'string') return false;
    const at = claims.email.lastIndexOf('@');
    if (at < 1) return false;
    const domain = claims.email.slice(at + 1).toLowerCase();
    return c.email_domain.some((d) => d.toLowerCase() === domain);
  }
  const value = claims[c.claim];
  if ('equals' in c) return value === c.equals;
  if ('includes' in c) return Array.isArray(value) ? value.includes(c.includes) : value === c.includes;
  const values = Array.isArray(value) ? value : [value];
  return values.some((v) => c.one_of.includes(v as string | number | boolean));
}

/**
 * The roles these claims earn: null when a `require` condition fails or no rule matches
 * (no entry), else the roles of every matching rule, joined, at most `max`.
 */
export function rolesFromClaims(
  require: readonly Condition[],
  rules: readonly RoleRule[],
  claims: Readonly<Record<string, unknown>>,
  max: number,
): { readonly roles: readonly string[] } | { readonly refused: 'required_condition' | 'no_rule' } {
  if (!allHold(require, claims)) return { refused: 'required_condition' };
  const matching = rules.filter((r) => allHold(r.when, claims));
  if (matching.length === 0) return { refused: 'no_rule' };
  return { roles: [...new Set(matching.flatMap((r) => r.roles))].slice(0, max) };
}
