import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { LineCounter, isNode, parseDocument, type Node } from 'yaml';
import { SettingError } from '@sessiongate/service-kit';
import {
  ClaimConditionsSchema,
  ClaimRoleRuleSchema,
  MAX_CLAIM_ROLE_RULES,
  claimRulesFrom,
  type ClaimCondition as Condition,
  type ClaimRoleRule as RoleRule,
} from '@sessiongate/session';

// The identity providers whose access tokens `bearer_jwt` routes accept
// (SESSIONGATE_JWT_ISSUERS), version 1:
//
//   version: 1
//   issuers:
//     - id: corp                                   # users become jwt:corp:<sub>
//       issuer: https://sso.example.com/realms/corp
//       jwks_uri: https://sso.example.com/realms/corp/protocol/openid-connect/certs
//       audience: [orders-api]                     # the token's aud must name one of them
//       algorithms: [RS256]                        # only these; never "none" or HS*
//       require: [{ claim: azp, equals: ci }]      # optional: every condition must hold
//       rules:                                     # the roles of every matching rule
//         - roles: [user]
//         - roles: [admin]
//           when: [{ claim: groups, includes: platform-admins }]

const ID_RE = '^[a-z0-9][a-z0-9-]{0,31}$';
/** Signature algorithms a configuration may allow: asymmetric only, so the IdP's key set is public. */
export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

const IssuerSchema = Type.Object(
  {
    id: Type.String({ pattern: ID_RE, errorMessage: 'must be lower-case letters, digits and "-", at most 32' }),
    issuer: Type.String({ minLength: 1, maxLength: 512, errorMessage: 'must be the issuer, exactly as the tokens\' iss says it' }),
    jwks_uri: Type.String({ pattern: '^https?://', maxLength: 2048, errorMessage: 'must be the http(s) URL of the issuer\'s JWK set' }),
    audience: Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { minItems: 1, maxItems: 16, errorMessage: 'must be a non-empty list of audiences' }),
    algorithms: Type.Array(Type.Union(JWT_ALGORITHMS.map((a) => Type.Literal(a)), { errorMessage: `must be one of ${JWT_ALGORITHMS.join(', ')} (asymmetric only)` }), {
      minItems: 1,
      uniqueItems: true,
      errorMessage: `must be a non-empty list of ${JWT_ALGORITHMS.join(', ')}`,
    }),
    require: Type.Optional(ClaimConditionsSchema),
    rules: Type.Array(ClaimRoleRuleSchema, {
      minItems: 1,
      maxItems: MAX_CLAIM_ROLE_RULES,
      errorMessage: 'must be a non-empty list of rules (a token no rule matches is refused)',
    }),
  },
  { additionalProperties: false, errorMessage: 'must be a map with id, issuer, jwks_uri, audience, algorithms and rules' },
);
const FileSchema = Type.Object(
  {
    version: Type.Literal(1, { errorMessage: 'must be 1' }),
    issuers: Type.Array(IssuerSchema, { minItems: 1, maxItems: 16, errorMessage: 'must be a non-empty list of issuers' }),
  },
  { additionalProperties: false, errorMessage: 'must be a map with version: 1 and issuers' },
);

/** One issuer, validated. */
export interface JwtIssuer {
  readonly id: string;
  readonly issuer: string;
  readonly jwksUri: string;
  readonly audience: readonly string[];
  readonly algorithms: readonly string[];
  readonly require: readonly Condition[];
  readonly rules: readonly RoleRule[];
}

export interface JwtIssuerProblem {
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

/** Parses the text of an issuers file: the issuers, or every problem with its position. */
export function parseJwtIssuers(text: string): { issuers: readonly JwtIssuer[] } | { problems: JwtIssuerProblem[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number | undefined, message: string): JwtIssuerProblem => {
    const pos = lineCounter.linePos(offset ?? 0);
    return { line: pos.line, col: pos.col, message };
  };
  if (doc.errors.length) return { problems: doc.errors.map((e) => at(e.pos[0], e.message.split('\n')[0]!)) };
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { problems: [at(0, (err as Error).message)] };
  }
  const nodeAt = (segments: readonly (string | number)[]): Node | null => {
    for (let n = segments.length; n >= 0; n--) {
      const node = doc.getIn(segments.slice(0, n), true);
      if (isNode(node)) return node;
    }
    return isNode(doc.contents) ? doc.contents : null;
  };
  const problems: JwtIssuerProblem[] = [];
  const seen: string[] = [];
  for (const e of Value.Errors(FileSchema, data)) {
    const segments = e.path.split('/').slice(1).map((s) => (/^\d+$/.test(s) ? Number(s) : s.replace(/~1/g, '/').replace(/~0/g, '~')));
    // one message per place: a union or a missing member reports several
    const key = segments.join('/');
    if (seen.some((s) => key === s || key.startsWith(`${s}/`))) continue;
    seen.push(key);
    const custom = (e.schema as TSchema & { errorMessage?: string }).errorMessage;
    const message = e.message === 'Unexpected property' ? 'is not a known setting' : e.message === 'Expected required property' ? 'is required' : (custom ?? e.message);
    problems.push(at(nodeAt(segments)?.range?.[0], `${segments.length ? `${segments.join('.')}: ` : ''}${message}`));
  }
  if (problems.length) return { problems: problems.sort((a, b) => a.line - b.line || a.col - b.col) };
  const input = data as Static<typeof FileSchema>;
  const ids = new Set<string>();
  input.issuers.forEach((i, n) => {
    if (ids.has(i.id)) problems.push(at(nodeAt(['issuers', n, 'id'])?.range?.[0], `issuers.${n}.id: "${i.id}" is used twice`));
    ids.add(i.id);
  });
  if (problems.length) return { problems };
  return {
    issuers: Object.freeze(
      input.issuers.map((i) =>
        Object.freeze({
          id: i.id,
          issuer: i.issuer,
          jwksUri: i.jwks_uri,
          audience: Object.freeze([...i.audience]),
          algorithms: Object.freeze([...i.algorithms]),
          ...claimRulesFrom(i.require, i.rules),
        }),
      ),
    ),
  };
}

/**
 * Loads SESSIONGATE_JWT_ISSUERS (the path of an issuers file); none when unset.
 *
 * @throws SettingError naming SESSIONGATE_JWT_ISSUERS, with every problem's line and column.
 */
export function jwtIssuersFromEnv(env: NodeJS.ProcessEnv): readonly JwtIssuer[] {
  const value = env.SESSIONGATE_JWT_ISSUERS?.trim();
  if (!value) return [];
  const file = path.resolve(value);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SettingError('SESSIONGATE_JWT_ISSUERS', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const result = parseJwtIssuers(text);
  if ('problems' in result) {
    throw new SettingError('SESSIONGATE_JWT_ISSUERS', `${file} is not valid:\n${result.problems.map((p) => `${file}:${p.line}:${p.col}: ${p.message}`).join('\n')}`);
  }
  return result.issuers;
}
