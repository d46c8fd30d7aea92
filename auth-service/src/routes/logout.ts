import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { clearSessionSetCookie } from '@sessiongate/session';
import { storeCall } from '../errors.js';
import { requireIdentity, type Identity } from '../identity.js';
import { browserForm, loginPageUrl } from './login-page.js';
import type { AuthRouteOptions } from './options.js';
import { sameOriginOnly } from './same-origin.js';

/**
 * POST /auth/logout and /auth/logout-all. The session is named by the verified X-Session
 * (the cookie never reaches this service). Success is reported only once Redis confirmed
 * the delete and the revocation was published to every gateway. A browser's form post gets
 * a 303 back to the login page (saying so, and keeping the form's `next`) instead of the
 * 204, with the same clearing cookie.
 */
const logoutRoutes: FastifyPluginAsync<AuthRouteOptions> = async (fastify, opts) => {
  const store = fastify.sessionStore;
  const clear = clearSessionSetCookie(opts.cookie);
  const preValidation = sameOriginOnly(opts);

  fastify.post('/auth/logout', { preValidation }, async (request, reply) => {
    const id = request.identity;
    // no session: nothing to end, and logging out twice is not an error
    if (id) {
      const ended = await storeCall(() => store.destroyBySid(id.sub, id.sid));
      if (ended) opts.metrics.sessionsRevoked.inc({ reason: 'logout' });
      request.log.info({ event: 'logout', user: id.sub, sid: id.sid, ended }, 'logout');
    }
    return loggedOut(request, reply, id);
  });

  fastify.post('/auth/logout-all', { preValidation }, async (request, reply) => {
    const id = requireIdentity(request);
    const ended = await storeCall(() => store.destroyAll(id.sub));
    opts.metrics.sessionsRevoked.inc({ reason: 'logout_all' }, ended);
    request.log.info({ event: 'logout-all', user: id.sub, ended }, 'logout everywhere');
    return loggedOut(request, reply, id);
  });

  // the clearing cookie either way: a browser also goes back to the login page, or on to
  // the sign-out of the provider that signed it in
  function loggedOut(request: FastifyRequest, reply: FastifyReply, id: Identity | null) {
    reply.header('set-cookie', clear);
    const browser = browserForm(request);
    if (!browser) return reply.code(204).send();
    // the provider's sign-out first, when one signed this browser in; else the login page,
    // keeping where to go after signing in again (a 403 page's "sign out")
    return reply.redirect((id && opts.oidc?.logoutRedirect(id)) || loginPageUrl({ notice: 'signed-out', next: browser.next }), 303);
  }
};

export default logoutRoutes;
