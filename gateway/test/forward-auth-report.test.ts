import { describe, expect, it } from 'vitest';
import { isEndpointTarget, readReport } from '../src/forward-auth/report.js';

// How the endpoint reads each proxy's description of the request it holds, and what it
// refuses: a description it would have to guess at.

const ok = (target: string, method: string, headers: Record<string, string>) => {
  const r = readReport(target, method, headers);
  if (!r.ok) throw new Error(r.reason);
  return [r.style, r.method, r.target, r.host];
};
const reason = (target: string, method: string, headers: Record<string, string>) => {
  const r = readReport(target, method, headers);
  return r.ok ? null : r.reason;
};

describe('isEndpointTarget', () => {
  it('is the exact path, then nothing, a query or a path under it', () => {
    const yes = ['/_sessiongate/authz', '/_sessiongate/authz?', '/_sessiongate/authz?x=1', '/_sessiongate/authz/', '/_sessiongate/authz/a?b'];
    const no = ['/_sessiongate/authzx', '/_sessiongate//authz', '/_sessiongate/%61uthz', '/_SESSIONGATE/authz', '//_sessiongate/authz', '/x/../_sessiongate/authz', '/_sessiongate/authz%2f'];
    expect(yes.map(isEndpointTarget)).toEqual(yes.map(() => true));
    expect(no.map(isEndpointTarget)).toEqual(no.map(() => false));
    expect(isEndpointTarget(undefined)).toBe(false);
  });
});

describe('readReport', () => {
  it('reads each dialect', () => {
    expect(ok('/_sessiongate/authz', 'GET', { 'x-original-uri': '/a?b=1', 'x-original-method': 'POST', host: 'app.example.com' })).toEqual(['nginx', 'POST', '/a?b=1', 'app.example.com']);
    expect(ok('/_sessiongate/authz?', 'GET', { 'x-forwarded-uri': '/a', 'x-forwarded-method': 'PUT', 'x-forwarded-host': 'app.example.com:8443', host: '127.0.0.1:8080' })).toEqual(['forwarded', 'PUT', '/a', 'app.example.com:8443']);
    expect(ok('/_sessiongate/authz', 'GET', { 'x-original-url': 'https://app.example.com/a/b?c', 'x-original-method': 'DELETE', host: 'sessiongate' })).toEqual(['ingress-nginx', 'DELETE', '/a/b?c', 'app.example.com']);
    expect(ok('/_sessiongate/authz', 'GET', { 'x-original-url': 'http://app.example.com', 'x-original-method': 'GET' })).toEqual(['ingress-nginx', 'GET', '/', 'app.example.com']);
    expect(ok('/_sessiongate/authz/orders/7?x=1', 'PATCH', { host: 'app.example.com' })).toEqual(['envoy', 'PATCH', '/orders/7?x=1', 'app.example.com']);
  });

  it("ignores the endpoint's own query string", () => {
    expect(ok('/_sessiongate/authz?x=/admin', 'GET', { 'x-original-uri': '/a', 'x-original-method': 'GET' })[2]).toBe('/a');
  });

  it('refuses two descriptions at once, whichever proxy added which', () => {
    const mixed: Record<string, string>[] = [
      { 'x-original-uri': '/a', 'x-original-method': 'GET', 'x-forwarded-uri': '/b' },
      { 'x-original-uri': '/a', 'x-original-method': 'GET', 'x-forwarded-method': 'GET' },
      { 'x-forwarded-uri': '/a', 'x-forwarded-method': 'GET', 'x-forwarded-host': 'h', 'x-original-method': 'GET' },
      { 'x-original-url': 'http://h/a', 'x-original-method': 'GET', 'x-original-uri': '/a' },
      { 'x-original-url': 'http://h/a', 'x-original-method': 'GET', 'x-forwarded-uri': '/a' },
    ];
    for (const h of mixed) expect(reason('/_sessiongate/authz', 'GET', h), JSON.stringify(h)).not.toBeNull();
    expect(reason('/_sessiongate/authz/a', 'GET', { 'x-original-uri': '/a', 'x-original-method': 'GET' })).toMatch(/more than one way/);
    expect(reason('/_sessiongate/authz/a', 'GET', { 'x-forwarded-method': 'POST' })).toMatch(/method field/);
  });

  it('refuses a missing or malformed part', () => {
    expect(reason('/_sessiongate/authz', 'GET', {})).toMatch(/no original URI/);
    expect(reason('/_sessiongate/authz', 'GET', { 'x-original-uri': '/a' })).toMatch(/no valid original method/);
    expect(reason('/_sessiongate/authz', 'GET', { 'x-original-uri': '/a', 'x-original-method': 'GE T' })).toMatch(/no valid original method/);
    expect(reason('/_sessiongate/authz', 'GET', { 'x-original-uri': 'a', 'x-original-method': 'GET' })).toMatch(/does not start with/);
    expect(reason('/_sessiongate/authz', 'GET', { 'x-original-uri': 'http://h/a', 'x-original-method': 'GET' })).toMatch(/does not start with/);
    expect(reason('/_sessiongate/authz', 'GET', { 'x-forwarded-uri': '/a', 'x-forwarded-method': 'GET' })).toMatch(/without X-Forwarded-Host/);
    expect(reason('/_sessiongate/authz', 'GET', { 'x-original-url': '/a', 'x-original-method': 'GET' })).toMatch(/absolute/);
  });
});
