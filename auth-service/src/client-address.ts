import { isIP } from 'node:net';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { jwtVerify } from 'jose';
import { CLIENT_ASSERTION_CLAIM, CLIENT_ASSERTION_HEADER, CLIENT_ASSERTION_TYPE } from '@sessiongate/session';
import { CLOCK_TOLERANCE_SECONDS, verificationKeyFor, type VerificationKeys, type XSessionVerifierOptions } from './identity.js';

// Who is calling, for the per-IP login limit and the logs. Behind a gateway on another host,
// X-Forwarded-For cannot be believed unless that host is a trusted proxy, and without it every
// client looks like the gateway: one client's failures would lock everybody out. So the
// gateway signs the address it resolved (with its X-Session keys, for this route, briefly
// valid) and that address wins; without a valid one, the peer and the trusted proxies decide.

declare module 'fastify' {
  interface FastifyRequest {
    /** The client's IP: the gateway's signed address when there is a valid one, else `request.ip`. */
    clientAddress: string;
  }
}

/** Checks the gateway's client assertions: its keys, issuer and this route as audience. */
export class ClientAssertionVerifier {
  constructor(
    private readonly keys: VerificationKeys,
    private readonly opts: XSessionVerifierOptions,
  ) {}

  /** The client address in a valid assertion; throws (with a reason for logs) otherwise. */
  async verify(token: string): Promise<string> {
    const key = verificationKeyFor(this.keys, token);
    const { payload } = await jwtVerify(token, key.key, {
      algorithms: [key.alg],
      // an X-Session (typ JWT) is never taken for an address, whatever claims it carries
      typ: CLIENT_ASSERTION_TYPE,
      issuer: this.opts.issuer,
      audience: this.opts.audience,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: [CLIENT_ASSERTION_CLAIM, 'exp'],
    });
    const ip = payload[CLIENT_ASSERTION_CLAIM];
    if (typeof ip !== 'string' || isIP(ip) === 0) throw new Error(`"${CLIENT_ASSERTION_CLAIM}" must be an IP address`);
    return ip;
  }
}

export interface ClientAddressPluginOptions {
  verifier: ClientAssertionVerifier;
}

/** Resolves `request.clientAddress` for every request. */
const clientAddressPlugin: FastifyPluginAsync<ClientAddressPluginOptions> = async (fastify, opts) => {
  fastify.decorateRequest('clientAddress', '');
  fastify.addHook('onRequest', async (request) => {
    request.clientAddress = request.ip;
    const header = request.headers[CLIENT_ASSERTION_HEADER];
    if (header === undefined) return;
    // the gateway sends one: several are a forgery it did not strip
    if (typeof header !== 'string') {
      request.log.warn('several client assertions: ignored');
      return;
    }
    try {
      request.clientAddress = await opts.verifier.verify(header);
    } catch (err) {
      request.log.warn({ code: (err as { code?: string }).code, reason: (err as Error).message }, 'invalid client assertion: ignored');
    }
  });
};

export default fp(clientAddressPlugin, { name: 'sessiongate-auth-client-address', fastify: '5.x' });
