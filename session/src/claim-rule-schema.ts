// The one schema of claim conditions and role rules, shared by the OpenID Connect file (the
// auth service) and the bearer JWT issuers file (the gateway), so both accept the same input.
import { Type, type Static } from '@sinclair/typebox';
import type { Condition, RoleRule } from './claim-rules.js';

const CLAIM_NAME_RE = '^[A-Za-z0-9_.:-]{1,64}$';
const ROLE_NAME_RE = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$';

const Scalar = Type.Union([Type.String({ maxLength: 256 }), Type.Number(), Type.Boolean()]);

/** One condition on a provider's claims. */
export const ClaimConditionSchema = Type.Union(
  [
    Type.Object({ claim: Type.String({ pattern: CLAIM_NAME_RE }), equals: Scalar }, { additionalProperties: false }),
    Type.Object({ claim: Type.String({ pattern: CLAIM_NAME_RE }), includes: Type.String({ minLength: 1, maxLength: 256 }) }, { additionalProperties: false }),
    Type.Object({ claim: Type.String({ pattern: CLAIM_NAME_RE }), one_of: Type.Array(Scalar, { minItems: 1, maxItems: 256 }) }, { additionalProperties: false }),
    Type.Object({ email_domain: Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { minItems: 1, maxItems: 256 }) }, { additionalProperties: false }),
  ],
  { errorMessage: 'must be { claim, equals }, { claim, includes }, { claim, one_of: [...] } or { email_domain: [...] }' },
);

/** A `require` or `when` list: every condition must hold. */
export const ClaimConditionsSchema = Type.Array(ClaimConditionSchema, { maxItems: 32, errorMessage: 'must be a list of conditions' });

/** One rule: its roles, granted when every `when` condition holds. */
export const ClaimRoleRuleSchema = Type.Object(
  {
    roles: Type.Array(Type.String({ pattern: ROLE_NAME_RE, errorMessage: 'is not a role name ([A-Za-z0-9._:-], at most 64)' }), {
      maxItems: 64,
      errorMessage: 'must be a list of role names (it may be empty)',
    }),
    when: Type.Optional(ClaimConditionsSchema),
  },
  { additionalProperties: false, errorMessage: 'must be a map with roles and optionally when' },
);

/** The most rules one provider or issuer may list. */
export const MAX_CLAIM_ROLE_RULES = 64;

export type ClaimConditionInput = Static<typeof ClaimConditionSchema>;
export type ClaimRoleRuleInput = Static<typeof ClaimRoleRuleSchema>;

/** The validated `require` and `rules` of one provider or issuer, frozen, each rule's roles once. */
export function claimRulesFrom(
  require: readonly ClaimConditionInput[] | undefined,
  rules: readonly ClaimRoleRuleInput[],
): { readonly require: readonly Condition[]; readonly rules: readonly RoleRule[] } {
  return {
    require: Object.freeze([...(require ?? [])]),
    rules: Object.freeze(rules.map((r) => Object.freeze({ roles: Object.freeze([...new Set(r.roles)]), when: Object.freeze([...(r.when ?? [])]) }))),
  };
}
