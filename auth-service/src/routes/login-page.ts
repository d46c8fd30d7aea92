import { prefersHtml } from '@sessiongate/service-kit';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { AuthRouteOptions } from './options.js';

/** Where a browser goes after signing in when the form names no (acceptable) `next`. */
export const DEFAULT_NEXT = '/app';
/** Longest `next` followed; a longer one is ignored (the default is used). */
export const MAX_NEXT_LENGTH = 2048;
/** The form's own address, behind the gateway's `auth` route. */
export const LOGIN_PAGE_PATH = '/auth/login';

// No script on the page, nothing loaded from anywhere: only its own inline style, and the
// form may post only to this origin (redirects included). Never framed (clickjacking).
const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  // not no-referrer: that would make browsers send `Origin: null` with the form post, which
  // the gateway's CSRF check refuses when the browser already holds a session cookie
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
};

export type LoginError = 'invalid' | 'throttled';

const MESSAGES: Readonly<Record<LoginError, string>> = {
  invalid: 'The user name or password is not correct.',
  throttled: 'Too many failed sign-ins. Wait a while, then try again.',
};

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);

/**
 * `value` if it is a path on this site, else null: one leading `/` not followed by another
 * `/` or a `\` (browsers read `//host` and `/\host` as another host), printable ASCII only
 * (no scheme can sneak in, no header injection), and it must still resolve to this origin.
 */
export function safeNext(value: unknown): string | null {
  if (typeof value !== 'string' || value.length > MAX_NEXT_LENGTH) return null;
  if (!/^\/(?![/\\])[\x21-\x7e]*$/.test(value) || value.includes('\\')) return null;
  const base = 'http://next.invalid';
  return new URL(value, base).origin === base ? value : null;
}


/**
 * A browser submitting an HTML form: a form-encoded body from a client that prefers HTML.
 * Such a request is answered with `303 See Other` redirects instead of 204/401/429; every
 * other client (JSON, curl with a form body) keeps the JSON API. `next` is the validated
 * destination the form named, or null (the default applies).
 */
export function browserForm(request: FastifyRequest): { next: string | null } | null {
  const type = request.headers['content-type'];
  if (typeof type !== 'string' || !/^application\/x-www-form-urlencoded\s*(;|$)/i.test(type)) return null;
  if (!prefersHtml(request.headers.accept)) return null;
  const body = request.body;
  const next = body && typeof body === 'object' ? (body as Record<string, unknown>).next : undefined;
  return { next: safeNext(next) };
}

/** The login page's address, showing `error` and carrying `next` on. */
export function loginPageUrl(o: { error?: LoginError; next?: string | null } = {}): string {
  const q = new URLSearchParams();
  if (o.error) q.set('error', o.error);
  if (o.next) q.set('next', o.next);
  const s = q.toString();
  return s ? `${LOGIN_PAGE_PATH}?${s}` : LOGIN_PAGE_PATH;
}

/** Where a sign-in with a provider starts, carrying `next` on. */
export function startUrl(providerId: string, next: string | null): string {
  return `/auth/oidc/${encodeURIComponent(providerId)}/start${next ? `?next=${encodeURIComponent(next)}` : ''}`;
}

/** A "Sign in with …" button of the page: a provider's id and the name people know it by. */
export interface SignInProvider {
  readonly id: string;
  readonly displayName: string;
}

/**
 * The sign-in page: the password form (unless switched off) and a link per provider. Plain
 * HTML, no script, every value escaped. The providers are links, not forms: the CSP's
 * `form-action 'self'` would stop a form's redirect on to the provider.
 */
export function loginPage(o: { error: LoginError | null; next: string | null; providers?: readonly SignInProvider[]; passwordLogin?: boolean }): string {
  const alert = o.error ? `<p id="error" role="alert">${esc(MESSAGES[o.error])}</p>` : '';
  const described = o.error ? ' aria-describedby="error" aria-invalid="true"' : '';
  const next = o.next ? `<input type="hidden" name="next" value="${esc(o.next)}">` : '';
  const links = (o.providers ?? []).map((p) => `<a class="provider" href="${esc(startUrl(p.id, o.next))}">Sign in with ${esc(p.displayName)}</a>`);
  const providers = links.length ? `<nav aria-label="Other ways to sign in">\n${links.join('\n')}\n</nav>\n` : '';
  const form = o.passwordLogin === false ? '' : passwordForm(next, described);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem;color:#222}
label{display:block;margin-top:1rem;font-weight:600}
input{display:block;width:100%;box-sizing:border-box;padding:.45rem;font:inherit}
button{margin-top:1.5rem;padding:.5rem 1.25rem;font:inherit}
#error{padding:.5rem .75rem;border-left:4px solid #b00020;background:#fdecee;color:#7a0015}
nav{margin-top:2rem;border-top:1px solid #ddd;padding-top:1rem}
.provider{display:block;margin-top:.75rem;padding:.5rem 1.25rem;border:1px solid #888;border-radius:3px;text-align:center;color:inherit;text-decoration:none}
</style>
</head>
<body>
<main>
<h1>Sign in</h1>
${alert}${form}${providers}</main>
</body>
</html>
`;
}

function passwordForm(next: string, described: string): string {
  return `<form method="post" action="${esc(LOGIN_PAGE_PATH)}">
${next}<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus${described}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required${described}>
<button type="submit">Sign in</button>
</form>
`;
}

function loginError(value: unknown): LoginError | null {
  return value === 'invalid' || value === 'throttled' ? value : null;
}

/**
 * GET /auth/login: the sign-in form for browsers (the gateway's 401 page links here). It
 * posts to POST /auth/login, which answers a browser form with redirects.
 */
const loginPageRoute: FastifyPluginAsync<AuthRouteOptions> = async (fastify, opts) => {
  const providers = opts.oidc?.providers ?? [];
  const passwordLogin = opts.oidc?.passwordLogin ?? true;
  fastify.get(LOGIN_PAGE_PATH, async (request, reply) => {
    // unknown or repeated parameters are ignored, never an error: this is a page people land on
    const query = (request.query ?? {}) as Record<string, unknown>;
    return reply.headers(PAGE_HEADERS).code(200).send(loginPage({ error: loginError(query.error), next: safeNext(query.next), providers, passwordLogin }));
  });
};

export default loginPageRoute;
