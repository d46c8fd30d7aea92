import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { parseDuration } from '@sessiongate/service-kit';
import { ApiKeyStore, MAX_API_KEY_NAME_LENGTH, type ApiKeySummary } from '@sessiongate/session';
import { BadRequest, Conflict, Forbidden, NotFound, SessionStoreUnavailable, storeCall } from '../errors.js';
import { requireIdentity } from '../identity.js';
import type { AuthRouteOptions } from './options.js';

const ROLE_PATTERN = '^[A-Za-z0-9_.:-]+$';

const CreateBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: MAX_API_KEY_NAME_LENGTH, pattern: '^[^\\u0000-\\u001f\\u007f]+$' }),
    /** A duration such as "90d" or "12h"; without it the key does not expire. */
    expiresIn: Type.Optional(Type.String({ maxLength: 32 })),
    /** Roles the key carries, each one the caller holds; without it, all of the caller's. */
    roles: Type.Optional(Type.Array(Type.String({ pattern: ROLE_PATTERN, maxLength: 256 }), { maxItems: 64, uniqueItems: true })),
  },
  { additionalProperties: false },
);
type CreateBody = Static<typeof CreateBody>;
const KeyParams = Type.Object({ id: Type.String({ minLength: 16, maxLength: 16, pattern: '^[A-Za-z0-9_-]+$' }) });
type KeyParams = Static<typeof KeyParams>;

/** One key as GET /auth/keys shows it: never the secret. */
export interface ApiKeyView {
  id: string;
  name: string;
  prefix: string;
  roles: readonly string[];
  createdAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
}

export function apiKeyView(k: ApiKeySummary): ApiKeyView {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return { id: k.id, name: k.name, prefix: k.prefix, roles: k.roles, createdAt: iso(k.createdAt)!, lastUsedAt: iso(k.lastUsedAt), expiresAt: iso(k.expiresAt) };
}

/**
 * POST /auth/keys (mint a key for myself, shown once), GET /auth/keys (mine) and
 * DELETE /auth/keys/:id (revoke). Only a signed-in person manages keys: a request made
 * with a key cannot mint or revoke keys.
 */
const keysRoutes: FastifyPluginAsync<AuthRouteOptions> = async (fastify, opts) => {
  const keys = new ApiKeyStore(fastify.sessionStore);

  /** The caller, signed in with a session, and their current roles from the users file. */
  async function owner(request: Parameters<typeof requireIdentity>[0]) {
    const id = requireIdentity(request);
    if (id.amr.length && !id.amr.includes('session')) throw new Forbidden('API keys are managed from a signed-in session');
    // a provider's roles change only at their next sign-in: nothing would cut a key's roles down
    if (opts.oidc?.isProviderUser(id.sub)) throw new Forbidden('API keys are for users of the users file');
    const user = await opts.directory.find(id.sub);
    if (!user || user.disabled) throw new Forbidden('This user cannot hold API keys');
    return { id, roles: user.roles };
  }

  fastify.post<{ Body: CreateBody }>('/auth/keys', { schema: { body: CreateBody } }, async (request, reply) => {
    const { id, roles: ownRoles } = await owner(request);
    const body = request.body;
    const missing = (body.roles ?? []).filter((r) => !ownRoles.includes(r));
    if (missing.length) throw new BadRequest(`You do not hold the role(s) ${missing.join(', ')}`);
    let expiresAt: number | null = null;
    if (body.expiresIn !== undefined) {
      const ms = parseDuration(body.expiresIn);
      if (ms === null || ms <= 0) throw new BadRequest('expiresIn must be a duration such as "90d", "12h" or "30m"');
      expiresAt = Date.now() + ms;
    }
    let created: Awaited<ReturnType<ApiKeyStore['create']>>;
    try {
      created = await keys.create({ sub: id.sub, name: body.name, scope: body.roles ?? null, ownerRoles: ownRoles, expiresAt });
    } catch (err) {
      if ((err as { code?: string }).code === 'SG_ERR_API_KEY_LIMIT') throw new Conflict((err as Error).message);
      throw new SessionStoreUnavailable({ cause: err });
    }
    request.log.info({ event: 'api_key_created', user: id.sub, keyId: created.record.id }, 'API key created');
    const summary: ApiKeySummary = { ...created.record, prefix: `sgk_${created.record.id}`, lastUsedAt: null };
    return reply.code(201).send({ ...apiKeyView(summary), key: created.key });
  });

  fastify.get('/auth/keys', async (request) => {
    const { id } = await owner(request);
    const list = await storeCall(() => keys.list(id.sub));
    return { keys: list.map(apiKeyView) };
  });

  fastify.delete<{ Params: KeyParams }>('/auth/keys/:id', { schema: { params: KeyParams } }, async (request, reply) => {
    const { id } = await owner(request);
    // looked up in the caller's own index only: another user's key is simply not found
    const revoked = await storeCall(() => keys.revoke(id.sub, request.params.id));
    if (!revoked) throw new NotFound('You have no API key with this id');
    request.log.info({ event: 'api_key_revoked', user: id.sub, keyId: request.params.id }, 'API key revoked');
    return reply.code(204).send();
  });
};

export default keysRoutes;
