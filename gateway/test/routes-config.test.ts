import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_BODY_LIMIT, DEFAULT_METHOD_OVERRIDE, DEFAULT_UPSTREAM_TIMEOUT_MS } from '../src/defaults.js';
import { loadRoutesFile, parseRoutes } from '../src/routes/load.js';
import { formatProblems } from '../src/routes/problems.js';
import { parseByteSize, parseDuration } from '@sessiongate/service-kit';
import type { Route, RouteSet, RoutesProblem } from '../src/routes/types.js';

// The example of docs/routes.md (and the README), verbatim.
const DESIGN_EXAMPLE = `version: 1
routes:
  - name: auth                 # unique, [a-z0-9-]+; metric label and the JWT "aud"
    prefix: /auth              # matches /auth and /auth/..., never /authx
    upstream: http://127.0.0.1:4000
    auth: optional             # required (default) | optional | none
  - name: orders
    prefix: /api/orders
    upstream: http://127.0.0.1:4001
    rewritePrefix: /orders     # optional
    roles: [user]              # any one of these (default form)
    methods:                   # optional per-method override
      DELETE: { roles: [admin] }
  - name: reports
    prefix: /api/reports
    upstream: http://127.0.0.1:4002
    roles: { all: [analyst, billing] }
`;

const lines = (...l: string[]): string => l.join('\n') + '\n';

// One valid route (lines 3-5) followed by `extra` lines of the same route.
const oneRoute = (...extra: string[]): string =>
  lines(
    'version: 1',
    'routes:',
    '  - name: orders',
    '    prefix: /api/orders',
    '    upstream: http://127.0.0.1:4001',
    ...extra,
  );

// oneRoute() and a second route (lines 6-8) with this name and prefix.
const withSecondRoute = (name: string, prefix: string): string =>
  lines(...oneRoute().trimEnd().split('\n'), `  - name: ${name}`, `    prefix: ${prefix}`, '    upstream: http://127.0.0.1:4002');

function parsed(text: string): RouteSet {
  const result = parseRoutes(text, 'routes.yaml');
  if (!result.ok) throw new Error(`expected no problems, got:\n${formatProblems('routes.yaml', result.problems)}`);
  return result.routes;
}

function firstRoute(text: string): Route {
  return parsed(text).routes[0]!;
}

function problems(text: string): RoutesProblem[] {
  const result = parseRoutes(text, 'routes.yaml');
  if (result.ok) throw new Error('expected problems, the file parsed');
  return result.problems;
}

/** The only problem of `text`, as `line:column path message`. */
function problem(text: string): string {
  const found = problems(text);
  expect(found, formatProblems('routes.yaml', found)).toHaveLength(1);
  const p = found[0]!;
  return `${p.line}:${p.column} ${p.path} ${p.message}`;
}

describe('parseRoutes: the reference example', () => {
  it('parses to the normalized routes, defaults included', () => {
    const result = parseRoutes(DESIGN_EXAMPLE, 'routes.yaml');
    expect(result).toStrictEqual({
      ok: true,
      routes: {
        version: 1,
        source: 'routes.yaml',
        routes: [
          {
            name: 'auth',
            host: null,
            prefix: '/auth',
            upstream: 'http://127.0.0.1:4000',
            rewritePrefix: undefined,
            rule: { auth: 'optional', roles: null },
            methods: {},
            bodyLimit: 1024 * 1024,
            timeout: 30_000,
            csrf: true,
            methodOverride: 'refuse',
            credentials: ['cookie'],
            sessionData: null,
            reads: [],
          },
          {
            name: 'orders',
            host: null,
            prefix: '/api/orders',
            upstream: 'http://127.0.0.1:4001',
            rewritePrefix: '/orders',
            rule: { auth: 'required', roles: { any: ['user'] } },
            methods: { DELETE: { auth: 'required', roles: { any: ['admin'] } } },
            bodyLimit: 1024 * 1024,
            timeout: 30_000,
            csrf: true,
            methodOverride: 'refuse',
            credentials: ['cookie'],
            sessionData: null,
            reads: [],
          },
          {
            name: 'reports',
            host: null,
            prefix: '/api/reports',
            upstream: 'http://127.0.0.1:4002',
            rewritePrefix: undefined,
            rule: { auth: 'required', roles: { all: ['analyst', 'billing'] } },
            methods: {},
            bodyLimit: 1024 * 1024,
            timeout: 30_000,
            csrf: true,
            methodOverride: 'refuse',
            credentials: ['cookie'],
            sessionData: null,
            reads: [],
          },
        ],
      },
    });
    expect(DEFAULT_BODY_LIMIT).toBe(1024 * 1024);
    expect(DEFAULT_UPSTREAM_TIMEOUT_MS).toBe(30_000);
  });

  it('freezes the route set and everything in it', () => {
    const set = parsed(DESIGN_EXAMPLE);
    const orders = set.routes[1]!;
    const frozen: object[] = [
      set,
      set.routes,
      orders,
      orders.rule,
      orders.rule.roles!,
      (orders.rule.roles as { any: readonly string[] }).any,
      orders.methods,
      orders.methods.DELETE!,
      orders.methods.DELETE!.roles!,
    ];
    for (const object of frozen) expect(Object.isFrozen(object)).toBe(true);
    // ES modules run in strict mode: writing to a frozen object throws
    expect(() => {
      (set as { source: string }).source = 'x';
    }).toThrow(TypeError);
    expect(() => {
      (orders as { prefix: string }).prefix = '/';
    }).toThrow(TypeError);
    expect(() => {
      (orders.rule.roles as { any: string[] }).any.push('admin');
    }).toThrow(TypeError);
    expect(() => {
      (orders.methods as Record<string, unknown>).GET = orders.rule;
    }).toThrow(TypeError);
  });
});

