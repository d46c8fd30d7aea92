import { STATUS_CODES } from 'node:http';
import type { FastifyReply, FastifyServerOptions } from 'fastify';
import type { ErrorBody, ErrorResponder } from './errors.js';

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so a proxy never
 * relays them from one side to the other.
 */
export const HOP_BY_HOP_HEADERS: readonly string[] = Object.freeze(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/**
 * A whole HTTP/1.1 error response with the JSON body, for sockets that never reach a route
 * (parser errors, CONNECT, refused upgrades): the connection closes after it.
 */
export function rawErrorResponse(statusCode: number, body: ErrorBody): string {
  const text = JSON.stringify(body);
  return (
    `HTTP/1.1 ${statusCode} ${STATUS_CODES[statusCode] ?? 'Error'}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\nConnection: close\r\n' +
    `Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`
  );
}

/** Fastify's `frameworkErrors`: a request it cannot even parse gets the service's JSON error body. */
export function frameworkErrorHandler(errorResponse: ErrorResponder): NonNullable<FastifyServerOptions['frameworkErrors']> {
  return (err, _req, reply) => {
    const { statusCode, body } = errorResponse({ ...err, statusCode: err.statusCode ?? 400, message: 'Malformed request' });
    void (reply as FastifyReply).code(statusCode).type('application/json; charset=utf-8').send(body);
  };
}
