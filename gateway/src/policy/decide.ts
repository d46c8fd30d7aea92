import type { MethodRule, RoleRule } from '../routes/types.js';

// The policy decides and knows nothing of transport: it sees a rule and the session's
// roles, and says allow, unauthenticated or forbidden.

export type Decision = 'allow' | 'unauthenticated' | 'forbidden';

/** Whether `roles` satisfies a role rule (any one of, or all of). */
function rolesSatisfy(rule: RoleRule, roles: readonly string[]): boolean {
  if ('all' in rule) return rule.all.every((r) => roles.includes(r));
  return rule.any.some((r) => roles.includes(r));
}

/**
 * The decision for one request. `roles` is null when there is no valid session.
 * `auth: none` and `optional` admit everyone; `required` needs a session and, when the rule
 * names roles, one (or all) of them.
 */
export function decide(rule: MethodRule, roles: readonly string[] | null): Decision {
  if (rule.auth !== 'required') return 'allow';
  if (roles === null) return 'unauthenticated';
  if (rule.roles && !rolesSatisfy(rule.roles, roles)) return 'forbidden';
  return 'allow';
}
