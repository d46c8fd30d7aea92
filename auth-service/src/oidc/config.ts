import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { LineCounter, isMap, isNode, isScalar, parseDocument, type Node } from 'yaml';
import { SettingError } from '@sessiongate/service-kit';
import {
  ClaimConditionsSchema,
  ClaimRoleRuleSchema,
  MAX_CLAIM_ROLE_RULES,
  RESERVED_CLAIMS,
  claimRulesFrom,
  type ClaimCondition as Condition,
  type ClaimRoleRule as RoleRule,
} from '@sessiongate/session';
import { PROFILE_KEY_RE } from '../users/users-file.js';

// The OpenID Connect file (SESSIONGATE_OIDC), version 1:
//
//   version: 1
//   base_url: https://app.example.com     # the gateway's public origin
//   password_login: true                  # optional: false hides and refuses the password form
//   providers:
//     - id: corp
//       display_name: Corp SSO
//       issuer: https://sso.example.com/realms/corp
//       client_id: sessiongate
//       client_secret_file: /run/secrets/corp-oidc   # or client_secret_env: CORP_OIDC_SECRET
//       scopes: [openid, email, profile]              # optional
//       claims: [name, email]                         # optional: copied into the session
//       require:                                      # optional: every condition must hold
//         - { claim: email_verified, equals: true }
//       rules:                                        # the roles of every matching rule
//         - roles: [user]
//           when: [{ email_domain: [example.com] }]
//         - roles: [admin]
//           when: [{ claim: groups, includes: platform-admins }]

export const OIDC_FILE_VERSION = 1;
export const PROVIDER_ID_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** Scopes asked for when a provider names none. @default ['openid', 'email', 'profile'] */
export const DEFAULT_SCOPES: readonly string[] = Object.freeze(['openid', 'email', 'profile']);
/** ID token claims copied into the session when a provider names none. @default ['name', 'email'] */
export const DEFAULT_PROFILE_CLAIMS: readonly string[] = Object.freeze(['name', 'email']);
/** Longest client secret read from a file or the environment. */
const MAX_SECRET_BYTES = 4096;
const SCOPE_RE = /^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

const ProviderSchema = Type.Object(
  {
    id: Type.String({ pattern: PROVIDER_ID_RE.source, errorMessage: 'must be lower-case letters, digits and "-", at most 32' }),
    display_name: Type.String({ minLength: 1, maxLength: 64, errorMessage: 'must be a name of 1 to 64 characters' }),
    issuer: Type.String({ minLength: 1, errorMessage: 'must be the issuer URL' }),
    client_id: Type.String({ minLength: 1, maxLength: 256, errorMessage: 'must be the client id registered at the provider' }),
    client_secret_file: Type.Optional(Type.String({ minLength: 1, errorMessage: 'must be the path of a file holding the secret' })),
    client_secret_env: Type.Optional(Type.String({ pattern: ENV_NAME_RE.source, errorMessage: 'must be the name of an environment variable' })),
    scopes: Type.Optional(Type.Array(Type.String({ pattern: SCOPE_RE.source }), { minItems: 1, maxItems: 32, errorMessage: 'must be a list of scopes' })),
    claims: Type.Optional(Type.Array(Type.String(), { maxItems: 32, errorMessage: 'must be a list of claim names' })),
    require: Type.Optional(ClaimConditionsSchema),
    rules: Type.Array(ClaimRoleRuleSchema, { minItems: 1, maxItems: MAX_CLAIM_ROLE_RULES, errorMessage: 'must be a non-empty list of rules (a user no rule matches may not sign in)' }),
  },
  { additionalProperties: false, errorMessage: 'must be a map with id, display_name, issuer, client_id, a client secret and rules' },
);
export const OidcFileSchema = Type.Object(
  {
    version: Type.Literal(OIDC_FILE_VERSION, { errorMessage: `must be ${OIDC_FILE_VERSION}` }),
    base_url: Type.String({ minLength: 1, errorMessage: "must be the gateway's public origin, e.g. https://app.example.com" }),
    password_login: Type.Optional(Type.Boolean({ errorMessage: 'must be true or false' })),
    providers: Type.Array(ProviderSchema, { minItems: 1, maxItems: 16, errorMessage: 'must be a non-empty list of providers' }),
  },
  { additionalProperties: false, errorMessage: 'must be a map with version, base_url and providers' },
);