describe('parseRoutes: YAML problems', () => {
  it('an unclosed "[" points at the "[" itself', () => {
    const text = lines(
      'version: 1',
      'routes:',
      '  - name: orders',
      '    prefix: /api/orders',
      '    upstream: http://127.0.0.1:4001',
      '    roles: [user',
    );
    expect(problem(text)).toBe(
      '6:12 /routes/0/roles routes[0].roles: invalid YAML: this "[" is never closed (expected "]" before line 7, column 1)',
    );
  });

  it('an unclosed "[" followed by more keys', () => {
    const text = lines('version: 1', 'routes:', '  - name: a', '    roles: [user', '    prefix: /a');
    expect(problem(text)).toMatch(/^4:12 \/routes\/0\/roles .*never closed/);
  });

  it('an unclosed quote points at the quote', () => {
    expect(problem(oneRoute('    auth: "none', '    csrf: true'))).toBe(
      `6:11 /routes/0/auth routes[0].auth: invalid YAML: this quote '"' is never closed (expected a closing '"' before line 8, column 1)`,
    );
  });

  it('a list or mapping as a key', () => {
    expect(problem(oneRoute('    ? [csrf]', '    : true'))).toBe(
      '6:7 /routes/0 routes[0]: invalid YAML: a key must be a plain string, not a list or mapping',
    );
  });

  it('a duplicate key names its path', () => {
    expect(problem(oneRoute('    name: other'))).toBe(
      '6:5 /routes/0/name routes[0].name: invalid YAML: this key is already set above in the same mapping',
    );
  });

  it('a second document', () => {
    expect(problem(lines(...DESIGN_EXAMPLE.trimEnd().split('\n'), '---', 'version: 1'))).toBe(
      '18:1  invalid YAML: a routes file holds one YAML document; a second one starts here',
    );
  });

  it('tabs as indentation', () => {
    expect(problem('version: 1\nroutes:\n\t- name: a\n')).toMatch(/^3:1 {2}invalid YAML: Tabs are not allowed/);
  });

  it('an alias without its anchor', () => {
    expect(problem('version: 1\nroutes: *nope\n')).toMatch(/^2:9 {2}invalid YAML: Unresolved alias/);
  });

  it('an unknown tag', () => {
    expect(problem('version: !int 1\nroutes: []\n')).toBe('1:10  invalid YAML: Unresolved tag: !int');
  });

  it('an empty file', () => {
    expect(problem('# nothing here\n')).toBe('1:1  the file is empty: expected a mapping with version: 1 and routes');
  });

  it('anchors and aliases are resolved (points at the anchored node)', () => {
    const text = lines(
      'version: 1',
      'routes:',
      '  - name: a',
      '    prefix: /a',
      '    upstream: http://a',
      '    roles: &staff [staff]',
      '  - name: b',
      '    prefix: /b',
      '    upstream: http://b',
      '    roles: *staff',
    );
    expect(parsed(text).routes[1]!.rule.roles).toEqual({ any: ['staff'] });
  });
});

describe('parseRoutes: top level', () => {
  it('version must be 1, and another version is judged no further', () => {
    expect(problem('version: 2\nroutes: 7\nextra: 1\n')).toBe(
      '1:10 /version version: must be 1 (the only routes.yaml version this gateway reads), got 2',
    );
    expect(problem(oneRoute().replace('version: 1', 'version: "1"'))).toBe(
      '1:10 /version version: must be the integer 1, got "1"',
    );
  });

  it('version and routes are required: the top-level mapping is the position', () => {
    expect(problems('routes: []\n')).toEqual([
      { line: 1, column: 1, path: '/version', message: 'version: is required (the integer 1)' },
      { line: 1, column: 9, path: '/routes', message: 'routes: must be a non-empty list of routes, got an empty list' },
    ]);
    expect(problem('version: 1\n')).toBe('1:1 /routes routes: is required (a non-empty list of routes)');
  });

  it('the file must be a mapping', () => {
    expect(problem('- a\n- b\n')).toBe('1:1  (top level): must be a mapping with version: 1 and routes, got a list');
  });

  it('unknown top-level keys point at the key', () => {
    expect(problem(lines(...oneRoute().trimEnd().split('\n'), 'defaults:', '  timeout: 5s'))).toBe(
      '6:1 /defaults defaults: is not a known option; expected one of version, routes',
    );
  });
});

describe('parseRoutes: name', () => {
  it('must match the pattern (a schema error on line 3 reports line 3)', () => {
    const text = lines('version: 1', 'routes:', '  - name: Bad_Name!', '    prefix: /x', '    upstream: http://x');
    expect(problem(text)).toBe(
      '3:11 /routes/0/name routes[0].name: must match ^[a-z0-9-]+$ (lower-case letters, digits, "-"), got "Bad_Name!"',
    );
  });

  it('at most 63 characters', () => {
    expect(firstRoute(oneRoute().replace('name: orders', `name: ${'a'.repeat(63)}`)).name).toHaveLength(63);
    expect(problem(oneRoute().replace('name: orders', `name: ${'a'.repeat(64)}`))).toBe(
      '3:11 /routes/0/name routes[0].name: must be at most 63 characters long, got 64',
    );
  });

  it('must be a string, and a missing name points at the route', () => {
    expect(problem(oneRoute().replace('name: orders', 'name: 42'))).toBe(
      '3:11 /routes/0/name routes[0].name: must be a route name of lower-case letters, digits and "-", got 42',
    );
    expect(problem(oneRoute().replace('name: orders', 'name:'))).toBe(
      '3:5 /routes/0/name routes[0].name: must be a route name of lower-case letters, digits and "-", got an empty value',
    );
    const missing = lines('version: 1', 'routes:', '  - prefix: /x', '    upstream: http://x');
    // one problem, not "required" plus "must be a string" for the same path
    expect(problem(missing)).toBe(
      '3:5 /routes/0/name routes[0].name: is required (a route name of lower-case letters, digits and "-")',
    );
  });

  it('must be unique', () => {
    expect(problem(withSecondRoute('orders', '/other'))).toBe(
      '6:11 /routes/1/name routes[1].name: "orders" is already the name of routes[0] (line 3); names must be unique',
    );
  });
});

