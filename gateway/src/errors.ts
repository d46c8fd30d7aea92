import createError from '@fastify/error';
import { errorResponder, type ErrorBody } from '@sessiongate/service-kit';

export type { ErrorBody };

// The one list of errors the gateway answers with. `code` is stable and is what code
// branches on; `error` is the public code of the JSON body (README "Errors").

export const BadRequest = createError('SG_ERR_BAD_REQUEST', '%s', 400);
export const Unauthenticated = createError('SG_ERR_UNAUTHENTICATED', 'A valid session is required', 401);
export const InvalidCredentials = createError('SG_ERR_INVALID_CREDENTIALS', 'The bearer credential is not valid', 401);
export const AmbiguousCredentials = createError(
  'SG_ERR_AMBIGUOUS_CREDENTIALS',
  'Send either the session cookie or an Authorization bearer credential, not both',
  400,
);
export const Forbidden = createError('SG_ERR_FORBIDDEN', 'The session lacks a role this route requires', 403);
export const CsrfRejected = createError('SG_ERR_CSRF_REJECTED', '%s', 403);
export const NotFound = createError('SG_ERR_NOT_FOUND', 'No route matches this path', 404);
export const MethodOverrideRefused = createError(
  'SG_ERR_METHOD_OVERRIDE_REFUSED',
  'A _method parameter (in the %s) is refused on this route: it would make the upstream run another method than the one checked; send the real method instead',
  400,
);
export const FormBodyUnreadable = createError('SG_ERR_FORM_BODY_UNREADABLE', '%s', 400);
export const MethodNotAllowed = createError('SG_ERR_METHOD_NOT_ALLOWED', 'Method %s is not allowed here', 405);
export const PayloadTooLarge = createError('SG_ERR_PAYLOAD_TOO_LARGE', 'The request body exceeds %s bytes', 413);
export const HeadersTooLarge = createError('SG_ERR_HEADERS_TOO_LARGE', '%s', 431);
/** Too many failed bearer credentials from one client address: it waits out the window. */
export const TooManyRequests = createError('SG_ERR_TOO_MANY_REQUESTS', 'Too many failed credentials from this address, retry later', 429);
/** The client did not send its request head in time (Node's parser gave up). */
export const RequestTimeout = createError('SG_ERR_REQUEST_TIMEOUT', 'The request was not received in time', 408);
export const UpstreamUnavailable = createError('SG_ERR_UPSTREAM_UNAVAILABLE', 'The upstream service is unavailable', 502);
export const SessionStoreUnavailable = createError(
  'SG_ERR_SESSION_STORE_UNAVAILABLE',
  'The session store is unavailable, retry later',
  503,
);
export const UpstreamTimeout = createError('SG_ERR_UPSTREAM_TIMEOUT', 'The upstream service did not answer in time', 504);

/** Session data writes (docs/session-data.md): what the upstream that wrote is told. */
export const SessionDataUnauthenticated = createError(
  'SG_ERR_SESSION_DATA_UNAUTHENTICATED',
  'A write needs the X-Session this gateway sent with the request, still valid: %s',
  401,
);
export const SessionDataUndeclared = createError('SG_ERR_SESSION_DATA_UNDECLARED', '%s', 403);
export const SessionDataDeleteRefused = createError(
  'SG_ERR_SESSION_DATA_DELETE_REFUSED',
  'Namespace %s is add-only: route %s does not declare sessionData.delete: true, so null values (deletes) are refused',
  403,
);
export const SessionDataMalformed = createError('SG_ERR_SESSION_DATA_MALFORMED', '%s', 400);
export const SessionDataTooLarge = createError('SG_ERR_SESSION_DATA_TOO_LARGE', '%s', 413);
export const SessionDataNoSession = createError('SG_ERR_SESSION_DATA_NO_SESSION', '%s', 409);
export const SessionGone = createError('SG_ERR_SESSION_GONE', 'The session has ended: nothing was written', 410);

/** A worker of `--workers N` exited before it was ready: its own message is printed above. */
export const WorkerStartFailed = createError('SG_ERR_WORKER_START_FAILED', 'a worker process failed to start (%s); its message is above', 500);

/** Invalid configuration (environment, routes file, keys): the process refuses to start. */
export const InvalidConfig = createError('SG_ERR_INVALID_CONFIG', '%s', 500);

const PUBLIC_CODES: Readonly<Record<string, string>> = {
  SG_ERR_BAD_REQUEST: 'bad_request',
  SG_ERR_UNAUTHENTICATED: 'unauthenticated',
  SG_ERR_INVALID_CREDENTIALS: 'invalid_credentials',
  SG_ERR_AMBIGUOUS_CREDENTIALS: 'ambiguous_credentials',
  SG_ERR_FORBIDDEN: 'forbidden',
  SG_ERR_CSRF_REJECTED: 'csrf_rejected',
  SG_ERR_NOT_FOUND: 'not_found',
  SG_ERR_METHOD_NOT_ALLOWED: 'method_not_allowed',
  SG_ERR_METHOD_OVERRIDE_REFUSED: 'method_override_refused',
  SG_ERR_FORM_BODY_UNREADABLE: 'form_body_unreadable',
  SG_ERR_PAYLOAD_TOO_LARGE: 'payload_too_large',
  SG_ERR_HEADERS_TOO_LARGE: 'request_header_fields_too_large',
  SG_ERR_REQUEST_TIMEOUT: 'request_timeout',
  SG_ERR_TOO_MANY_REQUESTS: 'too_many_requests',
  SG_ERR_UPSTREAM_UNAVAILABLE: 'upstream_unavailable',
  SG_ERR_SESSION_STORE_UNAVAILABLE: 'session_store_unavailable',
  SG_ERR_UPSTREAM_TIMEOUT: 'upstream_timeout',
  SG_ERR_SESSION_DATA_UNAUTHENTICATED: 'session_data_unauthenticated',
  SG_ERR_SESSION_DATA_UNDECLARED: 'session_data_undeclared',
  SG_ERR_SESSION_DATA_DELETE_REFUSED: 'session_data_delete_refused',
  SG_ERR_SESSION_DATA_MALFORMED: 'session_data_malformed',
  SG_ERR_SESSION_DATA_TOO_LARGE: 'session_data_too_large',
  SG_ERR_SESSION_DATA_NO_SESSION: 'session_data_no_session',
  SG_ERR_SESSION_GONE: 'session_gone',
};

const GENERIC_5XX = 'The gateway could not handle this request';

/**
 * The JSON body and status for any error: our own codes map to the public codes of README "Errors", Fastify's 4xx
 * keep their message (the client can fix it), and no 5xx ever carries internal text.
 */
export const errorResponse = errorResponder(PUBLIC_CODES, GENERIC_5XX);
