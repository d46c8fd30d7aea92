import type { IncomingHttpHeaders } from 'node:http';
import { FormBodyUnreadable } from '../errors.js';

// Rails (Rack::MethodOverride), Laravel and Symfony let a `_method` parameter of a POST
// (form body, and in some setups the query) turn it into PUT, PATCH or DELETE. The gateway
// decides on the method it sees, so such a parameter would let a request be checked under
// one method's rule and run as another: it is refused unless the route allows it.

const PARAM = '_method';
// cheap pre-check: no "method" and no percent-encoding means no such parameter
const MAYBE = /method|%/i;

/**
 * Whether `application/x-www-form-urlencoded` text (a query without its `?`, or a form
 * body) has a `_method` parameter in a spelling some framework reads as one: any case,
 * percent-encoded, `+` or leading spaces, PHP's `.`/space for `_`, array syntax
 * (`_method[]`), or cut at a NUL.
 */
export function hasMethodOverrideParam(form: string): boolean {
  if (form.length < PARAM.length || !MAYBE.test(form)) return false;
  let start = 0;
  while (start <= form.length) {
    let end = start;
    while (end < form.length) {
      const c = form.charCodeAt(end);
      if (c === 0x26 || c === 0x3b) break; // '&' ';'
      end++;
    }
    const eq = form.indexOf('=', start);
    const name = form.slice(start, eq < 0 || eq > end ? end : eq);
    if (name.length >= PARAM.length && normalizeName(name) === PARAM) return true;
    start = end + 1;
  }
  return false;
}

function normalizeName(raw: string): string {
  // Rack 2 drops leading brackets ("[_method]" is "_method")
  let name = percentDecode(raw.replace(/\+/g, ' ')).replace(/^[\s[\]]+/, '');
  const cut = name.search(/[[\]\0]/);
  if (cut >= 0) name = name.slice(0, cut);
  // PHP drops leading spaces and reads "." and " " as "_"
  return name.trimStart().toLowerCase().replace(/[. ]/g, '_');
}

// byte-wise: a malformed sequence must not hide the rest of the name
function percentDecode(s: string): string {
  if (!s.includes('%')) return s;
  return s.replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/**
 * Whether a request body is one a framework would parse as a urlencoded form: urlencoded,
 * or a POST with no Content-Type at all (Rack reads such a body as a form). Multipart bodies
 * are scanned as they stream (multipart-scan.ts).
 */
export function isFormBody(method: string | undefined, headers: IncomingHttpHeaders): boolean {
  const type = headers['content-type'];
  if (type === undefined) return method === 'POST';
  const semi = type.indexOf(';');
  return (semi < 0 ? type : type.slice(0, semi)).trim().toLowerCase() === 'application/x-www-form-urlencoded';
}

/** The boundary of a `multipart/*` body, or null for any other body. */
export function multipartBoundary(headers: IncomingHttpHeaders): string | null {
  const type = headers['content-type'];
  // Rack parses every multipart/* type as a form, PHP multipart/form-data
  if (type === undefined || !/^\s*multipart\//i.test(type)) return null;
  // PHP takes the first "boundary" it finds anywhere in the header, Rack the last: with more
  // than one, or any spelling but a plain parameter, they could split the body differently
  // from this scan, so such a body is refused rather than guessed at
  const m = /;\s*(boundary)=(?:"([^"]*)"|([^";,]*))(?=\s*(?:[;,]|$))/i.exec(type);
  const value = m?.[2] ?? m?.[3];
  const elsewhere = m ? type.slice(0, m.index) + type.slice(m.index + m[0].length) : '';
  // PHP's first match is case-sensitive: a value holding "boundary" needs the name in lower case
  const clear = m !== null && !/boundary/i.test(elsewhere) && !/boundary\s*=/i.test(value ?? '') && (m[1] === 'boundary' || !value?.includes('boundary'));
  if (!clear || !value || value.length > MAX_BOUNDARY_LENGTH || value.trim() !== value) {
    throw new FormBodyUnreadable('A multipart body needs exactly one boundary parameter (1 to 70 characters, no surrounding spaces) in its Content-Type');
  }
  return value;
}

// RFC 2046 §5.1.1
const MAX_BOUNDARY_LENGTH = 70;

/**
 * Refuses, on a route that refuses `_method`, a form body the gateway cannot read as it
 * streams: a multipart body without one clear boundary, and any form body (urlencoded,
 * multipart, or a POST without Content-Type) with a Content-Encoding other than identity.
 */
export function assertCheckableBody(method: string, headers: IncomingHttpHeaders): void {
  const multipart = multipartBoundary(headers) !== null;
  const encoding = headers['content-encoding']?.trim().toLowerCase();
  // Some stacks inflate request bodies before the framework parses them (a server filter, a
  // middleware). Inflating here would mean buffering up to the route's limit times the
  // compression ratio, and browsers never compress form bodies: refusing is the simple safe rule.
  if (encoding && encoding !== 'identity' && (multipart || isFormBody(method, headers))) {
    throw new FormBodyUnreadable(`A form body with Content-Encoding ${encoding.slice(0, 40)} cannot be checked for a _method parameter on this route; send it uncompressed`);
  }
}

/**
 * Whether the head of a multipart part (its header lines, latin1) names the part `_method`
 * for some framework: any `name`, `name*` (RFC 5987, percent-encoded) or `name*0`
 * parameter, in any header line, quoted or not, and Rack's fallback to Content-ID. Each
 * value is read the ways the parsers read it (up to a quote or `;`, a quoted string with
 * escapes, a token) and refused if any reading is `_method`.
 */
export function partHeadNamesMethodOverride(head: string): boolean {
  const candidates: string[] = [];
  for (const m of head.matchAll(/(?:^|[^a-z0-9])name\s*(\*[0-9]*\*?)?\s*=\s*([^\r\n]*)/gi)) {
    const raw = m[2]!;
    const readings = [raw.replace(/^["']/, '').split(/["';]/)[0]!, unquote(raw), raw.split(/[;\s]/)[0]!];
    for (const r of readings) {
      candidates.push(r);
      // RFC 5987: charset'language'value
      const ext = /^[^']*'[^']*'(.*)$/.exec(r);
      if (ext) candidates.push(ext[1]!);
    }
  }
  for (const m of head.matchAll(/content-id\s*:\s*([^\r\n]*)/gi)) candidates.push(m[1]!);
  return candidates.some((c) => c.length >= PARAM.length && normalizeName(c).trimEnd() === PARAM);
}

// a quoted string (double or single quotes, PHP reads both) with backslash escapes
function unquote(raw: string): string {
  const q = raw[0];
  if (q !== '"' && q !== "'") return raw;
  let out = '';
  for (let i = 1; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === q) break;
    out += c === '\\' && i + 1 < raw.length ? raw[++i]! : c;
  }
  return out;
}
