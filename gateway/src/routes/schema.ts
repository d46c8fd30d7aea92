// The schema of routes.yaml: the one source of the input types. `expected` and `hint` are
// ours, read back when a value fails, so every message says what would have been right.

import { Type, type Static } from '@sinclair/typebox';

const NAME_PATTERN = '^[a-z0-9-]+$';
const ROLE_PATTERN = '^[A-Za-z0-9_.:-]+$';

const RoleNameSchema = Type.String({
  pattern: ROLE_PATTERN,
  expected: 'a role name',
  hint: 'letters, digits, "_", ".", ":", "-"',
});
export const RoleListSchema = Type.Array(RoleNameSchema, {
  minItems: 1,
  uniqueItems: true,
  expected: 'a non-empty list of role names',
});
export const RolesSchema = Type.Union(
  [
    RoleListSchema,
    Type.Object({ any: RoleListSchema }, { additionalProperties: false }),
    Type.Object({ all: RoleListSchema }, { additionalProperties: false }),
  ],
  { expected: 'a list of role names (any one of them), { any: [...] } or { all: [...] }', roleRule: true },
);
export const AuthSchema = Type.Union([Type.Literal('required'), Type.Literal('optional'), Type.Literal('none')], {
  expected: 'one of required, optional, none',
});
export const CredentialSchema = Type.Union([Type.Literal('cookie'), Type.Literal('api_key'), Type.Literal('bearer_jwt')], {
  expected: 'one of cookie, api_key, bearer_jwt',
});
export const CredentialsSchema = Type.Array(CredentialSchema, {
  minItems: 1,
  uniqueItems: true,
  expected: 'a non-empty list of credential kinds: cookie, api_key, bearer_jwt',
});
export const MethodOverrideSchema = Type.Object(
  { auth: Type.Optional(AuthSchema), roles: Type.Optional(RolesSchema) },
  {
    additionalProperties: false,
    // an override replaces the route's roles: an empty one would silently drop them
    minProperties: 1,
    expected: 'a mapping with roles and/or auth (an override replaces the route’s roles)',
  },
);
export const SessionDataSchema = Type.Object(
  {
    namespace: Type.String({
      pattern: '^[a-z][a-z0-9_-]{0,31}$',
      expected: 'a namespace name: a lower-case letter, then up to 31 lower-case letters, digits, "_" or "-"',
      hint: 'a lower-case letter, then lower-case letters, digits, "_", "-" (32 at most)',
    }),
    maxBytes: Type.Optional(
      Type.Union([Type.Integer(), Type.String()], { expected: 'a positive integer number of bytes or a size like "2kb", at most 4kb' }),
    ),
    delete: Type.Optional(Type.Boolean({ expected: 'true or false' })),
    readers: Type.Optional(
      Type.Array(Type.String({ pattern: NAME_PATTERN, expected: 'a route name' }), {
        uniqueItems: true,
        expected: 'a list of the names of other routes that get this data in X-Session',
      }),
    ),
  },
  { additionalProperties: false, expected: 'a mapping with namespace and, optionally, maxBytes, delete and readers' },
);
export const RouteSchema = Type.Object(
  {
    name: Type.String({
      pattern: NAME_PATTERN,
      maxLength: 63,
      expected: 'a route name of lower-case letters, digits and "-"',
      hint: 'lower-case letters, digits, "-"',
    }),
    host: Type.Optional(
      Type.String({ expected: 'a lower-case host name without a port, like app.example.com or *.example.com' }),
    ),
    prefix: Type.String({ expected: 'a path starting with "/"' }),
    upstream: Type.Optional(Type.String({ expected: 'an absolute http: or https: URL' })),
    rewritePrefix: Type.Optional(Type.String({ expected: 'a path starting with "/", or "" for the root' })),
    auth: Type.Optional(AuthSchema),
    roles: Type.Optional(RolesSchema),
    methods: Type.Optional(
      Type.Record(Type.String(), MethodOverrideSchema, {
        expected: 'a mapping from HTTP method (GET, POST, ...) to { roles, auth }',
      }),
    ),
    bodyLimit: Type.Optional(
      Type.Union([Type.Integer(), Type.String()], {
        expected: 'a positive integer number of bytes or a size like "512kb", "10mb"',
      }),
    ),
    timeout: Type.Optional(
      Type.Union([Type.Integer(), Type.String()], {
        expected: 'a positive integer number of milliseconds or a duration like "500ms", "30s", "2m"',
      }),
    ),
    csrf: Type.Optional(Type.Boolean({ expected: 'true or false' })),
    methodOverride: Type.Optional(
      Type.Union([Type.Literal('refuse'), Type.Literal('allow')], { expected: 'one of refuse, allow' }),
    ),
    credentials: Type.Optional(CredentialsSchema),
    sessionData: Type.Optional(SessionDataSchema),
  },
  { additionalProperties: false, expected: 'a mapping with name, prefix and (except for forward-auth-only routes) upstream' },
);

/** The schema of routes.yaml version 1, as written (before defaults and normalization). */
export const RoutesFileSchema = Type.Object(
  {
    version: Type.Literal(1, { expected: 'the integer 1' }),
    routes: Type.Array(RouteSchema, { minItems: 1, expected: 'a non-empty list of routes' }),
  },
  { additionalProperties: false, expected: 'a mapping with version: 1 and routes' },
);

/** routes.yaml as written, derived from {@link RoutesFileSchema}. */
export type RoutesFileInput = Static<typeof RoutesFileSchema>;
export type RouteInput = Static<typeof RouteSchema>;
export type RolesInput = Static<typeof RolesSchema>;

/** A YAML mapping as `toJS()` gives it. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
