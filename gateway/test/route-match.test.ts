import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RouteTable, hostName, ruleFor, upstreamPath, upstreamUrl } from '../src/routes/match.js';
import type { MethodRule, ProxiedRoute, Route } from '../src/routes/types.js';

const REQUIRED: MethodRule = { auth: 'required', roles: null };

function route(name: string, prefix: string, extra: Partial<ProxiedRoute> = {}): ProxiedRoute {
  return {
    name,
    host: null,
    prefix,
    upstream: 'http://127.0.0.1:4000',
    rewritePrefix: undefined,
    rule: REQUIRED,
    methods: {},
    bodyLimit: 1024 * 1024,
    timeout: 30_000,
    csrf: true,
    methodOverride: 'refuse',
    credentials: ['cookie'],
    sessionData: null,
    reads: [],
    ...extra,
  };
}

function names(table: RouteTable, paths: string[]): (string | null)[] {
  return paths.map((p) => table.match(p)?.name ?? null);
}

describe('RouteTable.match', () => {
  const table = new RouteTable([
    route('auth', '/auth'),
    route('api', '/api'),
    route('orders', '/api/orders'),
    route('order-items', '/api/orders/items'),
    route('reports', '/api/reports'),
  ]);

  it('matches a prefix on segment boundaries only', () => {
    expect(names(table, ['/auth', '/auth/', '/auth/x', '/auth/x/y', '/authx', '/aut', '/auth.json'])).toEqual([
      'auth',
      'auth',
      'auth',
      'auth',
      null,
      null,
      null,
    ]);
  });

  it('picks the longest matching prefix', () => {
    expect(
      names(table, [
        '/api',
        '/api/',
        '/api/x',
        '/api/orders',
        '/api/orders/7',
        '/api/orders/items',
        '/api/orders/items/3',
        '/api/ordersx',
        '/api/orders/itemsx',
      ]),
    ).toEqual(['api', 'api', 'api', 'orders', 'orders', 'order-items', 'order-items', 'api', 'orders']);
  });

  it('is case-sensitive', () => {
    expect(names(table, ['/Auth', '/AUTH/x', '/api/Orders/7'])).toEqual([null, null, 'api']);
  });

  it('returns null when nothing matches', () => {
    expect(names(table, ['/', '/other', '/a/auth'])).toEqual([null, null, null]);
    expect(new RouteTable([]).match('/x')).toBeNull();
  });

  it('lets a root route catch everything no longer prefix takes', () => {
    const withRoot = new RouteTable([route('root', '/'), route('auth', '/auth')]);
    const paths = ['/', '/x', '/authx', '/auth', '/auth/y'];
    expect(names(withRoot, paths)).toEqual(['root', 'root', 'root', 'auth', 'auth']);
  });

  it('gives a shared prefix to the route listed first', () => {
    const dup = new RouteTable([route('first', '/a'), route('second', '/a'), route('r1', '/'), route('r2', '/')]);
    expect(names(dup, ['/a/b', '/b'])).toEqual(['first', 'r1']);
  });

  it('handles paths longer than every prefix', () => {
    const deep = '/api/orders/items/' + 'x/'.repeat(500) + 'y';
    expect(table.match(deep)?.name).toBe('order-items');
    expect(table.match('/' + 'z'.repeat(5000))).toBeNull();
  });

  it('exposes the routes it was built from', () => {
    const routes = [route('a', '/a')];
    expect(new RouteTable(routes).routes).toBe(routes);
  });

  it('refuses prefixes that are not normalized', () => {
    for (const prefix of ['', 'auth', '/auth/', '//auth', '/a//b']) {
      expect(() => new RouteTable([route('bad', prefix)])).toThrow(TypeError);
    }
  });
});

describe('RouteTable.match with hosts', () => {
  const table = new RouteTable([
    route('auth', '/auth'),
    route('site', '/'),
    route('wiki', '/', { host: 'wiki.example.com' }),
    route('wiki-admin', '/admin', { host: 'wiki.example.com' }),
    route('tenants', '/', { host: '*.example.com' }),
    route('deep-tenants', '/', { host: '*.eu.example.com' }),
    route('shop-api', '/api', { host: 'shop.example.com' }),
  ]);
  const at = (host: string | null, paths: string[]) => paths.map((p) => table.match(p, host)?.name ?? null);

  it('an exact host wins over a wildcard, which wins over a route without host, on the same prefix', () => {
    expect(at('wiki.example.com', ['/', '/page'])).toEqual(['wiki', 'wiki']);
    expect(at('blog.example.com', ['/', '/page'])).toEqual(['tenants', 'tenants']);
    expect(at('a.b.example.com', ['/'])).toEqual(['tenants']);
    expect(at('x.eu.example.com', ['/'])).toEqual(['deep-tenants']);
    expect(at('other.org', ['/', '/page'])).toEqual(['site', 'site']);
  });

  it('the longest prefix still comes first: a host route does not shadow a longer hostless one', () => {
    expect(at('wiki.example.com', ['/auth/login', '/admin/x', '/adminx'])).toEqual(['auth', 'wiki-admin', 'wiki']);
  });

  it('a prefix whose routes are all for other hosts does not match: a shorter one is tried', () => {
    expect(at('shop.example.com', ['/api/x'])).toEqual(['shop-api']);
    expect(at('wiki.example.com', ['/api/x'])).toEqual(['wiki']);
    expect(at('other.org', ['/api/x', '/admin'])).toEqual(['site', 'site']);
  });

  it('a wildcard never covers the bare domain; without a host only routes without one match', () => {
    expect(at('example.com', ['/'])).toEqual(['site']);
    expect(at(null, ['/', '/admin', '/api/x'])).toEqual(['site', 'site', 'site']);
    const hostOnly = new RouteTable([route('wiki', '/', { host: 'wiki.example.com' })]);
    expect(hostOnly.match('/x', null)).toBeNull();
    expect(hostOnly.match('/x', 'evil.com')).toBeNull();
    expect(hostOnly.match('/x', 'wiki.example.com')?.name).toBe('wiki');
  });

  it('hostName: the canonical host without its port or a trailing dot', () => {
    expect([hostName('wiki.example.com:8080'), hostName('wiki.example.com.'), hostName('[::1]:80'), hostName(undefined), hostName('')]).toEqual([
      'wiki.example.com',
      'wiki.example.com',
      '[::1]',
      null,
      null,
    ]);
  });
});

