import type { FastifyReply } from 'fastify';
import { loginPageUrl } from '../routes/login-page.js';

// The pages a browser meets when an OpenID Connect sign-in cannot finish, and the one it
// passes through after signing out. Plain HTML, no script, every value escaped.

const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);

/** Why a sign-in with a provider did not finish, as the browser is told. */
export type SignInFailure = 'unknown_provider' | 'stale' | 'refused' | 'invalid_response' | 'unreachable' | 'forbidden' | 'unavailable';

const FAILURES: Readonly<Record<SignInFailure, { status: number; title: string; text: (provider: string) => string }>> = {
  unknown_provider: { status: 404, title: 'Unknown sign-in provider', text: () => 'There is no sign-in provider of that name here.' },
  stale: {
    status: 400,
    title: 'This sign-in has expired',
    text: () => 'This sign-in link was already used, has expired, or was started in another window. Start again.',
  },
  refused: { status: 400, title: 'Sign-in cancelled', text: (p) => `${p} did not complete the sign-in.` },
  invalid_response: {
    status: 400,
    title: 'Sign-in failed',
    text: (p) => `The answer from ${p} could not be verified, so you were not signed in. Start again.`,
  },
  unreachable: {
    status: 502,
    title: 'Sign-in provider unavailable',
    text: (p) => `${p} cannot be reached right now. Try again later.`,
  },
  forbidden: {
    status: 403,
    title: 'Not allowed to sign in',
    text: (p) => `Your ${p} account is not allowed to sign in here. Ask an administrator for access.`,
  },
  unavailable: { status: 503, title: 'Sign-in unavailable', text: () => 'Signing in is unavailable right now. Try again later.' },
};

function page(title: string, body: string, head = ''): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${head}<title>${esc(title)}</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem;color:#222}
#error{padding:.5rem .75rem;border-left:4px solid #b00020;background:#fdecee;color:#7a0015}
</style>
</head>
<body>
<main>
<h1>${esc(title)}</h1>
${body}
</main>
</body>
</html>
`;
}

/** Answers a browser whose sign-in with `provider` (its display name) did not finish. */
export function sendFailure(reply: FastifyReply, failure: SignInFailure, provider: string, next: string | null): FastifyReply {
  const f = FAILURES[failure];
  const body = `<p id="error" role="alert" data-failure="${failure}">${esc(f.text(provider))}</p>
<p><a href="${esc(loginPageUrl({ next }))}">Back to sign-in</a></p>`;
  return reply.headers(PAGE_HEADERS).code(f.status).send(page(f.title, body));
}

/**
 * After signing out of a session a provider signed in: the browser goes on to the provider's
 * own sign-out. A page of its own rather than a redirect: the sign-out form that led here may
 * sit on a page whose CSP `form-action` allows no other origin.
 */
export function sendSignedOut(reply: FastifyReply, provider: string, endSessionUrl: string | null): FastifyReply {
  if (!endSessionUrl) {
    const body = `<p>You are signed out.</p>\n<p><a href="${esc(loginPageUrl())}">Sign in again</a></p>`;
    return reply.headers(PAGE_HEADERS).code(200).send(page('Signed out', body));
  }
  const url = esc(endSessionUrl);
  const body = `<p>You are signed out here. Continuing to ${esc(provider)} to sign out there too…</p>
<p><a id="continue" href="${url}">Sign out at ${esc(provider)}</a></p>`;
  return reply.headers(PAGE_HEADERS).code(200).send(page('Signed out', body, `<meta http-equiv="refresh" content="0;url=${url}">\n`));
}
