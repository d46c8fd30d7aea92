// The last step of the routes loader, reached only when there are no problems at all: the
// input with its defaults filled in, as the frozen Route the gateway runs on.

import { DEFAULT_NAMESPACE_BYTES } from '@sessiongate/session';
import { DEFAULT_BODY_LIMIT, DEFAULT_CREDENTIALS, DEFAULT_METHOD_OVERRIDE, DEFAULT_UPSTREAM_TIMEOUT_MS } from '../defaults.js';
import type { RouteDraft } from './checks.js';
import type { RolesInput, RouteInput } from './schema.js';
import type { MethodRule, RoleRule, Route } from './types.js';

export function buildRoute(input: RouteInput, draft: RouteDraft, reads: readonly string[]): Route {
  const auth = input.auth ?? 'required';
  const methods: Record<string, MethodRule> = {};
  for (const [key, override] of Object.entries(input.methods ?? {})) {
    methods[key.toUpperCase()] = Object.freeze({ auth: override.auth ?? auth, roles: roleRule(override.roles) });
  }
  return Object.freeze({
    name: input.name,
    host: draft.host ?? input.host ?? null,
    prefix: draft.prefix ?? input.prefix,
    upstream: draft.upstream ?? input.upstream ?? null,
    rewritePrefix: input.rewritePrefix === undefined ? undefined : (draft.rewritePrefix ?? input.rewritePrefix),
    rule: Object.freeze({ auth, roles: roleRule(input.roles) }),
    methods: Object.freeze(methods),
    bodyLimit: draft.bodyLimit ?? DEFAULT_BODY_LIMIT,
    timeout: draft.timeout ?? DEFAULT_UPSTREAM_TIMEOUT_MS,
    csrf: input.csrf ?? true,
    methodOverride: input.methodOverride ?? DEFAULT_METHOD_OVERRIDE,
    credentials: Object.freeze([...(input.credentials ?? DEFAULT_CREDENTIALS)]),
    sessionData: input.sessionData
      ? Object.freeze({
          namespace: input.sessionData.namespace,
          maxBytes: draft.dataMaxBytes ?? DEFAULT_NAMESPACE_BYTES,
          delete: input.sessionData.delete ?? false,
          readers: Object.freeze([...(input.sessionData.readers ?? [])]),
        })
      : null,
    reads: Object.freeze([...reads]),
  });
}

/** The namespaces each route reads, by route name: the one it writes, then those that name it a reader. */
export function namespacesRead(routes: readonly RouteInput[]): Map<string, string[]> {
  const reads = new Map<string, string[]>();
  const add = (route: string, namespace: string): void => {
    const list = reads.get(route);
    if (list === undefined) reads.set(route, [namespace]);
    else if (!list.includes(namespace)) list.push(namespace);
  };
  for (const r of routes) if (r.sessionData) add(r.name, r.sessionData.namespace);
  for (const r of routes) for (const reader of r.sessionData?.readers ?? []) add(reader, r.sessionData!.namespace);
  return reads;
}

function roleRule(roles: RolesInput | undefined): RoleRule | null {
  if (roles === undefined) return null;
  if (Array.isArray(roles)) return Object.freeze({ any: Object.freeze([...roles]) });
  if ('all' in roles) return Object.freeze({ all: Object.freeze([...roles.all]) });
  return Object.freeze({ any: Object.freeze([...roles.any]) });
}
