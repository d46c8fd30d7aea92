// The signed client address: what the gateway tells the auth service about who is calling.
// The auth service may sit where the gateway's X-Forwarded-For cannot be believed (another
// host, no trusted proxy list), so the gateway signs the address it resolved, with its
// X-Session keys. Both sides import this module: the header, the token type and the claim.

/** The header that carries the signed client address; the gateway's own, never a client's. */
export const CLIENT_ASSERTION_HEADER = 'x-sessiongate-client';

/** The JWS `typ` of a client assertion: never mistaken for an X-Session (`JWT`), nor one for it. */
export const CLIENT_ASSERTION_TYPE = 'sessiongate-client+jwt';

/** The claim holding the client's IP address, as the gateway resolved it. */
export const CLIENT_ASSERTION_CLAIM = 'ip';

/** Lifetime of a client assertion: it is used once, right away. @default 30_000 (30 s) */
export const CLIENT_ASSERTION_TTL_MS = 30_000;

/**
 * Whether a header name is the client assertion in any spelling an upstream framework might
 * fold into it (case, `_` or `.` for `-`).
 */
export function isClientAssertionHeader(name: string): boolean {
  return name.length === CLIENT_ASSERTION_HEADER.length && name.toLowerCase().replace(/[_.]/g, '-') === CLIENT_ASSERTION_HEADER;
}
