import { PAGE_STYLE, brandHeader, escapeHtml, pageHeaders, pageTitle, prefersHtml, type Brand } from '@sessiongate/service-kit';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { AuthRouteOptions } from './options.js';

/** Where a browser goes after signing in when the form names no (acceptable) `next`; LOGIN_DEFAULT_NEXT overrides it. @default '/' */
export const DEFAULT_NEXT = '/';
/** Longest `next` followed; a longer one is ignored (the default is used). */
export const MAX_NEXT_LENGTH = 2048;
/** The form's own address, behind the gateway's `auth` route. */
export const LOGIN_PAGE_PATH = '/auth/login';

/**
 * Carries the user name typed into a failed sign-in back to the form. A cookie, not the
 * URL: a password typed into the wrong field must not land in history or access logs.
 */
export const TYPED_NAME_COOKIE = 'sg_login_name';
const TYPED_NAME_MAX_AGE_S = 300;

export type LoginError = 'invalid' | 'throttled' | 'cross_site';

const MESSAGES: Readonly<Record<LoginError, string>> = {
  invalid: 'The user name or password is not correct.',
  throttled: 'Too many failed sign-ins. Wait a while, then try again.',
  cross_site: 'This request came from another site and was refused. Sign in here instead.',
};

/** "Try again in 15 minutes": the throttle's Retry-After in words. */
function waitMessage(seconds: number): string {
  const when = seconds < 60 ? `${seconds} second${seconds === 1 ? '' : 's'}` : `${Math.ceil(seconds / 60)} minute${seconds > 60 ? 's' : ''}`;
  return `Too many failed sign-ins. Try again in ${when}.`;
}

const esc = escapeHtml;

/** The Set-Cookie that keeps the typed user name for the form (HttpOnly, this page only). */
export function typedNameCookie(name: string, secure: boolean): string {
  return `${TYPED_NAME_COOKIE}=${encodeURIComponent(name.slice(0, 256))}; Path=${LOGIN_PAGE_PATH}; Max-Age=${TYPED_NAME_MAX_AGE_S}; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
}

function typedName(cookieHeader: string | undefined): string | null {
  const m = cookieHeader?.match(new RegExp(`(?:^|;\\s*)${TYPED_NAME_COOKIE}=([^;]*)`));
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]!).slice(0, 256) || null;
  } catch {
    return null;
  }
}

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

/** The login page's address, showing `error` (and how long to `wait`) or a notice, and carrying `next` on. */
export function loginPageUrl(o: { error?: LoginError; wait?: number; notice?: 'signed-out'; next?: string | null } = {}): string {
  const q = new URLSearchParams();
  if (o.error) q.set('error', o.error);
  if (o.error === 'throttled' && o.wait) q.set('wait', String(o.wait));
  if (o.notice) q.set('notice', o.notice);
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
export function loginPage(o: {
  error: LoginError | null;
  next: string | null;
  wait?: number | null;
  notice?: 'signed-out' | null;
  userName?: string | null;
  brand?: Brand | null;
  providers?: readonly SignInProvider[];
  passwordLogin?: boolean;
}): string {
  const message = o.error === 'throttled' && o.wait ? waitMessage(o.wait) : o.error ? MESSAGES[o.error] : '';
  const alert = o.error
    ? `<p id="error" role="alert">${esc(message)}</p>`
    : o.notice === 'signed-out'
      ? '<p id="notice" role="status">You have signed out.</p>'
      : '';
  const described = o.error ? ' aria-describedby="error" aria-invalid="true"' : '';
  const next = o.next ? `<input type="hidden" name="next" value="${esc(o.next)}">` : '';
  const links = (o.providers ?? []).map((p) => `<a class="provider" href="${esc(startUrl(p.id, o.next))}">Sign in with ${esc(p.displayName)}</a>`);
  const providers = links.length ? `<nav aria-label="Other ways to sign in">\n${links.join('\n')}\n</nav>\n` : '';
  const form = o.passwordLogin === false ? '' : passwordForm(next, described, o.userName);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${pageTitle('Sign in', o.brand)}</title>
<style>
${PAGE_STYLE}
nav{margin-top:2rem;border-top:1px solid #ddd;padding-top:1rem}
.provider{display:block;margin-top:.75rem;padding:.5rem 1.25rem;border:1px solid #888;border-radius:3px;text-align:center;color:inherit;text-decoration:none}
</style>
</head>
<body>
<main>
${brandHeader(o.brand)}<h1>Sign in</h1>
${alert}${form}${providers}</main>
</body>
</html>
`;
}

function passwordForm(next: string, described: string, userName: string | null | undefined): string {
  const typed = userName ? ` value="${esc(userName)}"` : '';
  return `<form method="post" action="${esc(LOGIN_PAGE_PATH)}">
${next}<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required${userName ? '' : ' autofocus'}${typed}${described}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required${userName ? ' autofocus' : ''}${described}>
<button type="submit">Sign in</button>
</form>
`;
}

function loginError(value: unknown): LoginError | null {
  return value === 'invalid' || value === 'throttled' || value === 'cross_site' ? value : null;
}

/** Answers with the sign-in page (its protective headers, brand and providers) and `statusCode`. */
export function sendLoginPage(reply: FastifyReply, statusCode: number, opts: AuthRouteOptions, o: { error: LoginError | null; next: string | null }): FastifyReply {
  const page = loginPage({ ...o, brand: opts.brand, providers: opts.oidc?.providers ?? [], passwordLogin: opts.oidc?.passwordLogin ?? true });
  return reply.headers(pageHeaders(opts.brand)).code(statusCode).send(page);
}

/**
 * GET /auth/login: the sign-in form for browsers (the gateway's 401 page links here). It
 * posts to POST /auth/login, which answers a browser form with redirects.
 */
const loginPageRoute: FastifyPluginAsync<AuthRouteOptions> = async (fastify, opts) => {
  const headers = pageHeaders(opts.brand);
  const providers = opts.oidc?.providers ?? [];
  const passwordLogin = opts.oidc?.passwordLogin ?? true;
  fastify.get(LOGIN_PAGE_PATH, async (request, reply) => {
    // unknown or repeated parameters are ignored, never an error: this is a page people land on
    const query = (request.query ?? {}) as Record<string, unknown>;
    const wait = typeof query.wait === 'string' && /^[1-9]\d{0,6}$/.test(query.wait) ? Number(query.wait) : null;
    const page = loginPage({
      error: loginError(query.error),
      next: safeNext(query.next),
      wait,
      notice: query.notice === 'signed-out' ? 'signed-out' : null,
      userName: query.error ? typedName(request.headers.cookie) : null,
      brand: opts.brand,
      providers,
      passwordLogin,
    });
    return reply.headers(headers).code(200).send(page);
  });
};

export default loginPageRoute;
