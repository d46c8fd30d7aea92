/** The JSON body of every error response (README "Errors"). */
export interface ErrorBody {
  error: string;
  message: string;
}

/** Public codes for plain HTTP statuses (Fastify's own 4xx, parser errors). */
export const STATUS_ERROR_CODES: Readonly<Record<number, string>> = {
  400: 'bad_request',
  401: 'unauthenticated',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  408: 'request_timeout',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'too_many_requests',
  431: 'request_header_fields_too_large',
  502: 'upstream_unavailable',
  503: 'service_unavailable',
  504: 'upstream_timeout',
};

export type ErrorResponder = (err: { code?: string; statusCode?: number; message?: string }) => { statusCode: number; body: ErrorBody };

/**
 * Maps errors to status and body: a service's own codes to their public names, Fastify's 4xx
 * keep their message (the client can fix it), and no 5xx ever carries internal text unless
 * it is one of the service's own, written for clients.
 */
export function errorResponder(publicCodes: Readonly<Record<string, string>>, generic5xx: string): ErrorResponder {
  return (err) => {
    const statusCode = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    const own = err.code ? publicCodes[err.code] : undefined;
    const error = own ?? STATUS_ERROR_CODES[statusCode] ?? (statusCode >= 500 ? 'internal_error' : 'bad_request');
    const message = own || statusCode < 500 ? (err.message ?? error) : generic5xx;
    return { statusCode, body: { error, message } };
  };
}

/**
 * Whether the client is a browser navigating (it asks for HTML before JSON): such a client
 * gets a readable page; everyone else gets the JSON body.
 */
export function prefersHtml(accept: string | undefined): boolean {
  if (!accept) return false;
  const html = accept.indexOf('text/html');
  if (html < 0) return false;
  const json = accept.indexOf('application/json');
  return json < 0 || html < json;
}
