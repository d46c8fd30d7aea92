import type { FastifyBaseLogger, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { JWTPayload } from 'jose';
import { infoEnabled } from '@sessiongate/service-kit';
import { SESSION_DATA_CLAIM, parseDataPatch, type SessionStore } from '@sessiongate/session';
import {
  MethodNotAllowed,
  NotFound,
  SessionDataDeleteRefused,
  SessionDataMalformed,
  SessionDataNoSession,
  SessionDataTooLarge,
  SessionDataUndeclared,
  SessionGone,
  SessionStoreUnavailable,
  errorResponse,
} from '../errors.js';
import { MAX_X_SESSION_BYTES, type XSessionSigner } from '../identity/signer.js';
import type { RouteSet, SessionDataRule } from '../routes/types.js';
import type { CredentialVerifier, WriteCredential } from './credential.js';

// The session data endpoint: an upstream keeps data in the user's session by sending it
// here, on the gateway's internal listener, with the X-Session of the request it is
// answering. The route that X-Session names must declare a namespace (routes.yaml
// `sessionData`); the write goes to that namespace only, in one atomic Redis command, and
// every gateway's cache hears of it through key tracking, as of any change to a session.

/** Where upstreams send writes. */
export const SESSION_DATA_PATH = '/_sessiongate/session-data';
/** Largest write request body: a namespace holds at most 4 KiB. */
export const MAX_WRITE_BODY_BYTES = 16 * 1024;

/** What a write came to, as counted. */
export type DataWriteCount =
  | 'written'
  | 'unauthenticated'
  | 'undeclared'
  | 'no_session'
  | 'malformed'
  | 'delete_refused'
  | 'too_large'
  | 'gone'
  | 'unavailable';

/** What the endpoint reports as it answers (the gateway's metrics). */
export interface DataWriteObserver {
  sessionDataWrite(route: string, outcome: DataWriteCount): void;
}

export interface SessionDataEndpointOptions {
  /** The routes in force (they change with a reload). */
  routes: () => RouteSet;
  store: SessionStore;
  verifier: CredentialVerifier;
  /** Sizes the X-Session the data travels in. */
  signer: XSessionSigner;
  metrics?: DataWriteObserver;
}

const OUTCOMES: Readonly<Record<string, DataWriteCount>> = {
  SG_ERR_SESSION_DATA_UNAUTHENTICATED: 'unauthenticated',
  SG_ERR_SESSION_DATA_UNDECLARED: 'undeclared',
  SG_ERR_SESSION_DATA_NO_SESSION: 'no_session',
  SG_ERR_SESSION_DATA_MALFORMED: 'malformed',
  SG_ERR_SESSION_DATA_DELETE_REFUSED: 'delete_refused',
  SG_ERR_SESSION_DATA_TOO_LARGE: 'too_large',
  SG_ERR_SESSION_GONE: 'gone',
  SG_ERR_SESSION_STORE_UNAVAILABLE: 'unavailable',
};

/** The route a write came for, when known (for the count and the log), and its verified credential. */
const WRITE_ROUTE = Symbol('sessiongate.writeRoute');
const CREDENTIAL = Symbol('sessiongate.writeCredential');
type WriteRequest = FastifyRequest & { [WRITE_ROUTE]?: string; [CREDENTIAL]?: WriteCredential };

/**
 * Bytes of session data an X-Session still has room for, beyond these identity claims, on
 * the route with the longest name among those that carry the namespace.
 */
export function roomForData(signer: XSessionSigner, payload: JWTPayload, routeNames: readonly string[]): number {
  const maxPayload = Math.floor(((MAX_X_SESSION_BYTES - signer.sizeOf(0)) * 3) / 4);
  const aud = routeNames.reduce((a, b) => (b.length > a.length ? b : a), '');
  const { [SESSION_DATA_CLAIM]: _data, ...identity } = payload;
  const identityBytes = Buffer.byteLength(JSON.stringify({ ...identity, aud }), 'utf8');
  return maxPayload - identityBytes - `,"${SESSION_DATA_CLAIM}":`.length;
}

const sessionDataEndpoint: FastifyPluginAsync<SessionDataEndpointOptions> = async (fastify, opts) => {
  const { store, verifier, signer, metrics } = opts;

  fastify.removeAllContentTypeParsers();
  // any content type: the body is JSON, whatever the upstream's client library calls it
  fastify.addContentTypeParser('*', { parseAs: 'string', bodyLimit: MAX_WRITE_BODY_BYTES }, (_req, body, done) => {
    try {
      done(null, body === '' ? undefined : JSON.parse(body as string));
    } catch {
      done(new SessionDataMalformed('the body is not JSON'));
    }
  });

  fastify.setErrorHandler((err: Error & { code?: string; statusCode?: number }, request: WriteRequest, reply) => {
    const route = request[WRITE_ROUTE] ?? '(none)';
    const outcome = OUTCOMES[err.code ?? ''] ?? (err.statusCode === 413 ? 'too_large' : 'malformed');
    const { statusCode, body } = errorResponse(err);
    if (statusCode >= 500 && outcome !== 'unavailable') request.log.error({ err }, 'session data write failed');
    else request.log.warn({ route, outcome, reason: body.message }, 'session data write refused');
    if (err.code !== 'SG_ERR_NOT_FOUND' && err.code !== 'SG_ERR_METHOD_NOT_ALLOWED') metrics?.sessionDataWrite(route, outcome);
    return reply.code(statusCode).type('application/json; charset=utf-8').send(body);
  });
  fastify.setNotFoundHandler(async () => {
    throw new NotFound();
  });

  fastify.route({
    method: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS'],
    url: SESSION_DATA_PATH,
    handler: async (request, reply) => {
      reply.header('allow', 'PATCH');
      throw new MethodNotAllowed(request.method);
    },
  });

  // who writes is settled before the body is read: a refused body is counted for its route
  async function authenticate(request: WriteRequest): Promise<void> {
    const credential = await verifier.verify(request.headers['x-session']);
    request[WRITE_ROUTE] = credential.route;
    request[CREDENTIAL] = credential;
  }

  fastify.patch(SESSION_DATA_PATH, { onRequest: authenticate }, async (request: WriteRequest, reply: FastifyReply) => {
    const credential = request[CREDENTIAL]!;
    const route = opts.routes().routes.find((r) => r.name === credential.route);
    const rule: SessionDataRule | null = route?.sessionData ?? null;
    if (!route || !rule) {
      throw new SessionDataUndeclared(`Route ${JSON.stringify(credential.route)} declares no session data namespace (routes.yaml sessionData)`);
    }
    if (credential.amr.length !== 1 || credential.amr[0] !== 'session') {
      throw new SessionDataNoSession('This request carries no browser session (an API key or a bearer JWT): there is no session to write to');
    }
    const parsed = parseDataPatch(request.body);
    if (!parsed.ok) throw new SessionDataMalformed(parsed.reason);
    if (parsed.patch.remove.length > 0 && !rule.delete) throw new SessionDataDeleteRefused(rule.namespace, route.name);

    const room = roomForData(signer, credential.payload, [route.name, ...rule.readers]);
    let result;
    try {
      result = await store.writeData(credential.sub, credential.sid, rule.namespace, parsed.patch, { maxBytes: rule.maxBytes, maxDataBytes: room });
    } catch (err) {
      request.log.warn({ err }, 'session store unavailable for a session data write');
      throw new SessionStoreUnavailable();
    }
    switch (result.outcome) {
      case 'ok':
        break;
      case 'gone':
        throw new SessionGone();
      case 'too_large':
        throw new SessionDataTooLarge(
          result.namespaceBytes > rule.maxBytes
            ? `Namespace ${rule.namespace} would hold ${result.namespaceBytes} bytes, over its ${rule.maxBytes}-byte cap (routes.yaml sessionData.maxBytes): nothing was written`
            : `The session's data would take ${result.dataBytes} bytes, more than the ${room} the X-Session header has room for: nothing was written`,
        );
      case 'foreign':
        throw new SessionDataNoSession('The session is stored in a format that cannot hold data; it can once the user signs in again');
      case 'corrupt':
        request.log.error({ route: route.name, sid: credential.sid }, 'the stored session data is unreadable');
        throw new SessionDataNoSession('The session data stored for this session is unreadable: nothing was written');
    }
    metrics?.sessionDataWrite(route.name, 'written');
    logWritten(request.log, route.name, rule.namespace, result.namespaceBytes, credential.sub);
    return reply.code(200).send({ namespace: rule.namespace, bytes: result.namespaceBytes, sessionBytes: result.dataBytes });
  });
};

function logWritten(log: FastifyBaseLogger, route: string, namespace: string, bytes: number, sub: string): void {
  if (!infoEnabled(log)) return;
  log.info({ route, namespace, bytes, sub }, 'session data written');
}

export default sessionDataEndpoint;
