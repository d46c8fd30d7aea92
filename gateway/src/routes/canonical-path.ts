// The canonical form of a request target (docs/routes.md, "Path canonicalization"). Policy is
// decided on this path and the very same string is forwarded upstream, so anything an
// upstream could read differently from us is either normalized here or refused with 400.

/** Longest request-target (path plus query) accepted, in characters. */
export const MAX_TARGET_LENGTH = 8192;

/**
 * The outcome of {@link canonicalize}: the canonical path plus the untouched query
 * (`''` or the raw `?...` part, `?` included), or why the target is a 400.
 */
export type CanonicalResult =
  | { ok: true; path: string; query: string }
  | { ok: false; reason: string };

// Character classes of raw path characters (ASCII only; anything above 0x7E is refused).
const OK = 0;
const DOT = 1;
const PERCENT = 2;
const SLASH = 3;
const QUERY = 4;
const BAD = 5;

/** Sets `value` and `reason` for every code in `codes` (building the lookup tables below). */
function mark(table: Uint8Array, reasons: (string | undefined)[], codes: Iterable<number>, value: number, reason: string): void {
  for (const c of codes) {
    table[c] = value;
    reasons[c] = reason;
  }
}
const CONTROL = [...Array(0x20).keys(), 0x7f];

const PATH_CLASS = new Uint8Array(128);
const BAD_REASON: (string | undefined)[] = new Array<string | undefined>(128);
mark(PATH_CLASS, BAD_REASON, CONTROL, BAD, 'control character in request target');
mark(PATH_CLASS, BAD_REASON, [0x20], BAD, 'space in request target');
mark(PATH_CLASS, BAD_REASON, [0x23], BAD, "fragment ('#') in request target");
mark(PATH_CLASS, BAD_REASON, [0x5c], BAD, 'backslash in path');
mark(PATH_CLASS, BAD_REASON, [0x3b], BAD, "';' in path");
// characters a URL serializer would percent-encode on the way upstream (WHATWG path
// percent-encode set): refused raw, so what is forwarded is byte for byte what was decided on
mark(PATH_CLASS, BAD_REASON, [0x22, 0x3c, 0x3e, 0x60, 0x7b, 0x7d], BAD, 'character that must be percent-encoded in path');
PATH_CLASS[0x2e] = DOT;
PATH_CLASS[0x25] = PERCENT;
PATH_CLASS[0x2f] = SLASH;
PATH_CLASS[0x3f] = QUERY;

const HEX = new Int8Array(128).fill(-1);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = 10 + c;
  HEX[0x61 + c] = 10 + c;
}

// What a decoded %XX byte turns into: decoded (unreserved), kept encoded (0, the default,
// bytes >= 0x80 included), or refused.
const DECODE = 1;
const REFUSE = 2;
const BYTE_ACTION = new Uint8Array(256);
const BYTE_REASON: (string | undefined)[] = new Array<string | undefined>(256);
for (let b = 0x30; b <= 0x39; b++) BYTE_ACTION[b] = DECODE;
for (let b = 0x41; b <= 0x5a; b++) BYTE_ACTION[b] = DECODE;
for (let b = 0x61; b <= 0x7a; b++) BYTE_ACTION[b] = DECODE;
for (const b of [0x2d, 0x2e, 0x5f, 0x7e]) BYTE_ACTION[b] = DECODE;
mark(BYTE_ACTION, BYTE_REASON, CONTROL, REFUSE, 'encoded control character in path');
mark(BYTE_ACTION, BYTE_REASON, [0x2f], REFUSE, "encoded '/' (%2F) in path");
mark(BYTE_ACTION, BYTE_REASON, [0x5c], REFUSE, "encoded '\\' (%5C) in path");
mark(BYTE_ACTION, BYTE_REASON, [0x25], REFUSE, "encoded '%' (%25) in path");
mark(BYTE_ACTION, BYTE_REASON, [0x3b], REFUSE, "encoded ';' (%3B) in path");

const UPPER_HEX = '0123456789ABCDEF';

function fail(reason: string): CanonicalResult {
  return { ok: false, reason };
}

/**
 * Canonicalizes a raw HTTP request-target (`req.url` exactly as Node gives it).
 *
 * Only origin-form is accepted. In the path: duplicate slashes collapse, plain `.`/`..`
 * segments are resolved (climbing above the root is refused), percent-encoded unreserved
 * characters are decoded, and every other percent-encoding is kept with its hex digits
 * upper-cased (`%c3%a9` becomes `%C3%A9`; RFC 3986 §6.2.2.1 makes the two equivalent, so
 * the gateway matches and forwards one spelling only). Encoded dot-segments, `%2F`, `%5C`,
 * `%25`, `;`/`%3B`, `\`, control characters, spaces, `#`, non-ASCII and malformed escapes
 * are refused. The query is returned as received; it is only checked for characters that
 * cannot be part of a request-target.
 *
 * When nothing needs rewriting the returned path is a slice of the input.
 */