describe('parseRoutes: prefix', () => {
  // replacement functions: the values may hold "$&"
  const withPrefix = (prefix: string): string => oneRoute().replace('prefix: /api/orders', () => `prefix: ${prefix}`);

  it('normalizes a trailing slash away, except for the root', () => {
    expect(firstRoute(withPrefix('/api/orders/')).prefix).toBe('/api/orders');
    expect(firstRoute(withPrefix('/')).prefix).toBe('/');
    expect(firstRoute(withPrefix(`"/a-b_c~d/x:y@z!$&'()*+,="`)).prefix).toBe("/a-b_c~d/x:y@z!$&'()*+,=");
  });

  it('must start with "/"', () => {
    expect(problem(withPrefix('api/orders'))).toBe(
      '4:13 /routes/0/prefix routes[0].prefix: must start with "/", got "api/orders"',
    );
    expect(problem(withPrefix('""'))).toMatch(/^4:13 \/routes\/0\/prefix routes\[0\]\.prefix: must start with "\/", got ""$/);
  });

  it.each([
    ['/a?b', '"?"'],
    ['"/a#b"', '"#"'],
    ['/a%20b', '"%"'],
    ['/a\\b', '"\\\\"'],
    ['/a;b', '";"'],
    ['"/a b"', 'a space'],
    ['"/a\\tb"', 'a control character (U+0009)'],
    ['/café', 'the non-ASCII character "é"'],
  ])('refuses %s', (prefix, what) => {
    expect(problem(withPrefix(prefix))).toMatch(
      new RegExp(`^4:13 /routes/0/prefix routes\\[0\\]\\.prefix: must not contain ${escapeRegExp(what)} `),
    );
  });

  it.each(['/a//b', '//a'])('refuses the empty segment in %s', (prefix) => {
    expect(problem(withPrefix(prefix))).toMatch(/^4:13 \/routes\/0\/prefix routes\[0\]\.prefix: must not contain "\/\/" /);
  });

  it.each(['/a/../b', '/a/./b', '/..', '/a/.'])('refuses the dot segment in %s', (prefix) => {
    expect(problem(withPrefix(prefix))).toMatch(
      /^4:13 \/routes\/0\/prefix routes\[0\]\.prefix: must not contain "\." or "\.\." segments/,
    );
  });

  it('dots inside a segment are fine', () => {
    expect(firstRoute(withPrefix('/v1.2/..a/.well-known')).prefix).toBe('/v1.2/..a/.well-known');
  });

  it('must be unique after normalization', () => {
    expect(problem(withSecondRoute('other', '/api/orders/'))).toBe(
      '7:13 /routes/1/prefix routes[1].prefix: "/api/orders" is already the prefix of routes[0] (line 4) ("/api/orders/" normalizes to "/api/orders"); prefixes must be unique',
    );
  });
});

describe('parseRoutes: upstream', () => {
  const withUpstream = (upstream: string): string =>
    oneRoute().replace('upstream: http://127.0.0.1:4001', () => `upstream: ${upstream}`);

  it.each([
    ['http://127.0.0.1:4001', 'http://127.0.0.1:4001'],
    ['http://127.0.0.1:4001/', 'http://127.0.0.1:4001'],
    ['https://Orders.Internal:443/base/', 'https://orders.internal/base'],
    ['http://svc:8080/a/b', 'http://svc:8080/a/b'],
    ['HTTP://[::1]:4001', 'http://[::1]:4001'],
  ])('keeps %s as %s', (upstream, expected) => {
    expect(firstRoute(withUpstream(upstream)).upstream).toBe(expected);
  });

  it.each([
    ['ftp://x', 'must use http: or https:, got "ftp:"'],
    ['/relative', 'must be an absolute http: or https: URL like http://127.0.0.1:4001 or https://orders.internal/api, got "/relative"'],
    ['127.0.0.1:4001', 'must be an absolute http: or https: URL like http://127.0.0.1:4001 or https://orders.internal/api, got "127.0.0.1:4001"'],
    ['localhost:4001', 'must be an absolute http: or https: URL like http://127.0.0.1:4001 or https://orders.internal/api, got "localhost:4001"'],
    ['unix:///run/orders.sock', 'must use http: or https:, got "unix:"'],
    ['http://h:99999', 'must be an absolute http: or https: URL like http://127.0.0.1:4001 or https://orders.internal/api, got "http://h:99999"'],
    ['http://', 'must be an absolute http: or https: URL like http://127.0.0.1:4001 or https://orders.internal/api, got "http://"'],
    ['http://h/x?debug=1', 'must not have a query or fragment (the request\'s own query is forwarded), got "http://h/x?debug=1"'],
    ['"http://h/x#top"', 'must not have a query or fragment (the request\'s own query is forwarded), got "http://h/x#top"'],
    ['http://h/a/../b', 'base path must not contain "." or ".." segments (the upstream path must be canonical), got "/a/../b"'],
  ])('refuses %s', (upstream, message) => {
    expect(problem(withUpstream(upstream))).toBe(`5:15 /routes/0/upstream routes[0].upstream: ${message}`);
  });

  it('refuses credentials without echoing them', () => {
    const found = problem(withUpstream('http://admin:s3cret@127.0.0.1:4001'));
    expect(found).toBe('5:15 /routes/0/upstream routes[0].upstream: must not contain credentials (user:password@)');
    expect(found).not.toContain('s3cret');
  });

  it('may be left out: a forward-auth-only route', () => {
    const text = lines('version: 1', 'routes:', '  - name: a', '    prefix: /a');
    expect(firstRoute(text).upstream).toBeNull();
    expect(firstRoute(oneRoute()).upstream).toBe('http://127.0.0.1:4001');
  });

  it('is needed by rewritePrefix', () => {
    const text = lines('version: 1', 'routes:', '  - name: a', '    prefix: /a', '    rewritePrefix: /b');
    expect(problem(text)).toBe(
      '5:20 /routes/0/rewritePrefix routes[0].rewritePrefix: needs an upstream: a route without one is never forwarded by the gateway (forward auth only)',
    );
  });
});

