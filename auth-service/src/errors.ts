import createError from '@fastify/error';
import { errorResponder } from '@sessiongate/service-kit';

// The one list of errors the auth service answers with. `code` is stable and is what code
// branches on; `error` is the public code of the JSON body (README "Errors").

export const BadRequest = createError('SA_ERR_BAD_REQUEST', '%s', 400);
export const InvalidCredentials = createError('SA_ERR_INVALID_CREDENTIALS', 'The user name or password is not correct', 401);
export const Unauthenticated = createError('SA_ERR_UNAUTHENTICATED', 'A valid session is required', 401);
/** A login or logout posted from another site (login CSRF): refused, whatever the body. */
export const CrossSiteRequest = createError('SA_ERR_CROSS_SITE_REQUEST', '%s', 403);
export const Forbidden = createError('SA_ERR_FORBIDDEN', '%s', 403);
export const Conflict = createError('SA_ERR_CONFLICT', '%s', 409);
export const NotFound = createError('SA_ERR_NOT_FOUND', '%s', 404);
export const PasswordLoginDisabled = createError('SA_ERR_PASSWORD_LOGIN_DISABLED', 'Password sign-in is switched off here: sign in with a provider', 403);
export const TooManyRequests = createError('SA_ERR_TOO_MANY_REQUESTS', 'Too many failed logins, retry later', 429);
export const SessionStoreUnavailable = createError(
  'SA_ERR_SESSION_STORE_UNAVAILABLE',
  'The session store is unavailable, retry later',
  503,
);

/** The users file is missing parts or malformed: the process refuses to start. */
export const InvalidUsersFile = createError('SA_ERR_INVALID_USERS_FILE', '%s', 500);

const PUBLIC_CODES: Readonly<Record<string, string>> = {
  SA_ERR_BAD_REQUEST: 'bad_request',
  SA_ERR_INVALID_CREDENTIALS: 'invalid_credentials',
  SA_ERR_UNAUTHENTICATED: 'unauthenticated',
  SA_ERR_CROSS_SITE_REQUEST: 'csrf_rejected',
  SA_ERR_FORBIDDEN: 'forbidden',
  SA_ERR_CONFLICT: 'conflict',
  SA_ERR_NOT_FOUND: 'not_found',
  SA_ERR_PASSWORD_LOGIN_DISABLED: 'password_login_disabled',
  SA_ERR_TOO_MANY_REQUESTS: 'too_many_requests',
  SA_ERR_SESSION_STORE_UNAVAILABLE: 'session_store_unavailable',
};

const GENERIC_5XX = 'The auth service could not handle this request';

/**
 * The JSON body and status for any error: our own codes map to the public codes of README "Errors", Fastify's 4xx
 * keep their message (the client can fix it), and no 5xx ever carries internal text.
 */
export const errorResponse = errorResponder(PUBLIC_CODES, GENERIC_5XX);

/** Runs a session-store operation; any Redis failure becomes a 503 that fails closed. */
export async function storeCall<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw new SessionStoreUnavailable({ cause: err });
  }
}