export function canonicalize(target: string): CanonicalResult {
  const len = target.length;
  if (len === 0) return fail('empty request target');
  if (len > MAX_TARGET_LENGTH) return fail('request target too long');
  if (target.charCodeAt(0) !== 0x2f) {
    return fail(target === '*' ? "'*' request target is not accepted" : "request target must start with '/'");
  }

  // Segments of the output, built only once the path stops being a copy of its input.
  let stack: string[] | null = null;
  let trailingSlash = false;
  let segStart = 1;
  let i = 1;
  let queryStart = -1;

  for (;;) {
    // One segment: [segStart, i) of the input; `text` accumulates its rewritten form.
    let text: string | null = null;
    let flushed = segStart;
    let dots = 0;
    let onlyDots = true;
    let encodedDot = false;

    for (; i < len; i++) {
      const c = target.charCodeAt(i);
      if (c > 0x7f) return fail('non-ASCII character in request target');
      const cls = PATH_CLASS[c];
      if (cls === OK) {
        onlyDots = false;
      } else if (cls === DOT) {
        dots++;
      } else if (cls === SLASH) {
        break;
      } else if (cls === QUERY) {
        queryStart = i;
        break;
      } else if (cls === PERCENT) {
        const h1 = i + 1 < len ? target.charCodeAt(i + 1) : 0xff;
        const h2 = i + 2 < len ? target.charCodeAt(i + 2) : 0xff;
        const v1 = h1 < 0x80 ? HEX[h1]! : -1;
        const v2 = h2 < 0x80 ? HEX[h2]! : -1;
        if (v1 < 0 || v2 < 0) return fail('malformed percent-encoding in path');
        const b = (v1 << 4) | v2;
        const action = BYTE_ACTION[b];
        if (action === REFUSE) return fail(BYTE_REASON[b]!);
        if (action === DECODE) {
          if (b === 0x2e) {
            dots++;
            encodedDot = true;
          } else {
            onlyDots = false;
          }
          text = (text ?? '') + target.slice(flushed, i) + String.fromCharCode(b);
          flushed = i + 3;
        } else {
          onlyDots = false;
          // lower-case hex digits are the only rewrite a kept escape gets
          if (h1 >= 0x61 || h2 >= 0x61) {
            text = (text ?? '') + target.slice(flushed, i) + '%' + UPPER_HEX[v1] + UPPER_HEX[v2];
            flushed = i + 3;
          }
        }
        i += 2;
      } else {
        return fail(BAD_REASON[c]!);
      }
    }

    const last = i >= len || queryStart >= 0;
    if (onlyDots && dots === 0) {
      // empty segment: a trailing slash when last, a duplicate slash otherwise
      if (last) trailingSlash = true;
      else stack ??= cleanPrefix(target, segStart);
    } else if (onlyDots && dots <= 2) {
      // '%2e' never names a dot-segment here: upstreams disagree on whether it should
      if (encodedDot) return fail('encoded dot-segment in path');
      stack ??= cleanPrefix(target, segStart);
      if (dots === 2 && stack.pop() === undefined) return fail('path climbs above the root');
      if (last) trailingSlash = true;
    } else {
      if (text !== null) {
        stack ??= cleanPrefix(target, segStart);
        stack.push(text + target.slice(flushed, i));
      } else if (stack !== null) {
        stack.push(target.slice(segStart, i));
      }
      trailingSlash = false;
    }

    if (last) break;
    i++;
    segStart = i;
  }

  let query = '';
  if (queryStart >= 0) {
    // the query is forwarded as is; it only has to be something a request-target can hold
    for (let j = queryStart + 1; j < len; j++) {
      const c = target.charCodeAt(j);
      if (c > 0x7f) return fail('non-ASCII character in request target');
      if (c <= 0x20 || c === 0x7f || c === 0x23) return fail(BAD_REASON[c]!);
    }
    query = target.slice(queryStart);
  }

  let path: string;
  if (stack === null) {
    path = queryStart >= 0 ? target.slice(0, queryStart) : target;
  } else {
    path = '/' + stack.join('/');
    if (trailingSlash && stack.length > 0) path += '/';
  }
  return { ok: true, path, query };
}

// The segments before `segStart`, all plain so far: no empty, dot or rewritten segment.
function cleanPrefix(target: string, segStart: number): string[] {
  return segStart > 1 ? target.slice(1, segStart - 1).split('/') : [];
}