describe('parseRoutes: host', () => {
  const withHost = (host: string): string => oneRoute(`    host: ${host}`);

  it('is optional: null matches every host', () => {
    expect(firstRoute(oneRoute()).host).toBeNull();
    expect(firstRoute(withHost('app.example.com')).host).toBe('app.example.com');
    expect(firstRoute(withHost('"*.example.com"')).host).toBe('*.example.com');
    expect(firstRoute(withHost('127.0.0.1')).host).toBe('127.0.0.1');
  });

  it.each([
    ['app.example.com:8080', 'must not have a port (hosts are compared without it), got "app.example.com:8080"'],
    ['App.Example.com', 'must be lower case, got "App.Example.com" (write "app.example.com")'],
    ['""', 'must be a host name like app.example.com or *.example.com, got ""'],
    ['"a.*.example.com"', 'may use "*" only as its whole first label ("*.example.com"), got "a.*.example.com"'],
    ['"*.com"', 'a wildcard must cover a name of at least two labels ("*.example.com"), got "*.com"'],
    ['"*"', 'may use "*" only as its whole first label ("*.example.com"), got "*"'],
    ['app_x.example.com', 'must be a host name of letters, digits, "-" and "." like app.example.com or *.example.com, got "app_x.example.com"'],
    ['example.com.', 'must be a host name of letters, digits, "-" and "." like app.example.com or *.example.com, got "example.com."'],
    ['-a.example.com', 'must be a host name of letters, digits, "-" and "." like app.example.com or *.example.com, got "-a.example.com"'],
  ])('refuses %s with its line and column', (host, message) => {
    expect(problem(withHost(host))).toBe(`6:11 /routes/0/host routes[0].host: ${message}`);
  });

  it('refuses a non-string host as the schema says', () => {
    expect(problem(withHost('42'))).toMatch(/^6:11 \/routes\/0\/host routes\[0\]\.host: must be a lower-case host name without a port/);
  });

  it('prefixes are unique per host: the same prefix on two hosts is fine, twice on one host is not', () => {
    const route = (name: string, host: string | null, prefix: string) => [`  - name: ${name}`, ...(host ? [`    host: "${host}"`] : []), `    prefix: ${prefix}`];
    const ok = lines('version: 1', 'routes:', ...route('a', null, '/'), ...route('b', 'a.example.com', '/'), ...route('c', '*.example.com', '/'), ...route('d', 'b.example.com', '/'));
    expect(parsed(ok).routes.map((r) => `${r.host ?? '*'} ${r.prefix}`)).toEqual(['* /', 'a.example.com /', '*.example.com /', 'b.example.com /']);
    const twice = lines('version: 1', 'routes:', ...route('a', 'a.example.com', '/x'), ...route('b', 'a.example.com', '/x/'));
    expect(problem(twice)).toBe(
      '8:13 /routes/1/prefix routes[1].prefix: "/x" is already the prefix of routes[0] (line 5) ("/x/" normalizes to "/x"); prefixes must be unique for one host ("a.example.com")',
    );
  });
});

describe('parseRoutes: rewritePrefix', () => {
  it.each([
    ['/orders', '/orders'],
    ['/orders/', '/orders'],
    ['""', ''],
    ['/', ''],
  ])('%s is kept as %j', (rewritePrefix, expected) => {
    expect(firstRoute(oneRoute(`    rewritePrefix: ${rewritePrefix}`)).rewritePrefix).toBe(expected);
  });

  it('follows the prefix rules', () => {
    expect(problem(oneRoute('    rewritePrefix: orders'))).toBe(
      '6:20 /routes/0/rewritePrefix routes[0].rewritePrefix: must start with "/" (or be "" for the root), got "orders"',
    );
    expect(problem(oneRoute('    rewritePrefix: /a/../b'))).toMatch(/^6:20 .* must not contain "\." or "\.\." segments \(the forwarded path must stay canonical\)/);
  });
});

