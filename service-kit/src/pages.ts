// What the pages people see share, in the gateway (error pages) and the auth service (the
// sign-in form): one small stylesheet, the product's name and logo, HTML escaping and the
// page's headers. No script on any page, nothing loaded but the logo.
import { SettingError } from './settings.js';

/** The product a deployment shows on its pages (SESSIONGATE_BRAND_NAME, SESSIONGATE_BRAND_LOGO_URL). */
export interface Brand {
  readonly name: string | null;
  readonly logoUrl: string | null;
}

/** Longest product name shown. @default 80 */
export const MAX_BRAND_NAME_LENGTH = 80;

/** The one stylesheet of every page (inline: the pages load nothing else). */
export const PAGE_STYLE = `body{font:16px/1.5 system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.5rem;margin:.5rem 0 1rem}
label{display:block;margin-top:1rem;font-weight:600}
input{display:block;width:100%;box-sizing:border-box;padding:.45rem;font:inherit}
button{margin-top:1.5rem;padding:.5rem 1.25rem;font:inherit}
a{color:#0b57d0}
#error{padding:.5rem .75rem;border-left:4px solid #b00020;background:#fdecee;color:#7a0015}
#notice{padding:.5rem .75rem;border-left:4px solid #1b6e3a;background:#e8f5ec;color:#0f3d20}
.brand{display:flex;align-items:center;gap:.5rem;color:#555;font-weight:600}
.brand img{max-height:2rem;max-width:10rem}
.ways{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.75rem 1.25rem;align-items:center}
.ways form{display:inline}
.ways button{margin:0;padding:.35rem 1rem}
.code{margin-top:2.5rem;color:#666;font-size:.85rem}`;

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text or an attribute value, escaped for HTML. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/** Reads SESSIONGATE_BRAND_NAME and SESSIONGATE_BRAND_LOGO_URL; throws SettingError naming a bad one. */
export function brandSetting(env: NodeJS.ProcessEnv): Brand {
  const name = env.SESSIONGATE_BRAND_NAME?.trim() || null;
  if (name !== null && (name.length > MAX_BRAND_NAME_LENGTH || /[\x00-\x1f\x7f]/.test(name))) {
    throw new SettingError('SESSIONGATE_BRAND_NAME', `must be at most ${MAX_BRAND_NAME_LENGTH} characters on one line`);
  }
  const logo = env.SESSIONGATE_BRAND_LOGO_URL?.trim() || null;
  if (logo !== null && logoSource(logo) === null) {
    throw new SettingError('SESSIONGATE_BRAND_LOGO_URL', `"${logo}" is not an https:// or http:// URL, nor a path on this site like /static/logo.svg`);
  }
  return Object.freeze({ name, logoUrl: logo });
}

/** The CSP source that allows the logo: its origin, 'self' for a path, null if it is neither. */
function logoSource(url: string): string | null {
  if (/^\/(?![/\\])[\x21-\x7e]*$/.test(url)) return "'self'";
  try {
    const u = new URL(url);
    return (u.protocol === 'https:' || u.protocol === 'http:') && !u.username && !u.password ? u.origin : null;
  } catch {
    return null;
  }
}

/** The name (and logo) above a page's heading; empty without a brand. */
export function brandHeader(brand: Brand | null | undefined): string {
  if (!brand?.name && !brand?.logoUrl) return '';
  const logo = brand.logoUrl ? `<img src="${escapeHtml(brand.logoUrl)}" alt="${brand.name ? '' : 'logo'}">` : '';
  const name = brand.name ? `<span>${escapeHtml(brand.name)}</span>` : '';
  return `<header class="brand">${logo}${name}</header>\n`;
}

/** `<title>`: the page's own, then the product's name. */
export function pageTitle(title: string, brand: Brand | null | undefined): string {
  return escapeHtml(brand?.name ? `${title} · ${brand.name}` : title);
}

/**
 * Headers of a page: no script, only its inline style and the logo, forms post only to
 * this origin (redirects included), never framed, never cached.
 */
export function pageHeaders(brand: Brand | null | undefined): Record<string, string> {
  const img = brand?.logoUrl ? logoSource(brand.logoUrl) : null;
  return {
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': `default-src 'none'; style-src 'unsafe-inline'; ${img ? `img-src ${img}; ` : ''}form-action 'self'; frame-ancestors 'none'`,
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    // not no-referrer: that would make browsers send `Origin: null` with a form post, which
    // the gateway's CSRF check refuses when the browser already holds a session cookie
    'referrer-policy': 'same-origin',
    'cache-control': 'no-store',
  };
}
