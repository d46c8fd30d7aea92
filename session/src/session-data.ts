import { UNSAFE_CHARS } from './x-session.js';

// Session data: what upstream services keep in a user's session, each under a namespace its
// route declares in routes.yaml. It is stored in the session record itself, after the
// identity and a newline, so reading a session reads its data in the same GET, and a write
// changes the session key, which every gateway's cache hears of through key tracking.
//
//   {"sub":"alice","2":[…]}\n{"cart":{"id":"c-42","items":3},"tenant":{"id":"acme"}}
//
// JSON text never holds a raw newline, so the identity ends at the first one.

/** A value a service may store: a JSON scalar (objects and arrays are for the service's own store). */
export type SessionDataValue = string | number | boolean;
/** One namespace's keys and values. */
export type SessionDataNamespace = Readonly<Record<string, SessionDataValue>>;
/** Every namespace of a session, by name. */
export type SessionData = Readonly<Record<string, SessionDataNamespace>>;

/** Between a record's identity and its data. */
export const DATA_SEPARATOR = '\n';
/** A namespace name: routes.yaml `sessionData.namespace`. */
export const NAMESPACE_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;
/** A key inside a namespace. */
export const DATA_KEY_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Longest string value, in characters. */
export const MAX_DATA_STRING_LENGTH = 1024;
/**
 * Significant digits a number keeps: Redis' Lua JSON encoder writes 14, so a number with more
 * would come back changed from a write; it is refused instead.
 */
const NUMBER_DIGITS = 14;
/** Largest namespace a route may declare (routes.yaml `sessionData.maxBytes`), and its default. */
export const MAX_NAMESPACE_BYTES = 4096;
export const DEFAULT_NAMESPACE_BYTES = 1024;

/** Why a value cannot be stored, or null. */
export function dataValueProblem(value: unknown): string | null {
  if (typeof value === 'boolean') return null;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return 'a number must be finite';
    return Number(value.toPrecision(NUMBER_DIGITS)) === value ? null : `a number may have at most ${NUMBER_DIGITS} significant digits`;
  }
  if (typeof value === 'string') {
    if (value.length > MAX_DATA_STRING_LENGTH) return `a string may be at most ${MAX_DATA_STRING_LENGTH} characters`;
    return UNSAFE_CHARS.test(value) ? 'a string may not hold control characters' : null;
  }
  return 'values are strings, numbers or booleans (null deletes a key)';
}

/** A write: keys to set, and keys to delete (null in the request). */
export interface DataPatch {
  readonly set: Readonly<Record<string, SessionDataValue>>;
  readonly remove: readonly string[];
}

/** A write request's body as a patch, or why it is malformed. */
export function parseDataPatch(body: unknown): { ok: true; patch: DataPatch } | { ok: false; reason: string } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { ok: false, reason: 'the body must be a JSON object of keys and values' };
  const entries = Object.entries(body);
  if (entries.length === 0) return { ok: false, reason: 'the body names no key' };
  const set: Record<string, SessionDataValue> = {};
  const remove: string[] = [];
  for (const [key, value] of entries) {
    if (!DATA_KEY_PATTERN.test(key)) return { ok: false, reason: `key ${JSON.stringify(key.slice(0, 70))}: 1 to 64 letters, digits, "_", ".", ":", "-"` };
    if (value === null) {
      remove.push(key);
      continue;
    }
    const problem = dataValueProblem(value);
    if (problem) return { ok: false, reason: `key ${JSON.stringify(key)}: ${problem}` };
    set[key] = value as SessionDataValue;
  }
  return { ok: true, patch: { set, remove } };
}

/**
 * The data part of a stored record (what follows DATA_SEPARATOR). Anything that is not an
 * object of namespaces of values a write could have stored throws (a control character, say,
 * put there behind the endpoint's back): the record is refused, never half read.
 */
export function parseSessionData(text: string): SessionData {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new TypeError('session data is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TypeError('session data is not an object');
  for (const [name, ns] of Object.entries(v)) {
    if (!NAMESPACE_PATTERN.test(name)) throw new TypeError('bad session data namespace');
    if (typeof ns !== 'object' || ns === null || Array.isArray(ns)) throw new TypeError(`session data namespace ${name} is not an object`);
    for (const [key, value] of Object.entries(ns)) {
      if (!DATA_KEY_PATTERN.test(key) || dataValueProblem(value) !== null) throw new TypeError(`bad session data in namespace ${name}`);
    }
  }
  return v as SessionData;
}

/** Bytes a namespace takes, as stored (JSON, UTF-8, as Redis' encoder writes it: `/` as `\/`), the size its cap applies to. */
export function namespaceBytes(ns: SessionDataNamespace): number {
  const json = JSON.stringify(ns);
  return Buffer.byteLength(json, 'utf8') + (json.match(/\//g)?.length ?? 0);
}

/** What "my sessions" shows of a session's data: which namespaces hold some, and their sizes, never the values. */
export function dataSummary(data: SessionData | undefined): { namespace: string; bytes: number }[] {
  if (!data) return [];
  return Object.entries(data)
    .map(([namespace, ns]) => ({ namespace, bytes: namespaceBytes(ns) }))
    .sort((a, b) => a.namespace.localeCompare(b.namespace));
}

/** The namespaces of `data` named in `names` (null when none holds anything), as a reader route gets them. */
export function pickNamespaces(data: SessionData | undefined, names: readonly string[]): SessionData | null {
  if (!data || names.length === 0) return null;
  let out: Record<string, SessionDataNamespace> | null = null;
  for (const name of names) {
    const ns = data[name];
    if (ns !== undefined) (out ??= {})[name] = ns;
  }
  return out;
}