describe('upstreamPath', () => {
  it('forwards the canonical path unchanged without rewritePrefix or base path', () => {
    const r = route('orders', '/api/orders');
    expect(upstreamPath(r, '/api/orders/7')).toBe('/api/orders/7');
    expect(upstreamPath(r, '/api/orders')).toBe('/api/orders');
  });

  it('replaces the matched prefix with rewritePrefix', () => {
    const r = route('orders', '/api/orders', { rewritePrefix: '/orders' });
    expect(upstreamPath(r, '/api/orders/7')).toBe('/orders/7');
    expect(upstreamPath(r, '/api/orders')).toBe('/orders');
    expect(upstreamPath(r, '/api/orders/')).toBe('/orders/');
    expect(upstreamPath(route('o', '/api/orders', { rewritePrefix: '/orders/' }), '/api/orders/7')).toBe('/orders/7');
    const nested = route('o', '/api/orders', { rewritePrefix: '/v2/orders' });
    expect(upstreamPath(nested, '/api/orders/7')).toBe('/v2/orders/7');
  });

  it('strips the prefix for rewritePrefix "/" or ""', () => {
    for (const rewritePrefix of ['/', '']) {
      const r = route('orders', '/api/orders', { rewritePrefix });
      expect(upstreamPath(r, '/api/orders/7')).toBe('/7');
      expect(upstreamPath(r, '/api/orders')).toBe('/');
      expect(upstreamPath(r, '/api/orders/')).toBe('/');
    }
  });

  it('treats the root route as an empty prefix when rewriting', () => {
    const r = route('root', '/', { rewritePrefix: '/app' });
    expect(upstreamPath(r, '/x/y')).toBe('/app/x/y');
    expect(upstreamPath(r, '/')).toBe('/app/');
    expect(upstreamPath(route('root', '/', { rewritePrefix: '/' }), '/x')).toBe('/x');
  });

  it("joins the upstream's base path without doubling a slash", () => {
    for (const upstream of ['http://h:1/base', 'http://h:1/base/', 'http://h:1/base//']) {
      expect(upstreamPath(route('o', '/api/orders', { upstream }), '/api/orders/7')).toBe('/base/api/orders/7');
    }
    expect(upstreamPath(route('o', '/api/orders', { upstream: 'http://h:1/' }), '/api/orders')).toBe('/api/orders');
    expect(upstreamPath(route('o', '/api/orders', { upstream: 'https://h' }), '/api/orders')).toBe('/api/orders');
    const rewritten = route('o', '/api/orders', { upstream: 'http://h:1/base', rewritePrefix: '/orders' });
    expect(upstreamPath(rewritten, '/api/orders/7')).toBe('/base/orders/7');
    expect(upstreamPath(rewritten, '/api/orders')).toBe('/base/orders');
    const stripped = route('o', '/api/orders', { upstream: 'http://h:1/base/', rewritePrefix: '' });
    expect(upstreamPath(stripped, '/api/orders/7')).toBe('/base/7');
    expect(upstreamPath(stripped, '/api/orders')).toBe('/base/');
  });

  it('upstreamUrl: the origin of the upstream, then the path with the base path once', () => {
    const based = route('o', '/api/orders', { upstream: 'http://h:1/base' });
    expect(upstreamUrl(based, '/api/orders/7')).toBe('http://h:1/base/api/orders/7');
    const stripped = route('o', '/api/orders', { upstream: 'https://h/base/', rewritePrefix: '' });
    expect(upstreamUrl(stripped, '/api/orders/7')).toBe('https://h/base/7');
    expect(upstreamUrl(route('o', '/api/orders', { upstream: 'http://h:1' }), '/api/orders')).toBe('http://h:1/api/orders');
  });

  it('always starts with a single slash', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('/', '/api', '/api/orders'),
        fc.constantFrom(undefined, '', '/', '/x', '/x/', 'x'),
        fc.constantFrom('http://h', 'http://h/', 'http://h/b', 'http://h/b/', 'http://h:8/b/c//'),
        fc.array(fc.constantFrom('a', 'b'), { maxLength: 3 }),
        fc.boolean(),
        (prefix, rewritePrefix, upstream, rest, trailing) => {
          // a canonical path the route matches
          const path = (prefix === '/' ? '' : prefix) + rest.map((s) => '/' + s).join('') + (trailing ? '/' : '');
          const out = upstreamPath(route('r', prefix, { rewritePrefix, upstream }), path || '/');
          expect(out.startsWith('/')).toBe(true);
          expect(out.startsWith('//')).toBe(false);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('ruleFor', () => {
  const ADMIN: MethodRule = { auth: 'required', roles: { any: ['admin'] } };
  const READER: MethodRule = { auth: 'optional', roles: null };
  const HEAD_ONLY: MethodRule = { auth: 'none', roles: null };

  it('uses the per-method override, else the route rule', () => {
    const r = route('orders', '/api/orders', { methods: { DELETE: ADMIN } });
    expect(ruleFor(r, 'DELETE')).toBe(ADMIN);
    expect(ruleFor(r, 'GET')).toBe(REQUIRED);
    expect(ruleFor(r, 'POST')).toBe(REQUIRED);
    expect(ruleFor(r, 'PATCH')).toBe(REQUIRED);
  });

  it("gives HEAD the GET override, unless HEAD has its own", () => {
    expect(ruleFor(route('r', '/r', { methods: { GET: READER } }), 'HEAD')).toBe(READER);
    expect(ruleFor(route('r', '/r', { methods: { GET: READER, HEAD: HEAD_ONLY } }), 'HEAD')).toBe(HEAD_ONLY);
    expect(ruleFor(route('r', '/r'), 'HEAD')).toBe(REQUIRED);
    // and not the other way round
    expect(ruleFor(route('r', '/r', { methods: { HEAD: HEAD_ONLY } }), 'GET')).toBe(REQUIRED);
  });

  it('never allows TRACE or CONNECT, even with an override', () => {
    const r = route('r', '/r', { methods: { TRACE: READER, CONNECT: READER } });
    expect(ruleFor(r, 'TRACE')).toBeNull();
    expect(ruleFor(r, 'CONNECT')).toBeNull();
  });

  it('matches method names exactly and ignores Object.prototype members', () => {
    const r = route('r', '/r', { methods: { DELETE: ADMIN } });
    // not one of the methods that take the route's rule, and not listed: refused
    expect(ruleFor(r, 'delete')).toBeNull();
    expect(ruleFor(r, 'constructor')).toBeNull();
    expect(ruleFor(r, '__proto__')).toBeNull();
    expect(ruleFor(r, 'toString')).toBeNull();
  });

  it('gives the route rule only to the common methods; any other must be listed', () => {
    const r = route('r', '/r', { methods: { DELETE: ADMIN, PROPFIND: READER } });
    for (const m of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'OPTIONS']) expect(ruleFor(r, m), m).toBe(REQUIRED);
    expect(ruleFor(r, 'PROPFIND')).toBe(READER);
    for (const m of ['PURGE', 'MOVE', 'COPY', 'MKCOL', 'PROPPATCH', 'LOCK', 'SEARCH', 'QUERY', 'M-SEARCH']) expect(ruleFor(r, m), m).toBeNull();
  });
});

describe('RouteTable.match: property', () => {
  function isSegmentPrefix(prefix: string, path: string): boolean {
    if (prefix === '/') return true;
    return path === prefix || path.startsWith(prefix + '/');
  }

  // the obvious way: every route whose prefix fits, the longest one, the first on a tie
  function bruteForce(routes: readonly Route[], path: string): Route | null {
    let best: Route | null = null;
    for (const r of routes) {
      const length = r.prefix === '/' ? 0 : r.prefix.length;
      const bestLength = best === null ? -1 : best.prefix === '/' ? 0 : best.prefix.length;
      if (isSegmentPrefix(r.prefix, path) && length > bestLength) best = r;
    }
    return best;
  }

  const segment = fc.constantFrom('a', 'b', 'ab', 'A', 'api', 'x.y', '%20', '~');
  const prefix = fc.oneof(
    { weight: 1, arbitrary: fc.constant('/') },
    { weight: 6, arbitrary: fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => '/' + s.join('/')) },
  );
  const path = fc
    .tuple(fc.array(segment, { maxLength: 6 }), fc.boolean())
    .map(([s, trailing]) => '/' + s.join('/') + (trailing && s.length > 0 ? '/' : ''));

  it('agrees with a brute-force longest-prefix search', () => {
    fc.assert(
      fc.property(
        fc.array(prefix, { maxLength: 30 }),
        fc.array(path, { minLength: 1, maxLength: 20 }),
        (prefixes, paths) => {
          const routes = prefixes.map((p, i) => route(`r${i}`, p));
          const table = new RouteTable(routes);
          for (const p of paths) expect(table.match(p)).toBe(bruteForce(routes, p));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
