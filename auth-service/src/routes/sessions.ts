import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { clearSessionSetCookie } from '@sessiongate/session';
import { NotFound, storeCall } from '../errors.js';
import { requireIdentity } from '../identity.js';
import type { AuthRouteOptions } from './options.js';

const SessionParams = Type.Object({ sid: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }) });
type SessionParams = Static<typeof SessionParams>;

/** One session as GET /auth/sessions shows it. */
export interface SessionView {
  sid: string;
  createdAt: string;
  lastSeenAt: string;
  /** When the session ends if it is not used again (idle timeout, capped by the absolute one). */
  expiresAt: string;
  userAgent: string | null;
  current: boolean;
  /** Which services stored data in the session: each namespace and its size in bytes, never the values. */
  data: { namespace: string; bytes: number }[];
}

/** GET /auth/sessions (mine, the current one marked) and DELETE /auth/sessions/:sid. */
const sessionsRoutes: FastifyPluginAsync<AuthRouteOptions> = async (fastify, opts) => {
  const store = fastify.sessionStore;

  fastify.get('/auth/sessions', async (request) => {
    const id = requireIdentity(request);
    const list = await storeCall(() => store.list(id.sub));
    const sessions: SessionView[] = list.map((s) => ({
      sid: s.sid,
      createdAt: new Date(s.createdAt).toISOString(),
      lastSeenAt: new Date(s.lastSeenAt).toISOString(),
      expiresAt: new Date(s.expiresAt).toISOString(),
      userAgent: s.userAgent,
      current: s.sid === id.sid,
      // copied field by field: whatever else the store's summary grows, only these two leave
      data: s.data.map((d) => ({ namespace: d.namespace, bytes: d.bytes })),
    }));
    return { sessions };
  });

  fastify.delete<{ Params: SessionParams }>('/auth/sessions/:sid', { schema: { params: SessionParams } }, async (request, reply) => {
    const id = requireIdentity(request);
    const { sid } = request.params;
    // looked up in the caller's own index only: another user's sid is simply not found
    const ended = await storeCall(() => store.destroyBySid(id.sub, sid));
    if (!ended) throw new NotFound('You have no session with this id');
    opts.metrics.sessionsRevoked.inc({ reason: 'revoke' });
    request.log.info({ event: 'revoke', user: id.sub, sid }, 'session ended');
    // ending the current session is a logout: the browser forgets its cookie too
    if (sid === id.sid) reply.header('set-cookie', clearSessionSetCookie(opts.cookie));
    return reply.code(204).send();
  });
};

export default sessionsRoutes;