describe('parseRoutes: auth and roles', () => {
  it('auth defaults to required; each form of roles normalizes', () => {
    expect(firstRoute(oneRoute()).rule).toEqual({ auth: 'required', roles: null });
    expect(firstRoute(oneRoute('    auth: none')).rule).toEqual({ auth: 'none', roles: null });
    expect(firstRoute(oneRoute('    roles: [a, b]')).rule).toEqual({ auth: 'required', roles: { any: ['a', 'b'] } });
    expect(firstRoute(oneRoute('    roles: { any: [a] }')).rule).toEqual({ auth: 'required', roles: { any: ['a'] } });
    expect(firstRoute(oneRoute('    roles:', '      all: [a, "org:b.c_d-e"]')).rule).toEqual({
      auth: 'required',
      roles: { all: ['a', 'org:b.c_d-e'] },
    });
  });

  it('auth must be one of three', () => {
    expect(problem(oneRoute('    auth: maybe'))).toBe(
      '6:11 /routes/0/auth routes[0].auth: must be one of required, optional, none, got "maybe"',
    );
  });

  it('roles with auth: none', () => {
    expect(problem(oneRoute('    auth: none', '    roles: [admin]'))).toBe(
      '7:12 /routes/0/roles routes[0].roles: cannot be used with auth: none: the session is never looked at, so the roles could never be checked; remove roles or set auth: required',
    );
  });

  it('roles with auth: optional says to use required', () => {
    expect(problem(oneRoute('    roles: [admin]', '    auth: optional'))).toBe(
      '6:12 /routes/0/roles routes[0].roles: cannot be used with auth: optional: a request without a session would still pass, so the roles would protect nothing; set auth: required',
    );
  });

  it.each([
    ['[]', '6:12 /routes/0/roles routes[0].roles: must be a non-empty list of role names, got an empty list'],
    ['{ all: [] }', '6:19 /routes/0/roles/all routes[0].roles.all: must be a non-empty list of role names, got an empty list'],
    [
      '[user, "two words"]',
      '6:19 /routes/0/roles/1 routes[0].roles[1]: must match ^[A-Za-z0-9_.:-]+$ (letters, digits, "_", ".", ":", "-"), got "two words"',
    ],
    ['[user, user]', '6:12 /routes/0/roles routes[0].roles: must not list the same entry twice, got "user" more than once'],
    ['{ any: [a], all: [b] }', '6:12 /routes/0/roles routes[0].roles: must have either any or all, not both'],
    [
      '{ some: [a] }',
      '6:12 /routes/0/roles routes[0].roles: must be a list of role names (any one of them), { any: [...] } or { all: [...] }, got a mapping',
    ],
    [
      '{ all: [a], x: 1 }',
      '6:24 /routes/0/roles/x routes[0].roles.x: is not a known option; expected one of all',
    ],
    ['admin', '6:12 /routes/0/roles routes[0].roles: must be a list of role names (any one of them), { any: [...] } or { all: [...] }, got "admin"'],
  ])('roles: %s', (roles, expected) => {
    // the union of three forms reports the one the value was meant to be, once
    expect(problem(oneRoute(`    roles: ${roles}`))).toBe(expected);
  });
});

describe('parseRoutes: methods', () => {
  it('normalizes overrides: upper-case keys, inherited auth, roles of their own', () => {
    const route = firstRoute(
      oneRoute(
        '    auth: optional',
        '    methods:',
        '      delete: { auth: required, roles: [admin] }',
        '      POST: { auth: required }',
        '      GET: { auth: none }',
        '      Options: { auth: optional }',
      ),
    );
    expect(route.rule).toEqual({ auth: 'optional', roles: null });
    expect(route.methods).toStrictEqual({
      DELETE: { auth: 'required', roles: { any: ['admin'] } },
      POST: { auth: 'required', roles: null },
      GET: { auth: 'none', roles: null },
      OPTIONS: { auth: 'optional', roles: null },
    });
    // an override without auth takes the route's
    expect(firstRoute(oneRoute('    roles: [user]', '    methods:', '      PUT: { roles: [editor] }')).methods).toEqual({
      PUT: { auth: 'required', roles: { any: ['editor'] } },
    });
  });

  it.each([
    ['TRACE', 'routes[0].methods.TRACE: TRACE is never proxied (the gateway answers 405), so it cannot have a rule'],
    ['connect', 'routes[0].methods.connect: CONNECT is never proxied (the gateway answers 405), so it cannot have a rule'],
    ['HEAD', 'routes[0].methods.HEAD: HEAD always follows the rule of GET (it reveals what GET would); put the override on GET'],
    ['FROB', 'routes[0].methods.FROB: is not a method the gateway proxies; expected one of GET, POST, PUT, PATCH, DELETE, OPTIONS or another method Node.js parses, such as PURGE or PROPFIND'],
  ])('refuses the method %s, pointing at the key', (method, message) => {
    const text = oneRoute('    methods:', `      ${method}: {}`);
    // the empty override under a refused key is not reported on top
    expect(problem(text)).toBe(`7:7 /routes/0/methods/${method} ${message}`);
  });

  it('accepts other methods Node.js parses (PURGE, PROPFIND, MOVE…), upper-cased', () => {
    const route = firstRoute(oneRoute('    methods:', '      PURGE: { roles: [ops] }', '      propfind: { auth: required }', '      M-SEARCH: { auth: required }'));
    expect(route.methods).toStrictEqual({
      PURGE: { auth: 'required', roles: { any: ['ops'] } },
      PROPFIND: { auth: 'required', roles: null },
      'M-SEARCH': { auth: 'required', roles: null },
    });
  });

  it('refuses the same method twice in different cases', () => {
    const text = oneRoute('    methods:', '      delete: { roles: [a] }', '      DELETE: { roles: [b] }');
    expect(problem(text)).toBe(
      '8:7 /routes/0/methods/DELETE routes[0].methods.DELETE: is the same method as delete above (method names are not case-sensitive here)',
    );
  });

  it('roles under an inherited auth: none', () => {
    const text = oneRoute('    auth: none', '    methods:', '      DELETE: { roles: [admin] }');
    expect(problem(text)).toBe(
      '8:24 /routes/0/methods/DELETE/roles routes[0].methods.DELETE.roles: cannot be used with auth: none (inherited from the route): the session is never looked at, so the roles could never be checked; remove roles or set auth: required',
    );
  });

  it('roles under the override\'s own auth: optional', () => {
    const text = oneRoute('    methods:', '      GET:', '        auth: optional', '        roles: [reader]');
    expect(problem(text)).toBe(
      '9:16 /routes/0/methods/GET/roles routes[0].methods.GET.roles: cannot be used with auth: optional: a request without a session would still pass, so the roles would protect nothing; set auth: required',
    );
  });

  it('an empty override, unknown keys and bad values', () => {
    expect(problem(oneRoute('    methods:', '      GET: {}'))).toBe(
      '7:12 /routes/0/methods/GET routes[0].methods.GET: must be a mapping with roles and/or auth (an override replaces the route’s roles), got an empty mapping',
    );
    expect(problem(oneRoute('    methods:', '      GET: { role: [a] }'))).toBe(
      '7:14 /routes/0/methods/GET/role routes[0].methods.GET.role: is not a known option (did you mean roles?); expected one of auth, roles',
    );
    expect(problem(oneRoute('    methods: [GET]'))).toBe(
      '6:14 /routes/0/methods routes[0].methods: must be a mapping from HTTP method (GET, POST, ...) to { roles, auth }, got a list',
    );
  });
});

