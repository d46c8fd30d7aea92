import { jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { OidcProviderConfig } from './config.js';

// OpenID Connect Back-Channel Logout 1.0, section 2.6: what makes a logout token valid.

export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
/** Clock skew tolerated with a provider, in seconds. */
export const LOGOUT_CLOCK_TOLERANCE_SECONDS = 30;
/** Oldest `iat` accepted: a logout token is sent the moment it is made. @default 10 min */
export const LOGOUT_TOKEN_MAX_AGE_SECONDS = 600;
/** Longest logout token read. */
export const MAX_LOGOUT_TOKEN_LENGTH = 16 * 1024;
// asymmetric only: a token signed with the client secret could be made by any holder of it
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

/** What a valid logout token asks for: the provider's session, its user, or both. */
export interface LogoutRequest {
  readonly sub: string | null;
  readonly sid: string | null;
  readonly jti: string;
  readonly exp: number | undefined;
}

/** Why a logout token is refused; the message is for the log and the 400 body (it holds no token). */
export class InvalidLogoutToken extends Error {
  override readonly name = 'InvalidLogoutToken';
}

/**
 * Verifies a logout token: signature with the provider's keys, `iss`, `aud`, `iat` (and `exp`
 * when present), the back-channel logout event, no `nonce`, a `jti`, and a `sub` or a `sid`.
 */
export async function verifyLogoutToken(token: string, provider: OidcProviderConfig, issuer: string, keys: JWTVerifyGetKey): Promise<LogoutRequest> {
  if (token.length > MAX_LOGOUT_TOKEN_LENGTH) throw new InvalidLogoutToken('the logout token is too long');
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, keys, {
      issuer,
      audience: provider.clientId,
      algorithms: ALGORITHMS,
      clockTolerance: LOGOUT_CLOCK_TOLERANCE_SECONDS,
      maxTokenAge: LOGOUT_TOKEN_MAX_AGE_SECONDS,
      requiredClaims: ['iat', 'jti', 'events'],
    }));
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'ERR_JWT_INVALID';
    throw new InvalidLogoutToken(`the logout token is not valid (${code})`, { cause: err });
  }
  const events = payload.events;
  if (typeof events !== 'object' || events === null || Array.isArray(events)) throw new InvalidLogoutToken('the logout token has no events object');
  const event = (events as Record<string, unknown>)[BACKCHANNEL_LOGOUT_EVENT];
  if (typeof event !== 'object' || event === null || Array.isArray(event)) throw new InvalidLogoutToken('the logout token is not a back-channel logout event');
  // a nonce would let an ID token pass for a logout token
  if ('nonce' in payload) throw new InvalidLogoutToken('a logout token must not hold a nonce');
  const { sub, sid, jti, exp } = payload;
  if (typeof jti !== 'string' || jti === '' || jti.length > 256) throw new InvalidLogoutToken('the logout token has no usable jti');
  const subOk = typeof sub === 'string' && sub !== '';
  const sidOk = typeof sid === 'string' && sid !== '' && sid.length <= 512;
  if (!subOk && !sidOk) throw new InvalidLogoutToken('the logout token names neither sub nor sid');
  return { sub: subOk ? (sub as string) : null, sid: sidOk ? (sid as string) : null, jti, exp: typeof exp === 'number' ? exp : undefined };
}
