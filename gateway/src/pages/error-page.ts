// The error pages a browser sees (the same status and code as the JSON body an API client
// gets): plain words, what to do next, the product's name, the sign-in page's look.
import type { IncomingMessage } from 'node:http';
import { PAGE_STYLE, brandHeader, escapeHtml as esc, pageTitle, type Brand, type ErrorBody } from '@sessiongate/service-kit';
import { canonicalize } from '../routes/canonical-path.js';

/** What a page knows beyond the error: where to sign in and out, who is signed in. */
export interface ErrorPageContext {
  /** The sign-in page, with `next` back to this page; null: no sign-in page. */
  signIn: string | null;
  /** Where the sign-out form posts; null: no sign-out. */
  signOut: string | null;
  /** This page (path and query), carried as `next` by the sign-out form. */
  here: string | null;
  /** A same-site page to go back to. */
  back: string;
  /** Whom the session belongs to, when the gate knows one (a 403). */
  user: { sub: string; name: string | null } | null;
  brand: Brand | null;
}

interface Words {
  title: string;
  text: string;
}

const WORDS: Readonly<Record<number, Words>> = {
  400: { title: 'This address cannot be opened', text: 'The address is not one this site can serve.' },
  401: { title: 'Sign in to continue', text: 'You need to be signed in to see this page.' },
  403: { title: 'You do not have access to this page', text: 'This page needs an access your account does not have.' },
  404: { title: 'There is nothing at this address', text: 'Check the address, or start again from the home page.' },
  405: { title: 'This action is not allowed here', text: 'The page does not accept this kind of request.' },
  413: { title: 'What you sent is too large', text: 'Try again with something smaller.' },
  429: { title: 'Too many requests', text: 'Wait a moment, then try again.' },
  431: { title: 'Your browser sent too much', text: 'Clearing this site’s cookies usually helps.' },
  502: { title: 'The service behind this page is not answering', text: 'This is usually temporary: try again in a minute.' },
  503: { title: 'This page is unavailable for a moment', text: 'This is temporary: try again in a minute.' },
  504: { title: 'The service behind this page took too long', text: 'This is usually temporary: try again in a minute.' },
};

function wordsFor(statusCode: number, body: ErrorBody): Words {
  if (body.error === 'csrf_rejected') {
    return { title: 'This request was refused', text: 'It came from another site. Go back to the page and try again from there.' };
  }
  return WORDS[statusCode] ?? (statusCode >= 500 ? WORDS[503]! : { title: 'This request cannot be served', text: body.message });
}

/** The ways on from the page, as list items. */
function waysOut(statusCode: number, body: ErrorBody, ctx: ErrorPageContext): string[] {
  const back = `<li><a href="${esc(ctx.back)}">Back</a></li>`;
  if (statusCode === 401) return ctx.signIn ? [`<li><a href="${esc(ctx.signIn)}">Sign in</a></li>`] : [back];
  if (statusCode === 403 && body.error === 'forbidden' && ctx.user) {
    const ways: string[] = [];
    if (ctx.signOut) {
      const next = ctx.here ? `<input type="hidden" name="next" value="${esc(ctx.here)}">` : '';
      ways.push(`<li><form method="post" action="${esc(ctx.signOut)}">${next}<button type="submit">Sign out</button></form></li>`);
    }
    if (ctx.signIn) ways.push(`<li><a href="${esc(ctx.signIn)}">Sign in as someone else</a></li>`);
    return [...ways, back];
  }
  if (statusCode === 404) return ['<li><a href="/">Home page</a></li>'];
  return [back];
}

/** The error as a small HTML page: the same status and code as the JSON body, in words. */
export function errorPage(statusCode: number, body: ErrorBody, ctx: ErrorPageContext): string {
  const words = wordsFor(statusCode, body);
  const who =
    statusCode === 403 && body.error === 'forbidden' && ctx.user
      ? `<p id="user">You are signed in as <strong>${esc(ctx.user.name ? `${ctx.user.name} (${ctx.user.sub})` : ctx.user.sub)}</strong>.</p>\n`
      : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${pageTitle(words.title, ctx.brand)}</title>
<style>
${PAGE_STYLE}
</style>
</head>
<body>
<main>
${brandHeader(ctx.brand)}<h1>${esc(words.title)}</h1>
${who}<p id="explanation">${esc(words.text)}</p>
<ul class="ways">${waysOut(statusCode, body, ctx).join('')}</ul>
<p class="code">Error ${statusCode} · <code>${esc(body.error)}</code></p>
</main>
</body>
</html>
`;
}

/** The request's own path and query, if it is a page a browser may come back to. */
function pageOf(raw: IncomingMessage): string | null {
  if (raw.method !== 'GET') return null;
  const c = canonicalize(raw.url ?? '/');
  return c.ok ? c.path + c.query : null;
}

/** The referring page, when it is on this site (Host), else the home page. */
function backFrom(raw: IncomingMessage): string {
  const referer = raw.headers.referer;
  const host = raw.headers.host;
  if (!referer || !host) return '/';
  try {
    const u = new URL(referer);
    return u.host === host && (u.protocol === 'https:' || u.protocol === 'http:') ? u.pathname + u.search : '/';
  } catch {
    return '/';
  }
}

/** What the error page of this request can offer. */
export function errorPageContext(
  raw: IncomingMessage,
  o: {
    loginPath: string | null;
    logoutPath: string | null;
    brand: Brand | null;
    user: { sub: string; claims?: Readonly<Record<string, unknown>> } | null;
  },
): ErrorPageContext {
  const here = pageOf(raw);
  const signIn = o.loginPath === null ? null : here ? `${o.loginPath}?next=${encodeURIComponent(here)}` : o.loginPath;
  const name = o.user?.claims?.name;
  return {
    signIn,
    signOut: o.logoutPath,
    here,
    back: backFrom(raw),
    user: o.user ? { sub: o.user.sub, name: typeof name === 'string' && name ? name : null } : null,
    brand: o.brand,
  };
}
