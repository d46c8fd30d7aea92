// A small scripted browser for tests that need no rendering: a cookie jar per origin
// (host and port), redirects followed by hand (every hop recorded), and HTML forms read and
// submitted. Enough to walk a real OpenID Connect sign-in across the gateway and a provider.

export interface Hop {
  url: string;
  status: number;
  location: string | null;
  setCookies: string[];
}

export interface Page {
  url: string;
  status: number;
  body: string;
  headers: Headers;
  hops: Hop[];
}

export class WebClient {
  /** origin → name → value */
  readonly jar = new Map<string, Map<string, string>>();

  cookies(url: string): Map<string, string> {
    const origin = new URL(url).origin;
    let m = this.jar.get(origin);
    if (!m) this.jar.set(origin, (m = new Map()));
    return m;
  }

  private store(url: string, setCookies: string[]): void {
    const jar = this.cookies(url);
    for (const sc of setCookies) {
      const [pair, ...attrs] = sc.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const maxAge = attrs.map((a) => a.trim()).find((a) => /^max-age=/i.test(a));
      const expired = (maxAge && Number(maxAge.split('=')[1]) <= 0) || attrs.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a));
      if (expired || value === '') jar.delete(name);
      else jar.set(name, value);
    }
  }

  /** One request, no redirect followed. */
  async request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Response> {
    const jar = this.cookies(url);
    const headers: Record<string, string> = { accept: 'text/html,application/xhtml+xml', 'user-agent': 'web-client-test', ...init.headers };
    if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | undefined;
    if (init.form) {
      body = new URLSearchParams(init.form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin ??= new URL(url).origin;
    }
    const res = await fetch(url, { method: init.method ?? (init.form ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
    this.store(url, res.headers.getSetCookie());
    return res;
  }

  /** A request and every redirect after it (as a browser: 303 and 302 become GET), up to `max` hops. */
  async go(url: string, init: { method?: string; form?: Record<string, string> } = {}, max = 15): Promise<Page> {
    const hops: Hop[] = [];
    let current = url;
    let next: typeof init = init;
    for (let i = 0; i <= max; i++) {
      const res = await this.request(current, next);
      const location = res.headers.get('location');
      hops.push({ url: current, status: res.status, location, setCookies: res.headers.getSetCookie() });
      if (res.status >= 300 && res.status < 400 && location) {
        await res.arrayBuffer();
        current = new URL(location, current).href;
        next = {};
        continue;
      }
      return { url: current, status: res.status, body: await res.text(), headers: res.headers, hops };
    }
    throw new Error(`more than ${max} redirects from ${url}`);
  }

  /** Follows redirects from `url` but stops before requesting any URL that `stop` matches; resolves that URL. */
  async goUntil(url: string, stop: (u: URL) => boolean, init: { form?: Record<string, string> } = {}): Promise<string> {
    let current = url;
    let next: typeof init = init;
    for (let i = 0; i < 15; i++) {
      const res = await this.request(current, next);
      await res.arrayBuffer();
      const location = res.headers.get('location');
      if (!location) throw new Error(`no redirect from ${current} (${res.status})`);
      const target = new URL(location, current);
      if (stop(target)) return target.href;
      current = target.href;
      next = {};
    }
    throw new Error('too many redirects');
  }
}

/** The attribute values of a form's action and its inputs (name → value), from HTML. */
export function readForm(html: string, base: string): { action: string; fields: Record<string, string> } {
  const form = /<form\b[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) throw new Error(`no form in:\n${html.slice(0, 500)}`);
  const action = /action="([^"]*)"/i.exec(form[0])?.[1] ?? '';
  const fields: Record<string, string> = {};
  for (const m of form[1]!.matchAll(/<input\b([^>]*)>/gi)) {
    const name = /name="([^"]*)"/i.exec(m[1]!)?.[1];
    if (name) fields[name] = unescapeHtml(/value="([^"]*)"/i.exec(m[1]!)?.[1] ?? '');
  }
  return { action: new URL(unescapeHtml(action), base).href, fields };
}

/** The href of the link whose text is `text`. */
export function linkHref(html: string, text: string, base: string): string {
  for (const m of html.matchAll(/<a\b[^>]*href="([^"]*)"[^>]*>([\s\S]*?)<\/a>/gi)) {
    if (m[2]!.trim() === text) return new URL(unescapeHtml(m[1]!), base).href;
  }
  throw new Error(`no link "${text}" in:\n${html.slice(0, 800)}`);
}

export function unescapeHtml(s: string): string {
  return s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}
