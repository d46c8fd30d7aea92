import type { IncomingHttpHeaders } from 'node:http';

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
  let name = percentDecode(raw.replace(/\+/g, ' '));
  const cut = name.search(/[[\0]/);
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
 * Whether a request body is one a framework would parse as a form: urlencoded, or a POST
 * with no Content-Type at all (Rack reads such a body as a form). Multipart is not read.
 */
export function isFormBody(method: string | undefined, headers: IncomingHttpHeaders): boolean {
  const type = headers['content-type'];
  if (type === undefined) return method === 'POST';
  const semi = type.indexOf(';');
  return (semi < 0 ? type : type.slice(0, semi)).trim().toLowerCase() === 'application/x-www-form-urlencoded';
}