describe('parseRoutes: bodyLimit, timeout, csrf', () => {
  it.each([
    ['2048', 2048],
    ['512kb', 512 * 1024],
    ['10mb', 10 * 1024 * 1024],
    ['1MiB', 1024 * 1024],
    ['"4096"', 4096],
  ])('bodyLimit: %s is %i bytes', (value, bytes) => {
    expect(firstRoute(oneRoute(`    bodyLimit: ${value}`)).bodyLimit).toBe(bytes);
  });

  it.each([
    ['0', 'must be positive, got 0'],
    ['-1', 'must be a positive integer number of bytes or a size like "512kb", "10mb" (kb = 1024 bytes), got -1'],
    ['1.5mb', 'must be a positive integer number of bytes or a size like "512kb", "10mb" (kb = 1024 bytes), got "1.5mb"'],
    ['1.5', 'must be a positive integer number of bytes or a size like "512kb", "10mb", got 1.5'],
    ['true', 'must be a positive integer number of bytes or a size like "512kb", "10mb", got true'],
  ])('bodyLimit: %s is refused', (value, message) => {
    expect(problem(oneRoute(`    bodyLimit: ${value}`))).toBe(`6:16 /routes/0/bodyLimit routes[0].bodyLimit: ${message}`);
  });

  it.each([
    ['1500', 1500],
    ['500ms', 500],
    ['90s', 90_000],
    ['2m', 120_000],
    ['1m30s', 90_000],
  ])('timeout: %s is %i ms', (value, ms) => {
    expect(firstRoute(oneRoute(`    timeout: ${value}`)).timeout).toBe(ms);
  });

  it.each([
    ['0', 'must be positive, got 0'],
    ['0s', 'must be positive, got "0s"'],
    ['"30"', 'must be a positive integer number of milliseconds or a duration like "500ms", "30s", "2m", got "30"'],
    ['1.5s', 'must be a positive integer number of milliseconds or a duration like "500ms", "30s", "2m", got "1.5s"'],
    ['30 s', 'must be a positive integer number of milliseconds or a duration like "500ms", "30s", "2m", got "30 s"'],
    ['25d', 'must be at most 2147483647 ms (about 24.8 days, the longest timer Node.js keeps), got "25d"'],
  ])('timeout: %s is refused', (value, message) => {
    expect(problem(oneRoute(`    timeout: ${value}`))).toBe(`6:14 /routes/0/timeout routes[0].timeout: ${message}`);
  });

  it('csrf: a boolean, on by default', () => {
    expect(firstRoute(oneRoute()).csrf).toBe(true);
    expect(firstRoute(oneRoute('    csrf: false')).csrf).toBe(false);
    // YAML 1.2: "yes" is a string, not a boolean
    expect(problem(oneRoute('    csrf: yes'))).toBe('6:11 /routes/0/csrf routes[0].csrf: must be true or false, got "yes"');
  });

  it('methodOverride: refuse (the default) or allow', () => {
    expect(firstRoute(oneRoute()).methodOverride).toBe('refuse');
    expect(DEFAULT_METHOD_OVERRIDE).toBe('refuse');
    expect(firstRoute(oneRoute('    methodOverride: allow')).methodOverride).toBe('allow');
    expect(firstRoute(oneRoute('    methodOverride: refuse')).methodOverride).toBe('refuse');
    expect(problem(oneRoute('    methodOverride: true'))).toBe('6:21 /routes/0/methodOverride routes[0].methodOverride: must be one of refuse, allow, got true');
    expect(problem(oneRoute('    method_override: allow'))).toMatch(/^6:5 \/routes\/0\/method_override routes\[0\]\.method_override: is not a known option \(did you mean methodOverride\?\)/);
  });

  it('unknown route options point at the key and suggest the likely one', () => {
    expect(problem(oneRoute('    rewrite_prefix: /x'))).toBe(
      '6:5 /routes/0/rewrite_prefix routes[0].rewrite_prefix: is not a known option (did you mean rewritePrefix?); expected one of name, host, prefix, upstream, rewritePrefix, auth, roles, methods, bodyLimit, timeout, csrf, methodOverride, credentials, sessionData',
    );
    expect(problem(oneRoute('    <<: { csrf: false }'))).toMatch(/^6:5 \/routes\/0\/<< routes\[0\]\["<<"\]: is not a known option;/);
  });
});

