/** How a route treats the session (routes.yaml `auth`). */
export type AuthMode = 'required' | 'optional' | 'none';

/** A role requirement: any one of the roles, or all of them. */
export type RoleRule = { readonly any: readonly string[] } | { readonly all: readonly string[] };

/** The rule one method of a route is decided by. */
export interface MethodRule {
  readonly auth: AuthMode;
  /** null: any authenticated session will do (or none is needed, with auth optional/none). */
  readonly roles: RoleRule | null;
}

/** One validated, normalized route of routes.yaml. Frozen once loaded. */
export interface Route {
  readonly name: string;
  /**
   * The host the route is limited to: an exact lower-case name, or `*.example.com` for any
   * name under example.com. null: every host.
   */
  readonly host: string | null;
  /** Canonical prefix without a trailing slash, `/` only for the root route. */
  readonly prefix: string;
  /**
   * Upstream origin plus optional base path, e.g. `http://127.0.0.1:4001` or `http://svc/base`.
   * null: a forward-auth-only route (the proxy in front reaches the app; the gateway's own
   * listener answers 404 for it).
   */
  readonly upstream: string | null;
  /** Replaces `prefix` in the forwarded path; undefined keeps the path as is. */
  readonly rewritePrefix: string | undefined;
  /** The rule for methods without an override. */
  readonly rule: MethodRule;
  /** Per-method overrides, keys upper-case (`HEAD` falls back to `GET`). */
  readonly methods: Readonly<Record<string, MethodRule>>;
  /** Maximum request body in bytes. */
  readonly bodyLimit: number;
  /** Upstream timeout in milliseconds. */
  readonly timeout: number;
  /** CSRF check for cookie-authenticated unsafe methods. */
  readonly csrf: boolean;
  /**
   * `refuse`: a `_method` parameter (query, or a urlencoded body) is a 400, so frameworks
   * that honour it (Rails, Laravel, Symfony) cannot run a request under another method than
   * the one decided on. `allow`: passed through untouched.
   */
  readonly methodOverride: MethodOverrideMode;
  /** Credentials the route accepts: the session cookie, API keys, IdP access tokens (`Authorization: Bearer`). */
  readonly credentials: readonly CredentialKind[];
  /** The session data namespace this route's upstream may write (routes.yaml `sessionData`); null: none. */
  readonly sessionData: SessionDataRule | null;
  /** The namespaces whose data this route's X-Session carries: its own, and those that name it a reader. */
  readonly reads: readonly string[];
}

/** routes.yaml `sessionData`, normalized. */
export interface SessionDataRule {
  readonly namespace: string;
  /** Most bytes the namespace may hold (as JSON). */
  readonly maxBytes: number;
  /** The upstream may delete its keys; otherwise it may only add and overwrite them. */
  readonly delete: boolean;
  /** Other routes that get the namespace in their X-Session. */
  readonly readers: readonly string[];
}

/** routes.yaml `credentials`: how a caller may authenticate on a route. */
export type CredentialKind = 'cookie' | 'api_key' | 'bearer_jwt';

/** A route the gateway forwards to: one with an upstream. */
export type ProxiedRoute = Route & { readonly upstream: string };

/** routes.yaml `methodOverride`. */
export type MethodOverrideMode = 'refuse' | 'allow';

/** A loaded routes file. */
export interface RouteSet {
  readonly version: 1;
  readonly routes: readonly Route[];
  /** Where it was loaded from, for logs. */
  readonly source: string;
}

/** One problem found in a routes file, with its position (1-based). */
export interface RoutesProblem {
  readonly line: number;
  readonly column: number;
  /** JSON-pointer-like path of the offending node, e.g. `/routes/2/name`. */
  readonly path: string;
  readonly message: string;
}

/** The outcome of parsing a routes file: the frozen routes, or every problem found. */
export type ParseResult = { ok: true; routes: RouteSet } | { ok: false; problems: RoutesProblem[] };
