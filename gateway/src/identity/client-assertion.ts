import type { IncomingHttpHeaders } from 'node:http';
import {
  CLIENT_ASSERTION_CLAIM,
  CLIENT_ASSERTION_HEADER,
  CLIENT_ASSERTION_TTL_MS,
  CLIENT_ASSERTION_TYPE,
  DEFAULT_X_SESSION_ISSUER,
  isClientAssertionHeader,
  type KeySet,
} from '@sessiongate/session';
import { jwsSignature } from './signer.js';

/**
 * Signs client assertions: a compact JWS with the X-Session signing key, `typ`
 * CLIENT_ASSERTION_TYPE, `aud` the route it is sent to and the client's address, valid for
 * CLIENT_ASSERTION_TTL_MS. One instance per KeySet.
 */
export class ClientAssertionSigner {
  readonly #headerDot: string;
  readonly #signature: (input: string) => string;
  readonly #issuer: string;
  readonly #ttlSeconds = Math.ceil(CLIENT_ASSERTION_TTL_MS / 1000);

  constructor(keys: KeySet, opts: { issuer?: string } = {}) {
    const key = keys.signing;
    this.#issuer = opts.issuer ?? DEFAULT_X_SESSION_ISSUER;
    this.#headerDot = `${Buffer.from(JSON.stringify({ alg: key.alg, typ: CLIENT_ASSERTION_TYPE, kid: key.kid })).toString('base64url')}.`;
    this.#signature = jwsSignature(key).sign;
  }

  sign(aud: string, ip: string, nowMs: number = Date.now()): string {
    const iat = Math.floor(nowMs / 1000);
    const payload = { iss: this.#issuer, aud, [CLIENT_ASSERTION_CLAIM]: ip, iat, exp: iat + this.#ttlSeconds };
    const input = this.#headerDot + Buffer.from(JSON.stringify(payload)).toString('base64url');
    return `${input}.${this.#signature(input)}`;
  }
}

/**
 * Sets the gateway's client assertion on upstream request headers (or none, for routes that
 * get none), after removing whatever the client sent under that name in any spelling.
 */
export function withClientAssertion(headers: IncomingHttpHeaders, assertion: string | null): IncomingHttpHeaders {
  for (const name of Object.keys(headers)) if (isClientAssertionHeader(name)) delete headers[name];
  if (assertion !== null) headers[CLIENT_ASSERTION_HEADER] = assertion;
  return headers;
}
