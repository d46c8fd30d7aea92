// What an X-Session may carry, as the gateway signs it and the auth service checks it. The
// session record, the users file and the OpenID Connect rules all hold values that end up
// in it, so their limits are these.

/** The `iss` of every X-Session and client assertion. @default 'sessiongate' */
export const DEFAULT_X_SESSION_ISSUER = 'sessiongate';

/** The gateway's route name for the auth service: the `aud` of the X-Session it receives. @default 'auth' */
export const DEFAULT_AUTH_ROUTE = 'auth';

/** The claim that carries the session data a route reads, by namespace (routes.yaml `sessionData`). */
export const SESSION_DATA_CLAIM = 'sg_data';

/**
 * Claims the signer sets, plus those stock JWT libraries act on (an extra `nbf` would make
 * upstreams reject the token; `jti` would claim a replay identity nobody tracks): never a
 * profile field.
 */
export const RESERVED_CLAIMS: ReadonlySet<string> = new Set(['iss', 'aud', 'sub', 'roles', 'sid', 'amr', 'key_id', 'iat', 'exp', 'nbf', 'jti', SESSION_DATA_CLAIM]);

/** Longest sub / role / claim string a session may carry. */
export const MAX_VALUE_LENGTH = 256;

/** Most roles a session may carry. */
export const MAX_ROLES = 64;

/** C0 controls, DEL, and the line/paragraph separators: never allowed in a value that is forwarded. */
export const UNSAFE_CHARS = /[\u0000-\u001f\u007f\u2028\u2029]/;