export type { ClaimCondition as Condition, ClaimRoleRule as RoleRule } from '@sessiongate/session';

/** One provider, validated, with its secret read. */
export interface OidcProviderConfig {
  readonly id: string;
  readonly displayName: string;
  readonly issuer: string;
  readonly clientId: string;
  /** Never logged, never shown: only sent to the provider's token endpoint. */
  readonly clientSecret: string;
  readonly scopes: readonly string[];
  readonly profileClaims: readonly string[];
  readonly require: readonly Condition[];
  readonly rules: readonly RoleRule[];
  /** `${base_url}/auth/oidc/${id}/callback`: register it at the provider. */
  readonly redirectUri: string;
  /** `${base_url}/auth/login`: where the provider sends the browser after its logout. */
  readonly postLogoutRedirectUri: string;
}

export interface OidcConfig {
  readonly file: string;
  readonly baseUrl: string;
  readonly passwordLogin: boolean;
  readonly providers: readonly OidcProviderConfig[];
}

interface Problem {
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

/**
 * Reads and validates the OIDC file. Every problem names `file:line:column`; secrets are read
 * here (from their file or variable) and never appear in a message.
 *
 * @throws SettingError naming SESSIONGATE_OIDC, one line per problem.
 */
export function loadOidcFile(file: string, env: NodeJS.ProcessEnv): OidcConfig {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8').replace(/^\uFEFF/, '');
  } catch (err) {
    throw new SettingError('SESSIONGATE_OIDC', `${abs} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const result = parseOidcFile(text, abs, env);
  if ('problems' in result) {
    throw new SettingError('SESSIONGATE_OIDC', `${abs} is not valid:\n${result.problems.map((p) => `${abs}:${p.line}:${p.col}: ${p.message}`).join('\n')}`);
  }
  return result;
}

/** Parses the text of an OIDC file; `file` anchors relative secret files and is kept as the source. */
export function parseOidcFile(text: string, file: string, env: NodeJS.ProcessEnv): OidcConfig | { problems: Problem[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number | undefined, message: string): Problem => {
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
  const problems: Problem[] = [];
  // an unknown setting is reported at its key, everything else at its value
  const keyOffset = (segments: readonly (string | number)[]): number | undefined => {
    const parent = doc.getIn(segments.slice(0, -1), true);
    const pair = isMap(parent) ? parent.items.find((i) => isScalar(i.key) && i.key.value === segments.at(-1)) : undefined;
    return (pair?.key as Node | undefined)?.range?.[0];
  };
  const report = (segments: readonly (string | number)[], message: string, onKey = false) => {
    const where = segments.length ? `${segments.join('.')}: ` : '';
    problems.push(at((onKey ? keyOffset(segments) : undefined) ?? nodeAt(segments)?.range?.[0], `${where}${message}`));
  };

  const seen = new Set<string>();
  for (const e of Value.Errors(OidcFileSchema, data)) {
    const segments = e.path
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
      .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    // one message per place: a union or a missing member reports several
    const key = segments.join('/');
    if ([...seen].some((s) => key === s || key.startsWith(`${s}/`))) continue;
    seen.add(key);
    const custom = (e.schema as TSchema & { errorMessage?: string }).errorMessage;
    const unknown = e.message === 'Unexpected property';
    const message = unknown ? 'is not a known setting' : e.message === 'Expected required property' ? 'is required' : (custom ?? e.message);
    report(segments, message, unknown);
  }
  if (problems.length) return { problems: sorted(problems) };
  const input = data as Static<typeof OidcFileSchema>;

  const base = urlProblem(input.base_url, true);
  if (typeof base === 'string') report(['base_url'], base);
  const ids = new Set<string>();
  const providers: OidcProviderConfig[] = [];
  input.providers.forEach((p, i) => {
    const here = (...rest: (string | number)[]) => ['providers', i, ...rest];
    if (ids.has(p.id)) report(here('id'), `"${p.id}" is used by another provider`);
    ids.add(p.id);
    const issuer = urlProblem(p.issuer, false);
    if (typeof issuer === 'string') report(here('issuer'), issuer);
    const scopes = p.scopes ?? DEFAULT_SCOPES;
    if (!scopes.includes('openid')) report(here('scopes'), 'must include openid');
    const claims = p.claims ?? DEFAULT_PROFILE_CLAIMS;
    claims.forEach((c, j) => {
      if (!PROFILE_KEY_RE.test(c)) report(here('claims', j), `"${c.slice(0, 80)}" is not a claim name this session can carry (a letter, then letters, digits or _)`);
      else if (RESERVED_CLAIMS.has(c) || c === 'idp') report(here('claims', j), `"${c}" is set by sessiongate itself`);
    });
    const secret = readSecret(p, path.dirname(file), env);
    if (secret.problem) report(here(secret.at ?? 'client_secret_file'), secret.problem);
    if (typeof base === 'string' || typeof issuer === 'string' || secret.problem) return;
    const origin = base.origin;
    providers.push(
      Object.freeze({
        id: p.id,
        displayName: p.display_name,
        issuer: p.issuer,
        clientId: p.client_id,
        clientSecret: secret.value!,
        scopes: Object.freeze([...scopes]),
        profileClaims: Object.freeze([...claims]),
        ...claimRulesFrom(p.require, p.rules),
        redirectUri: `${origin}/auth/oidc/${p.id}/callback`,
        postLogoutRedirectUri: `${origin}/auth/login`,
      }),
    );
  });
  if (problems.length) return { problems: sorted(problems) };
  return Object.freeze({
    file,
    baseUrl: (base as URL).origin,
    passwordLogin: input.password_login ?? true,
    providers: Object.freeze(providers),
  });
}

/**
 * The URL, or why it is unusable: https only, except on a loopback host (a provider or a
 * gateway on this machine, as in development). `originOnly` refuses a path, query or fragment.
 */
function urlProblem(value: string, originOnly: boolean): URL | string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `"${value.slice(0, 120)}" is not an absolute URL`;
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) {
    return 'must be an https: URL (http: only on localhost, 127.0.0.1 or [::1])';
  }
  if (url.username || url.password || url.search || url.hash) return 'must not hold credentials, a query or a fragment';
  if (originOnly && url.pathname !== '/') return 'must be an origin only (scheme, host and port), without a path';
  return url;
}

function readSecret(
  p: { client_secret_file?: string; client_secret_env?: string },
  dir: string,
  env: NodeJS.ProcessEnv,
): { value?: string; problem?: string; at?: string } {
  if ((p.client_secret_file === undefined) === (p.client_secret_env === undefined)) {
    return { problem: 'name the client secret with exactly one of client_secret_file and client_secret_env', at: 'client_id' };
  }
  let raw: string | undefined;
  if (p.client_secret_file !== undefined) {
    const file = path.resolve(dir, p.client_secret_file);
    try {
      raw = readFileSync(file, 'utf8');
    } catch (err) {
      return { problem: `${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, at: 'client_secret_file' };
    }
  } else {
    raw = env[p.client_secret_env!];
    if (raw === undefined) return { problem: `the variable ${p.client_secret_env} is not set`, at: 'client_secret_env' };
  }
  const value = raw.trim();
  const at = p.client_secret_file !== undefined ? 'client_secret_file' : 'client_secret_env';
  if (value === '') return { problem: 'the client secret is empty', at };
  if (Buffer.byteLength(value) > MAX_SECRET_BYTES || /[\u0000-\u001f\u007f]/.test(value)) {
    // the value itself is never shown
    return { problem: `the client secret must be one line of at most ${MAX_SECRET_BYTES} bytes`, at };
  }
  return { value };
}

function sorted(problems: Problem[]): Problem[] {
  return problems.sort((a, b) => a.line - b.line || a.col - b.col);
}
