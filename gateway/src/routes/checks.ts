// Pass 3 of the routes loader: what the schema can't say (paths, URLs, uniqueness, roles
// against auth). Each check runs on values that passed their own schema, so a problem is
// never reported twice; what it normalizes on the way goes into the route's draft.

import { METHODS } from 'node:http';
import { Value } from '@sinclair/typebox/value';
import { parseByteSize, parseDuration } from '@sessiongate/service-kit';
import { show } from './problems.js';
import { AuthSchema, MethodOverrideSchema, RolesSchema, RouteSchema, isRecord } from './schema.js';
import type { AuthMode } from './types.js';
import type { Context, Segments } from './yaml-positions.js';

// Node timers take at most 2^31-1 ms; a longer delay fires after 1 ms instead.
const MAX_UPSTREAM_TIMEOUT_MS = 2_147_483_647;

// Methods an override may name: the common ones, and any other method Node's parser
// accepts (PURGE, PROPFIND…), which is refused with 405 unless a route lists it. HEAD always
// follows GET, TRACE and CONNECT are never proxied, so a rule for them could never apply.
const OVERRIDABLE_METHODS: readonly string[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
const LISTABLE_METHODS: ReadonlySet<string> = new Set(
  [...OVERRIDABLE_METHODS, ...METHODS].filter((m) => m !== 'HEAD' && m !== 'TRACE' && m !== 'CONNECT'),
);

/** Normalized values of one route, computed while checking it. */
export interface RouteDraft {
  host?: string;
  prefix?: string;
  upstream?: string;
  rewritePrefix?: string;
  bodyLimit?: number;
  timeout?: number;
  /** `sessionData.maxBytes`, parsed (session-data-checks.ts). */
  dataMaxBytes?: number;
}

export function checkRoutes(ctx: Context, data: unknown): RouteDraft[] {
  if (!isRecord(data) || !Array.isArray(data.routes)) return [];
  const names = new Map<string, number>();
  const prefixes = new Map<string, number>();
  return data.routes.map((route: unknown, i): RouteDraft => {
    const draft: RouteDraft = {};
    if (!isRecord(route)) return draft;
    const at = (...rest: string[]): string[] => ['routes', String(i), ...rest];
    const fail = (segments: Segments, message: string): void =>
      ctx.report(segments, `${ctx.display(segments)}: ${message}`);

    const { name } = route;
    if (Value.Check(RouteSchema.properties.name, name)) {
      const first = names.get(name);
      if (first === undefined) names.set(name, i);
      else {
        const where = `routes[${first}]${lineOf(ctx, first, 'name')}`;
        fail(at('name'), `${show(name)} is already the name of ${where}; names must be unique`);
      }
    }

    // null: the host is invalid (already reported), so uniqueness can't be judged
    let host: string | null = '';
    if (typeof route.host === 'string') {
      const checked = checkHost(route.host);
      if (checked.ok) host = draft.host = checked.value;
      else {
        host = null;
        fail(at('host'), checked.message);
      }
    }

    if (typeof route.prefix === 'string') {
      const checked = checkPath(route.prefix, false, PREFIX_WHY);
      if (!checked.ok) fail(at('prefix'), checked.message);
      else {
        draft.prefix = checked.value;
        // one route per prefix and host: which of two would answer is never a matter of order
        const key = `${host ?? ''} ${checked.value}`;
        const first = host === null ? undefined : prefixes.get(key);
        if (host !== null && first === undefined) prefixes.set(key, i);
        else if (first !== undefined) {
          const as = checked.value === route.prefix ? '' : ` (${show(route.prefix)} normalizes to ${show(checked.value)})`;
          const where = `routes[${first}]${lineOf(ctx, first, 'prefix')}`;
          const scope = host === '' ? 'prefixes must be unique' : `prefixes must be unique for one host (${show(host)})`;
          fail(at('prefix'), `${show(checked.value)} is already the prefix of ${where}${as}; ${scope}`);
        }
      }
    }

    if (typeof route.upstream === 'string') {
      const checked = checkUpstream(route.upstream);
      if (checked.ok) draft.upstream = checked.value;
      else fail(at('upstream'), checked.message);
    }

    if (typeof route.rewritePrefix === 'string' && route.upstream === undefined) {
      fail(at('rewritePrefix'), 'needs an upstream: a route without one is never forwarded by the gateway (forward auth only)');
    } else if (typeof route.rewritePrefix === 'string') {
      const checked = checkPath(route.rewritePrefix, true, REWRITE_WHY);
      if (checked.ok) draft.rewritePrefix = checked.value;
      else fail(at('rewritePrefix'), checked.message);
    }

    // null: auth itself is invalid and already reported, so roles can't be judged against it
    const routeAuth: AuthMode | null =
      route.auth === undefined ? 'required' : Value.Check(AuthSchema, route.auth) ? route.auth : null;
    if (Value.Check(RolesSchema, route.roles) && routeAuth !== null && routeAuth !== 'required') {
      fail(at('roles'), rolesWithoutRequiredAuth(routeAuth, false));
    }

    if (isRecord(route.methods)) checkMethods(ctx, route.methods, routeAuth, at('methods'));

    if (Value.Check(RouteSchema.properties.bodyLimit, route.bodyLimit)) {
      const expected = 'a positive integer number of bytes or a size like "512kb", "10mb" (kb = 1024 bytes)';
      const checked = checkPositive(route.bodyLimit, parseByteSize(route.bodyLimit), expected);
      if (checked.ok) draft.bodyLimit = checked.value;
      else fail(at('bodyLimit'), checked.message);
    }

    if (Value.Check(RouteSchema.properties.timeout, route.timeout)) {
      const expected = 'a positive integer number of milliseconds or a duration like "500ms", "30s", "2m"';
      const checked = checkPositive(route.timeout, parseDuration(route.timeout), expected);
      if (checked.ok && checked.value > MAX_UPSTREAM_TIMEOUT_MS) {
        const limit = `${MAX_UPSTREAM_TIMEOUT_MS} ms (about 24.8 days, the longest timer Node.js keeps)`;
        fail(at('timeout'), `must be at most ${limit}, got ${show(route.timeout)}`);
      } else if (checked.ok) draft.timeout = checked.value;
      else fail(at('timeout'), checked.message);
    }

    return draft;
  });
}

function checkMethods(ctx: Context, methods: Record<string, unknown>, routeAuth: AuthMode | null, base: string[]): void {
  const seen = new Map<string, string>();
  const fail = (segments: Segments, message: string, target: 'value' | 'key' = 'value'): void =>
    ctx.report(segments, `${ctx.display(segments)}: ${message}`, target);
  for (const [key, override] of Object.entries(methods)) {
    const at = [...base, key];
    const method = key.toUpperCase();
    if (method === 'TRACE' || method === 'CONNECT') {
      fail(at, `${method} is never proxied (the gateway answers 405), so it cannot have a rule`, 'key');
    } else if (method === 'HEAD') {
      fail(at, 'HEAD always follows the rule of GET (it reveals what GET would); put the override on GET', 'key');
    } else if (!LISTABLE_METHODS.has(method)) {
      const others = 'or another method Node.js parses, such as PURGE or PROPFIND';
      fail(at, `is not a method the gateway proxies; expected one of ${OVERRIDABLE_METHODS.join(', ')} ${others}`, 'key');
    } else if (seen.has(method)) {
      fail(at, `is the same method as ${seen.get(method)!} above (method names are not case-sensitive here)`, 'key');
    } else {
      seen.set(method, key);
    }

    if (!Value.Check(MethodOverrideSchema, override) || override.roles === undefined) continue;
    const auth = override.auth ?? routeAuth;
    if (auth !== null && auth !== 'required') {
      fail([...at, 'roles'], rolesWithoutRequiredAuth(auth, override.auth === undefined));
    }
  }
}

function rolesWithoutRequiredAuth(auth: 'optional' | 'none', inherited: boolean): string {
  const from = inherited ? ' (inherited from the route)' : '';
  return auth === 'none'
    ? `cannot be used with auth: none${from}: the session is never looked at, so the roles could never be ` +
        'checked; remove roles or set auth: required'
    : `cannot be used with auth: optional${from}: a request without a session would still pass, so the roles ` +
        'would protect nothing; set auth: required';
}

function lineOf(ctx: Context, index: number, key: string): string {
  return ` (line ${ctx.position(ctx.offsetOf(['routes', String(index), key], 'value')).line})`;
}

type Checked<T> = { ok: true; value: T } | { ok: false; message: string };

// A size or a duration as parsed: null is unreadable, and none may be 0.
function checkPositive(raw: unknown, parsed: number | null, expected: string): Checked<number> {
  if (parsed === null) return { ok: false, message: `must be ${expected}, got ${show(raw)}` };
  if (parsed === 0) return { ok: false, message: `must be positive, got ${show(raw)}` };
  return { ok: true, value: parsed };
}

// DNS names as browsers send them in Host: lower-case letters, digits, "-" and "." (IPv4
// addresses too). A route host is compared with the request's host, port removed.
const HOST_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const MAX_HOST_NAME = 253;

// An exact host or `*.` followed by a name of at least two labels; never a port, never
// upper case (hosts are compared as the gateway canonicalizes them: lower case).
function checkHost(raw: string): Checked<string> {
  const example = 'like app.example.com or *.example.com';
  if (raw === '') return { ok: false, message: `must be a host name ${example}, got ""` };
  if (raw.includes(':')) return { ok: false, message: `must not have a port (hosts are compared without it), got ${show(raw)}` };
  if (raw !== raw.toLowerCase()) return { ok: false, message: `must be lower case, got ${show(raw)} (write ${show(raw.toLowerCase())})` };
  const wildcard = raw.startsWith('*.');
  const name = wildcard ? raw.slice(2) : raw;
  if (name.includes('*')) {
    return { ok: false, message: `may use "*" only as its whole first label ("*.example.com"), got ${show(raw)}` };
  }
  const labels = name.split('.');
  if (name.length > MAX_HOST_NAME || !labels.every((l) => HOST_LABEL.test(l))) {
    return { ok: false, message: `must be a host name of letters, digits, "-" and "." ${example}, got ${show(raw)}` };
  }
  if (wildcard && labels.length < 2) {
    return { ok: false, message: `a wildcard must cover a name of at least two labels ("*.example.com"), got ${show(raw)}` };
  }
  return { ok: true, value: raw };
}

const PREFIX_WHY = 'canonical request paths never contain it, so the route could never match';
const REWRITE_WHY = 'the forwarded path must stay canonical';

// A prefix is compared with canonical paths, which are printable ASCII without
// ? # % \ ; and spaces once percent-encoding of other characters has been kept as is.
// Returns the normalized path: no trailing "/" except for "/" itself ("" stays "").
function checkPath(raw: string, allowEmpty: boolean, why: string): Checked<string> {
  if (raw === '' && allowEmpty) return { ok: true, value: '' };
  if (!raw.startsWith('/')) {
    return { ok: false, message: `must start with "/"${allowEmpty ? ' (or be "" for the root)' : ''}, got ${show(raw)}` };
  }
  for (const char of raw) {
    const code = char.codePointAt(0)!;
    if (code <= 0x20 || code >= 0x7f || '?#%\\;'.includes(char)) {
      return {
        ok: false,
        message:
          `must not contain ${describeChar(char)} ` +
          `(only printable ASCII without ? # % \\ ; and spaces), got ${show(raw)}`,
      };
    }
  }
  if (raw.includes('//')) return { ok: false, message: `must not contain "//" (${why}), got ${show(raw)}` };
  if (raw.split('/').some((s) => s === '.' || s === '..')) {
    return { ok: false, message: `must not contain "." or ".." segments (${why}), got ${show(raw)}` };
  }
  const value = raw.length > 1 && raw.endsWith('/') ? raw.slice(0, -1) : raw;
  // for a rewrite, "/" and "" both mean the root: keep one form
  return { ok: true, value: allowEmpty && value === '/' ? '' : value };
}

function describeChar(char: string): string {
  const code = char.codePointAt(0)!;
  if (char === ' ') return 'a space';
  if (code < 0x20 || code === 0x7f) return `a control character (U+${code.toString(16).toUpperCase().padStart(4, '0')})`;
  if (code > 0x7f) return `the non-ASCII character ${JSON.stringify(char)} (request paths carry it percent-encoded)`;
  return JSON.stringify(char);
}

// origin + optional base path: http(s) only, no credentials (they would go to every
// request's upstream in clear config), no query or fragment (the client's query is
// forwarded as is), the base path under the same rules as a prefix.
function checkUpstream(raw: string): Checked<string> {
  const example = 'like http://127.0.0.1:4001 or https://orders.internal/api';
  const match = /^(https?):\/\/([^/?#]*)(.*)$/is.exec(raw);
  if (match === null) {
    // "localhost:4001" parses as scheme "localhost": only call it a scheme before "//"
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(raw);
    return scheme !== null && !/^https?$/i.test(scheme[1]!)
      ? { ok: false, message: `must use http: or https:, got ${show(scheme[1]! + ':')}` }
      : { ok: false, message: `must be an absolute http: or https: URL ${example}, got ${show(raw)}` };
  }
  const authority = match[2]!;
  const rest = match[3]!;
  // never echo the value: it holds a password
  if (authority.includes('@')) return { ok: false, message: 'must not contain credentials (user:password@)' };
  if (/[\s\x00-\x1f\x7f\\]/.test(raw)) {
    return { ok: false, message: `must not contain spaces, control characters or "\\", got ${show(raw)}` };
  }
  if (rest.includes('?') || rest.includes('#')) {
    const why = "the request's own query is forwarded";
    return { ok: false, message: `must not have a query or fragment (${why}), got ${show(raw)}` };
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, message: `must be an absolute http: or https: URL ${example}, got ${show(raw)}` };
  }
  if (url.hostname === '') return { ok: false, message: `must name a host, got ${show(raw)}` };
  let base = '';
  if (rest !== '') {
    const path = checkPath(rest, false, 'the upstream path must be canonical');
    if (!path.ok) return { ok: false, message: `base path ${path.message}` };
    base = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  }
  return { ok: true, value: `${url.protocol}//${url.host}${base}` };
}