describe('parseRoutes: credentials', () => {
  it('defaults to the session cookie only', () => {
    expect(firstRoute(oneRoute()).credentials).toEqual(['cookie']);
  });

  it('takes a list of cookie, api_key, bearer_jwt', () => {
    expect(firstRoute(oneRoute('    credentials: [api_key, cookie]')).credentials).toEqual(['api_key', 'cookie']);
    expect(firstRoute(oneRoute('    credentials: [bearer_jwt]')).credentials).toEqual(['bearer_jwt']);
  });

  it('an unknown kind points at the item', () => {
    expect(problem(oneRoute('    credentials: [cookie, password]'))).toMatch(/^6:27 \/routes\/0\/credentials\/1 .*one of cookie, api_key, bearer_jwt/);
  });

  it('an empty list, a repeated kind or a string are refused with their position', () => {
    expect(problem(oneRoute('    credentials: []'))).toMatch(/^6:18 \/routes\/0\/credentials /);
    expect(problem(oneRoute('    credentials: [cookie, cookie]'))).toMatch(/^6:18 \/routes\/0\/credentials /);
    expect(problem(oneRoute('    credentials: cookie'))).toMatch(/^6:18 \/routes\/0\/credentials .*list of credential kinds/);
  });
});

describe('parseRoutes: sessionData', () => {
  // oneRoute() with a namespace, then a second route `checkout` (lines 9-11) and `extra` lines of it
  const writer = (data: string[], ...second: string[]): string =>
    lines(...oneRoute('    sessionData:', ...data).trimEnd().split('\n'), '  - name: checkout', '    prefix: /checkout', '    upstream: http://127.0.0.1:4002', ...second);

  it('routes declare nothing by default', () => {
    const route = firstRoute(oneRoute());
    expect(route.sessionData).toBeNull();
    expect(route.reads).toEqual([]);
  });

  it('a writer reads its own namespace, and each reader it names reads it too', () => {
    const routes = parsed(writer(['      namespace: cart', '      maxBytes: 2kb', '      readers: [checkout]'])).routes;
    expect(routes[0]!.sessionData).toEqual({ namespace: 'cart', maxBytes: 2048, delete: false, readers: ['checkout'] });
    expect(routes[0]!.reads).toEqual(['cart']);
    expect(routes[1]!.reads).toEqual(['cart']);
    expect(parsed(writer(['      namespace: cart', '      delete: true'])).routes[0]!.sessionData).toEqual({ namespace: 'cart', maxBytes: 1024, delete: true, readers: [] });
  });

  it('a reader that is no route of the file points at the item', () => {
    expect(problem(writer(['      namespace: cart', '      readers: [checkout, chekout]']))).toBe(
      '8:27 /routes/0/sessionData/readers/1 routes[0].sessionData.readers[1]: "chekout" is not the name of a route in this file',
    );
  });

  it('a namespace written by two routes points at the second, naming the first', () => {
    expect(problem(writer(['      namespace: cart'], '    sessionData: { namespace: cart }'))).toBe(
      '11:31 /routes/1/sessionData/namespace routes[1].sessionData.namespace: "cart" is already written by routes[0] (line 7); a namespace has one writing route',
    );
  });

  it('refuses a cap over 4kb, a bad namespace and unknown options with their position', () => {
    expect(problem(writer(['      namespace: cart', '      maxBytes: 8kb']))).toMatch(/^8:17 \/routes\/0\/sessionData\/maxBytes .*at most 4096 bytes/);
    expect(problem(writer(['      namespace: Cart']))).toMatch(/^7:18 \/routes\/0\/sessionData\/namespace .*lower-case letter, then/);
    expect(problem(writer(['      namespace: cart', '      deletes: true']))).toMatch(/^8:7 \/routes\/0\/sessionData\/deletes .*not a known option/);
  });

  it('refuses it on a route that never sees a session', () => {
    expect(problem(oneRoute('    auth: none', '    sessionData: { namespace: cart }'))).toMatch(/^7:18 \/routes\/0\/sessionData .*auth: none/);
    expect(problem(oneRoute('    credentials: [api_key]', '    sessionData: { namespace: cart }'))).toMatch(/^7:18 \/routes\/0\/sessionData .*session cookie/);
    expect(problem(writer(['      namespace: cart', '      readers: [checkout]'], '    auth: none'))).toMatch(/^8:17 .*readers\/0 .*auth: none/);
  });
});

