import type { MethodRule, Route } from './types.js';

/**
 * The routes of one routes file, indexed for longest-prefix matching on canonical paths.
 * Prefixes must be in the form `Route.prefix` documents (no trailing slash except the
 * root route `/`, no empty segment); the constructor throws a `TypeError` otherwise.
 * Among the routes of the longest matching prefix, one for the exact host wins over a
 * wildcard (the longer wildcard first), which wins over one without `host`; a prefix whose
 * routes all name other hosts does not match, and a shorter one is tried. When two routes
 * share a prefix and host the one listed first wins.
 */
export class RouteTable {
  readonly routes: readonly Route[];
  readonly #byPrefix = new Map<string, Candidates>();
  readonly #root: Candidates | null;
  // prefix lengths in use, so match() only slices candidates that can hit
  readonly #lengths: Uint8Array;
  readonly #maxLength: number;

  constructor(routes: readonly Route[]) {
    this.routes = routes;
    let root: Candidates | null = null;
    let maxLength = 0;
    for (const route of routes) {
      const { prefix } = route;
      if (!isNormalizedPrefix(prefix)) {
        throw new TypeError(`route "${route.name}": prefix ${JSON.stringify(prefix)} is not normalized`);
      }
      if (prefix === '/') {
        root = addCandidate(root, route);
        continue;
      }
      this.#byPrefix.set(prefix, addCandidate(this.#byPrefix.get(prefix) ?? null, route));
      if (prefix.length > maxLength) maxLength = prefix.length;
    }
    this.#root = root;
    this.#maxLength = maxLength;
    this.#lengths = new Uint8Array(maxLength + 1);
    for (const prefix of this.#byPrefix.keys()) this.#lengths[prefix.length] = 1;
  }

  /**
   * Longest prefix on a segment boundary, case-sensitive, among the routes for `host` (a
   * lower-case name without port, see {@link hostName}; null or undefined: only routes
   * without `host` can match); null when none matches.
   */
  match(canonicalPath: string, host?: string | null): Route | null {
    const path = canonicalPath;
    const name = host ?? null;
    // candidate ends: the whole path, then every '/' from the right (the prefix then
    // ends just before it), never longer than the longest prefix
    let end = path.length;
    if (end > this.#maxLength) end = path.lastIndexOf('/', this.#maxLength);
    while (end > 0) {
      if (this.#lengths[end] === 1) {
        const candidates = this.#byPrefix.get(end === path.length ? path : path.slice(0, end));
        if (candidates !== undefined) {
          const route = pick(candidates, name);
          if (route !== null) return route;
        }
      }
      end = path.lastIndexOf('/', end - 1);
    }
    return this.#root === null ? null : pick(this.#root, name);
  }
}

/** The routes sharing one prefix, by the host they are limited to. */
interface Candidates {
  any: Route | null;
  exact: Map<string, Route> | null;
  /** `.example.com` for `*.example.com`, the longest first. */
  wildcards: { suffix: string; route: Route }[];
}

function addCandidate(c: Candidates | null, route: Route): Candidates {
  const out = c ?? { any: null, exact: null, wildcards: [] };
  const host = route.host;
  if (host === null) out.any ??= route;
  else if (host.startsWith('*.')) {
    const suffix = host.slice(1);
    if (!out.wildcards.some((w) => w.suffix === suffix)) {
      out.wildcards.push({ suffix, route });
      out.wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
    }
  } else {
    out.exact ??= new Map();
    if (!out.exact.has(host)) out.exact.set(host, route);
  }
  return out;
}

function pick(c: Candidates, host: string | null): Route | null {
  if (host === null || (c.exact === null && c.wildcards.length === 0)) return c.any;
  const exact = c.exact?.get(host);
  if (exact !== undefined) return exact;
  for (const w of c.wildcards) {
    // "*.example.com" covers a.example.com and a.b.example.com, never example.com itself
    if (host.length > w.suffix.length && host.endsWith(w.suffix)) return w.route;
  }
  return c.any;
}

/**
 * The name part of a canonical host (see `canonicalHost`): lower case, port removed; a
 * trailing dot (`example.com.`, the same DNS name) removed too.
 */
export function hostName(canonical: string | null | undefined): string | null {
  if (!canonical) return null;
  let end = canonical.length;
  if (!canonical.startsWith('[')) {
    const colon = canonical.indexOf(':');
    if (colon >= 0) end = colon;
  } else {
    end = canonical.indexOf(']') + 1;
  }
  if (end > 1 && canonical.charCodeAt(end - 1) === 0x2e) end--;
  return end === canonical.length ? canonical : canonical.slice(0, end);
}

function isNormalizedPrefix(prefix: string): boolean {
  if (prefix === '/') return true;
  return prefix.length > 1 && prefix.startsWith('/') && !prefix.endsWith('/') && !prefix.includes('//');
}

/**
 * The path to forward for a request matched to `route`: the matched prefix replaced by
 * `rewritePrefix` (when set), joined under the base path of `route.upstream` without
 * doubling a slash. Always starts with `/`; a trailing slash of the request is kept.
 */
export function upstreamPath(route: Route, canonicalPath: string): string {
  let path = canonicalPath;
  if (route.rewritePrefix !== undefined) {
    // the root route matched with an empty prefix: its rest is the whole path
    const rest = route.prefix === '/' ? canonicalPath : canonicalPath.slice(route.prefix.length);
    const to = trimTrailingSlashes(route.rewritePrefix);
    path = (to === '' || to.startsWith('/') ? to : '/' + to) + rest;
    if (path === '') path = '/';
  }
  const base = route.upstream === null ? '' : basePath(route.upstream);
  return base === '' ? path : base + path;
}

/**
 * The URL to forward a request matched to `route` to, without its query: the origin of
 * `route.upstream` followed by `upstreamPath()` (which already holds the base path).
 */
export function upstreamUrl(route: Route & { upstream: string }, canonicalPath: string): string {
  return upstreamOrigin(route.upstream) + upstreamPath(route, canonicalPath);
}

// The scheme and authority of an upstream URL: everything before its path.
function upstreamOrigin(upstream: string): string {
  const scheme = upstream.indexOf('://');
  for (let i = scheme < 0 ? 0 : scheme + 3; i < upstream.length; i++) {
    const c = upstream.charCodeAt(i);
    if (c === 0x2f || c === 0x3f || c === 0x23) return upstream.slice(0, i); // '/', '?' or '#'
  }
  return upstream;
}

// The path part of an upstream URL without trailing slashes: '' for a bare origin.
function basePath(upstream: string): string {
  const scheme = upstream.indexOf('://');
  const start = upstream.indexOf('/', scheme < 0 ? 0 : scheme + 3);
  if (start < 0) return '';
  let end = upstream.length;
  for (let i = start; i < end; i++) {
    const c = upstream.charCodeAt(i);
    if (c === 0x3f || c === 0x23) end = i; // '?' or '#': not part of the base path
  }
  return trimTrailingSlashes(upstream.slice(start, end));
}

function trimTrailingSlashes(s: string): string {
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 0x2f) end--;
  return end === s.length ? s : s.slice(0, end);
}

// methods that follow the route's rule unless `methods` says otherwise; any other method
// (PURGE, PROPFIND, MOVE…) is refused unless the route lists it
const ROUTE_RULE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * The rule `method` is decided by on `route`: its per-method override, for `HEAD` the
 * `GET` override, else `route.rule` for GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS.
 * `null` (405) for any other method the route does not list, and always for `TRACE` and
 * `CONNECT`, which are never proxied. Methods are case-sensitive (RFC 9110 §9.1), as the
 * override keys are.
 */
export function ruleFor(route: Route, method: string): MethodRule | null {
  if (method === 'TRACE' || method === 'CONNECT') return null;
  const { methods } = route;
  // own keys only: a method named like an Object.prototype member must not hit it
  if (Object.hasOwn(methods, method)) return methods[method]!;
  if (method === 'HEAD' && Object.hasOwn(methods, 'GET')) return methods.GET!;
  return ROUTE_RULE_METHODS.has(method) ? route.rule : null;
}
