import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { KeyConfigError, type KeySet } from '@sessiongate/session';

/** Where upstreams fetch the public keys that verify X-Session (EdDSA). */
export const JWKS_PATH = '/.well-known/jwks.json';

/**
 * How long upstreams may cache the JWKS, in seconds: a new key should be published (second
 * in X_SESSION_KEYS) at least this long before it starts signing.
 * @default 300
 */
export const JWKS_MAX_AGE_SECONDS = 300;

/** Options of the JWKS plugin: a getter, so a key reload is served at once, or a fixed KeySet. */
export type JwksPluginOptions = { getKeys: () => KeySet } | { keys: KeySet };

const plugin: FastifyPluginAsync<JwksPluginOptions> = async (app, opts) => {
  const getKeys =
    'getKeys' in opts && typeof opts.getKeys === 'function'
      ? opts.getKeys
      : 'keys' in opts && opts.keys !== undefined
        ? () => opts.keys
        : undefined;
  if (getKeys === undefined) throw new KeyConfigError('sessiongate-jwks needs a `getKeys` option (or a fixed `keys`)');

  // An HS256-only set answers an empty, valid JWK set: keys may be swapped to EdDSA by a reload.
  app.get(JWKS_PATH, async (_request, reply) => {
    reply
      .header('content-type', 'application/jwk-set+json')
      .header('cache-control', `public, max-age=${JWKS_MAX_AGE_SECONDS}`);
    return getKeys().publicJwks;
  });
};

/** Serves `GET /.well-known/jwks.json`: the public EdDSA keys of X_SESSION_KEYS, for upstreams. */
export const jwksPlugin = fp(plugin, { name: 'sessiongate-jwks', fastify: '5.x' });
export default jwksPlugin;