describe('parseRoutes: many problems at once', () => {
  const text = lines(
    'version: 1', //                         1
    'routes:', //                            2
    '  - name: Bad_Name!', //                3
    '    prefix: api', //                    4
    '    upstream: ftp://x', //              5
    '    auth: none', //                     6
    '    roles: [admin]', //                 7
    '    timeout: soon', //                  8
    '  - name: ok', //                       9
    '    prefix: /ok', //                    10
    '    upstream: http://ok', //            11
    '    methods:', //                       12
    '      TRACE: { roles: [x] }', //        13
    '    csrf: maybe', //                    14
    '  - prefix: /ok/', //                   15
    '    upstream: http://ok', //            16
    'extra: true', //                        17
  );

  it('reports every one, sorted by position, each once', () => {
    expect(problems(text).map((p) => `${p.line}:${p.column} ${p.path}`)).toEqual([
      '3:11 /routes/0/name',
      '4:13 /routes/0/prefix',
      '5:15 /routes/0/upstream',
      '7:12 /routes/0/roles',
      '8:14 /routes/0/timeout',
      '13:7 /routes/1/methods/TRACE',
      '14:11 /routes/1/csrf',
      '15:5 /routes/2/name',
      '15:13 /routes/2/prefix',
      '17:1 /extra',
    ]);
  });

  it('formatProblems prints file:line:column: message lines', () => {
    const found = problems(text);
    const output = formatProblems('conf/routes.yaml', [...found].reverse());
    const printed = output.split('\n');
    expect(printed).toHaveLength(found.length);
    expect(printed[0]).toBe(
      'conf/routes.yaml:3:11: routes[0].name: must match ^[a-z0-9-]+$ (lower-case letters, digits, "-"), got "Bad_Name!"',
    );
    expect(printed.at(-1)).toBe('conf/routes.yaml:17:1: extra: is not a known option; expected one of version, routes');
    for (const line of printed) expect(line).toMatch(/^conf\/routes\.yaml:\d+:\d+: \S/);
    expect(formatProblems('x.yaml', [])).toBe('');
  });
});

describe('parseRoutes never throws', () => {
  it.each(['[', '{', ':::', '\0', '- - -', '&a [*a]', 'version: 1\nroutes: [1, "x", null, []]\n', '? [a]\n: b\n'])(
    '%j',
    (text) => {
      const result = parseRoutes(text, 'x');
      expect(result.ok).toBe(false);
      if (!result.ok) for (const p of result.problems) expect(p.line).toBeGreaterThanOrEqual(1);
    },
  );

  it('on arbitrary text and arbitrary YAML-ish routes', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        // arbitrary text is never a routes file: at least one problem, each at a real position
        const result = parseRoutes(text, 'x');
        expect(result.ok).toBe(false);
        const problems = result.ok ? [] : result.problems;
        expect(problems.length).toBeGreaterThan(0);
        for (const p of problems) expect(p.line).toBeGreaterThanOrEqual(1);
      }),
      { numRuns: 300 },
    );
    const routeLine = fc.constantFrom(
      '    name: a',
      '    prefix: /a',
      '    upstream: http://a',
      '    roles: [x',
      '    roles: { all: [] }',
      '    methods: { GET: { auth: none, roles: [a] } }',
      '    auth: optional',
      '    timeout: 1h',
      '    bodyLimit: 1gb',
      '  - name: b',
      '  -',
      '    : x',
      '    csrf: *x',
    );
    fc.assert(
      fc.property(fc.array(routeLine, { maxLength: 12 }), (extra) => {
        const result = parseRoutes(lines('version: 1', 'routes:', '  - name: z', ...extra), 'x');
        // the frozen routes, route z first, or at least one problem, each at a real position
        if (result.ok) {
          expect(Object.isFrozen(result.routes.routes[0])).toBe(true);
          expect(result.routes.routes[0]!.name).toBe('z');
        } else {
          expect(result.problems.length).toBeGreaterThan(0);
          for (const p of result.problems) expect(p.line).toBeGreaterThanOrEqual(1);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('loadRoutesFile', () => {
  it('reads and parses a file, with the path as source', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sessiongate-routes-'));
    try {
      const file = join(dir, 'routes.yaml');
      await writeFile(file, DESIGN_EXAMPLE);
      const result = await loadRoutesFile(file);
      expect(result.ok && result.routes.source).toBe(file);
      expect(result.ok && result.routes.routes.map((r) => r.name)).toEqual(['auth', 'orders', 'reports']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a missing file is one problem at 1:1 with the OS error and no stack', async () => {
    const file = join(tmpdir(), 'sessiongate-no-such-dir', 'routes.yaml');
    const result = await loadRoutesFile(file);
    expect(result).toStrictEqual({
      ok: false,
      problems: [
        {
          line: 1,
          column: 1,
          path: '',
          message: `cannot read the routes file: ENOENT: no such file or directory, open '${file}'`,
        },
      ],
    });
  });
});

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['90s', 90_000],
    ['30m', 1_800_000],
    ['12h', 43_200_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['0s', 0],
    [0, 0],
    [1500, 1500],
  ] as const)('%j is %i ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each(['', '30', '1.5h', '-1s', '+1s', ' 30s', '30s ', '30 s', '30S', '2M', 's', '1w', '30sec', 'ms', '1e3ms', '9007199254740993ms'])(
    'refuses %j',
    (input) => {
      expect(parseDuration(input)).toBeNull();
    },
  );

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53])('refuses the number %d', (input) => {
    expect(parseDuration(input)).toBeNull();
  });
});

describe('parseByteSize', () => {
  it.each([
    ['1048576', 1_048_576],
    [1_048_576, 1_048_576],
    ['1mb', 1_048_576],
    ['1MB', 1_048_576],
    ['1MiB', 1_048_576],
    ['512kb', 524_288],
    ['512KiB', 524_288],
    ['1gb', 1024 ** 3],
    ['100b', 100],
    ['0', 0],
  ] as const)('%j is %i bytes', (input, bytes) => {
    expect(parseByteSize(input)).toBe(bytes);
  });

  it.each(['', '1.5mb', '-1', '1 mb', '1tb', 'mb', '1m', ' 1kb', '9007199254740993'])('refuses %j', (input) => {
    expect(parseByteSize(input)).toBeNull();
  });

  it.each([-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY])('refuses the number %d', (input) => {
    expect(parseByteSize(input)).toBeNull();
  });
});

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
