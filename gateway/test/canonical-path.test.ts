import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalize, MAX_TARGET_LENGTH } from '../src/routes/canonical-path.js';
import { RouteTable, upstreamPath } from '../src/routes/match.js';
import type { Route } from '../src/routes/types.js';

const NUM_RUNS = 2000;

function ok(target: string): { path: string; query: string } {
  const r = canonicalize(target);
  if (!r.ok) throw new Error(`expected ${JSON.stringify(target)} to canonicalize, got 400: ${r.reason}`);
  return { path: r.path, query: r.query };
}

describe('canonicalize: the path table of docs/routes.md', () => {
  // [request target, canonical path]
  const accepted: [string, string][] = [
    // '.' and '..' segments written plainly are resolved
    ['/public/../admin', '/admin'],
    ['/a/./b', '/a/b'],
    ['/a/b/../c', '/a/c'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/a/..', '/'],
    ['/.', '/'],
    ['/./', '/'],
    ['/a/b/../../c', '/c'],
    ['/a/../b/./c/..', '/b/'],
    // three dots or dots inside a segment are ordinary names
    ['/...', '/...'],
    ['/a/.../b', '/a/.../b'],
    ['/.well-known/jwks.json', '/.well-known/jwks.json'],
    ['/a..b/c.', '/a..b/c.'],
    // duplicate slashes collapse
    ['//admin', '/admin'],
    ['/a//b', '/a/b'],
    ['/a///b//', '/a/b/'],
    ['//', '/'],
    ['///', '/'],
    ['/a/..//b', '/b'],
    // percent-encoded letters, digits, '-', '.', '_', '~' are decoded
    ['/%41', '/A'],
    ['/%61dmin', '/admin'],
    ['/%30%39', '/09'],
    ['/a%2Db%5Fc%7Ed', '/a-b_c~d'],
    ['/a%2db%5fc%7ed', '/a-b_c~d'],
    ['/a%2Eb', '/a.b'],
    ['/%2e%2e%2e', '/...'],
    ['/.%2e.', '/...'],
    ['/x/%2E%2e.', '/x/...'],
    // any other percent-encoding is kept as is, hex upper-cased
    ['/a%20b', '/a%20b'],
    ['/caf%C3%A9', '/caf%C3%A9'],
    ['/caf%c3%a9', '/caf%C3%A9'],
    ['/%3F', '/%3F'],
    ['/%23x', '/%23x'],
    ['/%3a%40%2b', '/%3A%40%2B'],
    ['/%FF', '/%FF'],
    ['/%80', '/%80'],
    // trailing slash preserved
    ['/', '/'],
    ['/a/', '/a/'],
    ['/a', '/a'],
    // sub-delims, ':' and '@' and other printable ASCII pass through unchanged
    ["/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="],
    ['/a|b^c[d]', '/a|b^c[d]'],
  ];

  it.each(accepted)('%s -> %s', (target, path) => {
    expect(canonicalize(target)).toEqual({ ok: true, path, query: '' });
  });

  // [request target, a word the reason must contain]
  const rejected: [string, RegExp][] = [
    // encoded dot-segments
    ['/%2e', /dot-segment/],
    ['/%2E', /dot-segment/],
    ['/%2e%2e', /dot-segment/],
    ['/%2E%2E/admin', /dot-segment/],
    ['/.%2e', /dot-segment/],
    ['/%2e.', /dot-segment/],
    ['/public/%2e%2e/admin', /dot-segment/],
    ['/a/%2e/', /dot-segment/],
    // forbidden encodings
    ['/a%2Fb', /%2F/],
    ['/a%2fb', /%2F/],
    ['/a%5Cb', /%5C/],
    ['/a%5cb', /%5C/],
    ['/a%25b', /%25/],
    ['/a%2541', /%25/],
    ['/a%00', /control/],
    ['/a%0a', /control/],
    ['/a%1F', /control/],
    ['/a%7F', /control/],
    ['/a%7f', /control/],
    ['/a;b', /';'/],
    ['/a;jsessionid=1', /';'/],
    ['/a%3Bb', /%3B/],
    ['/a%3bb', /%3B/],
    // raw characters
    ['/a\\b', /backslash/],
    ['/\\admin', /backslash/],
    ['/a\u0000b', /control/],
    ['/a\tb', /control/],
    ['/a\rb', /control/],
    ['/a\nb', /control/],
    ['/a\u001fb', /control/],
    ['/a\u007fb', /control/],
    ['/a b', /space/],
    ['/caf\u00e9', /non-ASCII/],
    ['/\u00ff', /non-ASCII/],
    ['/\u20ac', /non-ASCII/],
    ['/\ud83d\ude00', /non-ASCII/],
    // malformed percent-encoding
    ['/%', /malformed/],
    ['/a%', /malformed/],
    ['/%4', /malformed/],
    ['/%G1', /malformed/],
    ['/%1G', /malformed/],
    ['/%%41', /malformed/],
    ['/%4/', /malformed/],
    ['/%4?x', /malformed/],
    ['/%\u00c3\u00a9', /malformed/],
    // climbing above the root
    ['/..', /above the root/],
    ['/../', /above the root/],
    ['/../admin', /above the root/],
    ['/a/../..', /above the root/],
    ['/a/../../b', /above the root/],
    ['//..', /above the root/],
    // not origin-form
    ['http://host/x', /start with '\/'/],
    ['https://host', /start with '\/'/],
    ['host:443', /start with '\/'/],
    ['*', /'\*'/],
    ['admin', /start with '\/'/],
    ['', /empty/],
    // fragments
    ['/a#b', /'#'/],
    ['/a?b#c', /'#'/],
    ['/#', /'#'/],
  ];

  it.each(rejected)('%j -> 400', (target, reason) => {
    const r = canonicalize(target);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });

  it('never echoes the request target in the reason', () => {
    // the secret rides in the path after the fault, and in the query: either way the target
    // stays a 400 (the empty target has no path to carry it)
    const carriers = rejected.flatMap(([target]) => [...(target === '' ? [] : [`${target}/SECRETSECRET`]), `${target}?SECRETSECRET`]);
    expect(carriers.length).toBe(2 * rejected.length - 1);
    for (const target of carriers) {
      const r = canonicalize(target);
      expect(r, target).toMatchObject({ ok: false });
      expect((r as { reason: string }).reason, target).not.toContain('SECRET');
    }
  });
});

describe('canonicalize: query', () => {
  it('splits at the first "?" and returns the query exactly as received', () => {
    expect(ok('/a?b=1&c=%2F..%2e;\\x|')).toEqual({ path: '/a', query: '?b=1&c=%2F..%2e;\\x|' });
    expect(ok('/a?')).toEqual({ path: '/a', query: '?' });
    expect(ok('/?x')).toEqual({ path: '/', query: '?x' });
    expect(ok('/a?b?c=/../')).toEqual({ path: '/a', query: '?b?c=/../' });
    expect(ok('/a?%zz%')).toEqual({ path: '/a', query: '?%zz%' });
  });

  it('does not select anything from the query: the path before "?" is canonicalized on its own', () => {
    expect(ok('/public/../admin?/public')).toEqual({ path: '/admin', query: '?/public' });
    expect(ok('/public?/../admin')).toEqual({ path: '/public', query: '?/../admin' });
    expect(ok('//a//b/..?q=%41')).toEqual({ path: '/a/', query: '?q=%41' });
  });

  it('rejects characters no request-target can hold', () => {
    for (const q of ['?a b', '?a\tb', '?a\u0000', '?\u007f', '?caf\u00e9', '?a#b', '?\u20ac']) {
      expect(canonicalize('/a' + q).ok).toBe(false);
    }
  });

  it('still rejects a bad path when the query is fine', () => {
    expect(canonicalize('/%2e%2e?x=1').ok).toBe(false);
    expect(canonicalize('/a;b?x=1').ok).toBe(false);
  });
});

describe('canonicalize: limits and fast path', () => {
  it(`accepts ${MAX_TARGET_LENGTH} characters and refuses one more`, () => {
    const max = '/' + 'a'.repeat(MAX_TARGET_LENGTH - 1);
    expect(ok(max).path).toBe(max);
    expect(canonicalize(max + 'a')).toEqual({ ok: false, reason: 'request target too long' });
    // the query counts too
    expect(canonicalize('/a?' + 'q'.repeat(MAX_TARGET_LENGTH)).ok).toBe(false);
  });

  it('returns the input itself when nothing needs rewriting', () => {
    const target = '/api/orders/7/items.json';
    expect(ok(target).path).toBe(target);
    expect(ok('/a/b/')).toEqual({ path: '/a/b/', query: '' });
    // upper-case kept escapes are already canonical
    expect(ok('/caf%C3%A9/x').path).toBe('/caf%C3%A9/x');
  });

  it('stays linear on adversarial input', () => {
    const many = '/a'.repeat(1600) + '/..'.repeat(1600);
    const started = performance.now();
    for (let n = 0; n < 50; n++) canonicalize(many);
    expect(canonicalize(many)).toEqual({ ok: true, path: '/', query: '' });
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

// ---------------------------------------------------------------------------------------
// Reference model: written for clarity (split, decode, resolve), not speed. null is 400.

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
const FORBIDDEN_BYTES = new Set([0x2f, 0x5c, 0x25, 0x3b, 0x7f]);

function referenceDecodeSegment(raw: string): string | null {
  const pieces = raw.split('%');
  let out = pieces[0]!;
  for (const piece of pieces.slice(1)) {
    const hex = piece.slice(0, 2);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
    const byte = parseInt(hex, 16);
    if (byte < 0x20 || FORBIDDEN_BYTES.has(byte)) return null;
    const ch = String.fromCharCode(byte);
    out += (UNRESERVED.test(ch) ? ch : '%' + hex.toUpperCase()) + piece.slice(2);
  }
  return out;
}

function reference(target: string): { path: string; query: string } | null {
  if (target.length === 0 || target.length > MAX_TARGET_LENGTH) return null;
  if (!target.startsWith('/')) return null;
  const q = target.indexOf('?');
  const rawPath = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q);
  for (const ch of query) {
    const c = ch.codePointAt(0)!;
    if (c <= 0x20 || c >= 0x7f || ch === '#') return null;
  }
  for (const ch of rawPath) {
    const c = ch.codePointAt(0)!;
    if (c <= 0x20 || c >= 0x7f || ch === '#' || ch === '\\' || ch === ';') return null;
    // what a URL serializer would percent-encode upstream is refused raw
    if ('"<>`{}'.includes(ch)) return null;
  }
  const raws = rawPath.slice(1).split('/');
  const out: string[] = [];
  let trailing = false;
  for (const [index, raw] of raws.entries()) {
    const last = index === raws.length - 1;
    const seg = referenceDecodeSegment(raw);
    if (seg === null) return null;
    if ((seg === '.' || seg === '..') && seg !== raw) return null;
    if (seg === '') {
      if (last) trailing = true;
    } else if (seg === '.') {
      if (last) trailing = true;
    } else if (seg === '..') {
      if (out.pop() === undefined) return null;
      if (last) trailing = true;
    } else {
      out.push(seg);
      if (last) trailing = false;
    }
  }
  const path = '/' + out.join('/') + (trailing && out.length > 0 ? '/' : '');
  return { path, query };
}

// How a lenient upstream might read a path: every escape decoded, '\' and ';' taken as
// their usual meanings, slashes collapsed, dot-segments resolved (clamped at the root).
function lenientUpstreamView(path: string): string {
  const decoded = path.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  const out: string[] = [];
  for (const seg of decoded.replaceAll('\\', '/').split('/')) {
    const name = seg.split(';')[0]!;
    if (name === '' || name === '.') continue;
    if (name === '..') out.pop();
    else out.push(name);
  }
  return '/' + out.join('/');
}

function fullyDecoded(path: string): string {
  const decoded = path.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return decoded.length > 1 && decoded.endsWith('/') ? decoded.slice(0, -1) : decoded;
}

// Pieces inputs are built from: plain names, dot-segments in every spelling, escapes of
// every kind, forbidden characters, duplicate slashes, non-ASCII, a query.
const TOKENS = [
  'a', 'B', 'admin', 'public', 'x.y', '...', '.', '..', '/', '//', '%2e', '%2E', '%2e%2e', '.%2e', '%2e.',
  '%2F', '%2f', '%5C', '%25', '%41', '%61', '%7e', '%7E', '%2D', '%20', '%c3%a9', '%C3%A9', '%3B', ';', '\\',
  '%00', '%1f', '%7F', '%', '%4', '%G1', ' ', '\t', '\u00e9', '\u20ac', '#', '?', '?q=/../%2F', '~', '-', '_',
  ':', '@', '!', '*',
];
const tokenPath = fc
  .array(fc.constantFrom(...TOKENS), { maxLength: 12 })
  .map((tokens) => '/' + tokens.join(''));
const segmentPath = fc
  .array(fc.constantFrom(...TOKENS), { maxLength: 8 })
  .map((segments) => '/' + segments.join('/'));
const anyTarget = fc.oneof(
  tokenPath,
  segmentPath,
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
);

function isUnder(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(prefix + '/');
}

describe('canonicalize: properties', () => {
  it('agrees with the reference model on every input', () => {
    fc.assert(
      fc.property(anyTarget, (target) => {
        const r = canonicalize(target);
        const expected = reference(target);
        if (expected === null) expect(r.ok).toBe(false);
        else expect(r).toEqual({ ok: true, ...expected });
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('is idempotent: a canonical path canonicalizes to itself', () => {
    fc.assert(
      fc.property(anyTarget, (target) => {
        const r = canonicalize(target);
        if (!r.ok) return;
        expect(canonicalize(r.path + r.query)).toEqual(r);
        expect(canonicalize(r.path)).toEqual({ ok: true, path: r.path, query: '' });
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('never outputs anything an upstream could read differently', () => {
    fc.assert(
      fc.property(anyTarget, (target) => {
        const r = canonicalize(target);
        if (!r.ok) return;
        const { path } = r;
        expect(path.startsWith('/')).toBe(true);
        expect(path).not.toContain('//');
        expect(path).not.toMatch(/(^|\/)\.\.?(\/|$)/);
        expect(path).not.toMatch(/%(2F|5C|25|3B)/i);
        expect(path).not.toMatch(/[;\\#?\u0000-\u0020\u007f-\uffff]/);
        for (const [, hex] of path.matchAll(/%(..)/g)) {
          expect(hex).toMatch(/^[0-9A-F]{2}$/);
          const byte = parseInt(hex!, 16);
          expect(UNRESERVED.test(String.fromCharCode(byte))).toBe(false);
          expect(byte >= 0x20 && byte !== 0x7f).toBe(true);
        }
        // a lenient upstream that decodes everything sees the same segments we matched on
        expect(lenientUpstreamView(path)).toBe(fullyDecoded(path));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('decides policy on the path the upstream gets: /public/<junk>/../admin never stays public', () => {
    const routes: Route[] = [testRoute('public', '/public'), testRoute('admin', '/admin')];
    const table = new RouteTable(routes);
    const junkSegment = fc.constantFrom(
      ...['x', '..', '.', '', '%2e', '%2e%2e', '.%2e', '%2F', '%5C', ';', '%41', 'admin', '%61dmin', '\\'],
    );
    const junk = fc.array(junkSegment, { maxLength: 4 });
    const tail = fc.constantFrom('admin', '%61dmin', 'ADMIN', 'admin/', 'admin/x', 'adminx');
    const attack = fc
      .tuple(junk, fc.integer({ min: 0, max: 4 }), tail)
      .map(([segments, climbs, tail]) => ['/public', ...segments].join('/') + '/..'.repeat(climbs) + '/' + tail);
    let reachedAdmin = 0;
    fc.assert(
      fc.property(attack, (target) => {
        const r = canonicalize(target);
        const expected = reference(target);
        if (!r.ok) {
          expect(expected).toBeNull();
          return;
        }
        expect(r.path).toBe(expected?.path);
        const route = table.match(r.path);
        const forwarded = route === null ? null : upstreamPath(route, r.path);
        // what policy matched, what is forwarded and what a lenient upstream resolves all agree
        const upstreamSees = lenientUpstreamView(r.path);
        if (isUnder(upstreamSees, '/admin')) {
          reachedAdmin++;
          expect(route?.name).toBe('admin');
          expect(forwarded).toBe(r.path);
        } else if (isUnder(upstreamSees, '/public')) {
          expect(route?.name).toBe('public');
        } else {
          expect(route).toBeNull();
        }
      }),
      { numRuns: NUM_RUNS },
    );
    // the generator does produce raw '/public/...' targets that land on /admin
    expect(reachedAdmin).toBeGreaterThan(0);
  });
});

function testRoute(name: string, prefix: string): Route {
  return {
    name,
    host: null,
    prefix,
    upstream: 'http://127.0.0.1:4000',
    rewritePrefix: undefined,
    rule: { auth: name === 'public' ? 'none' : 'required', roles: null },
    methods: {},
    bodyLimit: 1024 * 1024,
    timeout: 30_000,
    csrf: true,
    methodOverride: 'refuse',
    credentials: ['cookie'],
    sessionData: null,
    reads: [],
  };
}
