import { expect } from 'vitest';
import { cookieToken } from './auth-service.js';
import type { TestGateway } from './gateway.js';

// Requests through a test gateway whose /auth route reaches a real auth service (routesYaml
// with `auth`): sign in, read a route that needs role `user`, post with the cookie, and wait
// for a revocation to arrive.

/** POST /auth/login through the gateway; resolves the session's cookie token. */
export async function loginThrough(g: TestGateway, username: string, password: string): Promise<string> {
  const res = await g.gw.app.inject({ method: 'POST', url: '/auth/login', payload: { username, password } });
  expect(res.statusCode, res.body).toBe(204);
  return cookieToken(res);
}

/** GET /api/orders/1 (routesYaml's `orders`: roles [user]) with this session cookie. */
export function getOrder(g: TestGateway, token: string) {
  return g.gw.app.inject({ url: '/api/orders/1', headers: { cookie: `sid=${token}` } });
}

/** A same-origin POST with this session cookie. */
export function postWithSession(g: TestGateway, url: string, token: string) {
  return g.gw.app.inject({ method: 'POST', url, headers: { cookie: `sid=${token}`, 'sec-fetch-site': 'same-origin' } });
}

/**
 * Polls GET /api/orders/1 every `pollMs` until `g` refuses the token (401); resolves the
 * time it took. Any other status than 200 on the way, or no 401 after `limitMs`, fails.
 */
export async function msUntilRefused(g: TestGateway, token: string, limitMs: number, pollMs = 50): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const res = await getOrder(g, token);
    const elapsed = performance.now() - t0;
    if (res.statusCode === 401) return elapsed;
    // never a failure of another kind on the way
    expect(res.statusCode).toBe(200);
    if (elapsed > limitMs) throw new Error(`still honoured after ${Math.round(elapsed)} ms`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
