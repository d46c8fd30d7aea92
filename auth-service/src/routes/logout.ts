import type { FastifyPluginAsync } from 'fastify';
import { clearSessionSetCookie } from 'sessiongate/session';
import { storeCall } from '../errors.js';
import { requireIdentity } from '../identity.js';
import type { AuthRouteOptions } from './options.js';

/**
 * POST /auth/logout and /auth/logout-all. The session is named by the verified X-Session
 * (the cookie never reaches this service). Success is reported only once Redis confirmed
 * the delete and the revocation was published to every gateway.
 */
const logoutRoutes: FastifyPluginAsync<AuthRouteOptions> = async (fastify, opts) => {
  const store = fastify.sessionStore;
  const clear = clearSessionSetCookie(opts.cookie);

  fastify.post('/auth/logout', async (request, reply) => {
    const id = request.identity;
    // no session: nothing to end, and logging out twice is not an error
    if (id) {
      const ended = await storeCall(() => store.destroyBySid(id.sub, id.sid));
      if (ended) opts.metrics.sessionsRevoked.inc({ reason: 'logout' });
      request.log.info({ event: 'logout', user: id.sub, sid: id.sid, ended }, 'logout');
    }
    return reply.header('set-cookie', clear).code(204).send();
  });

  fastify.post('/auth/logout-all', async (request, reply) => {
    const id = requireIdentity(request);
    const ended = await storeCall(() => store.destroyAll(id.sub));
    opts.metrics.sessionsRevoked.inc({ reason: 'logout_all' }, ended);
    request.log.info({ event: 'logout-all', user: id.sub, ended }, 'logout everywhere');
    return reply.header('set-cookie', clear).code(204).send();
  });
};

export default logoutRoutes;
