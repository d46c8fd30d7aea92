import type { FastifyPluginAsync } from 'fastify';
import { Unauthenticated } from '../errors.js';
import { requireIdentity } from '../identity.js';
import type { AuthRouteOptions } from './options.js';

/** GET /auth/me: who I am, from the users directory (so a role changed a moment ago shows). */
const meRoute: FastifyPluginAsync<AuthRouteOptions> = async (fastify, opts) => {
  fastify.get('/auth/me', async (request) => {
    const id = requireIdentity(request);
    // a provider's user is in no directory: the session's own roles are the answer
    if (opts.oidc?.isProviderUser(id.sub)) return { sub: id.sub, roles: id.roles };
    const user = await opts.directory.find(id.sub);
    if (!user || user.disabled) throw new Unauthenticated();
    return { sub: user.name, roles: user.roles, ...user.profile };
  });
};

export default meRoute;
