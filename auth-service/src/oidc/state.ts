import { createHash, randomBytes } from 'node:crypto';
import type { RedisClient } from '@sessiongate/session';

// What the OpenID Connect sign-in keeps in Redis, under the session key prefix: the
// transient state of a sign-in in flight (single use), the provider session → our session
// links that back-channel logout follows, and the ids of logout tokens already used. Every
// command names one key, so it runs unchanged on Redis Cluster.

/** How long a sign-in may take at the provider before it must start again. @default 10 min */
export const FLOW_TTL_MS = 10 * 60_000;
/** Name of the cookie that ties a browser to its sign-in in flight. */
export const FLOW_COOKIE = 'sg_oidc';
/** The flow cookie goes only to the OIDC endpoints. */
export const FLOW_COOKIE_PATH = '/auth/oidc/';
/** How long a used logout token id is remembered when the token names no usable `exp`. @default 10 min */
export const DEFAULT_JTI_TTL_MS = 10 * 60_000;
/** Longest a logout token id is remembered. @default 1 h */
const MAX_JTI_TTL_MS = 60 * 60_000;
const FLOW_KEY_RE = /^[A-Za-z0-9_-]{43}$/;

/** One sign-in in flight: what the callback must check and where it goes next. */
export interface Flow {
  readonly provider: string;
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
  readonly next: string | null;
}

/** One of our sessions, as a provider session link names it. */
export interface LinkedSession {
  readonly sub: string;
  readonly sid: string;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');

export class OidcState {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  private flowKey(key: string): string {
    return `${this.prefix}oidc:f:${sha256(key)}`;
  }

  private linkKey(provider: string, idpSid: string): string {
    return `${this.prefix}oidc:l:{${provider}:${sha256(idpSid)}}`;
  }

  private jtiKey(provider: string, jti: string): string {
    return `${this.prefix}oidc:j:${provider}:${sha256(jti)}`;
  }

  /** Stores a new flow under a fresh random key (only its hash is a Redis key); resolves the key for the cookie. */
  async putFlow(flow: Flow): Promise<string> {
    const key = randomBytes(32).toString('base64url');
    await this.redis.set(this.flowKey(key), JSON.stringify(flow), 'PX', FLOW_TTL_MS);
    return key;
  }

  /** The flow of this cookie value, deleted in the same command (GETDEL): a second callback finds nothing. */
  async takeFlow(key: string): Promise<Flow | null> {
    if (!FLOW_KEY_RE.test(key)) return null;
    const raw = await this.redis.getdel(this.flowKey(key));
    if (raw === null) return null;
    try {
      const f = JSON.parse(raw) as Flow;
      return typeof f.provider === 'string' && typeof f.state === 'string' && typeof f.nonce === 'string' && typeof f.codeVerifier === 'string' ? f : null;
    } catch {
      return null;
    }
  }

  /** Remembers that the provider's session `idpSid` signed in our session, until ours ends at the latest. */
  async link(provider: string, idpSid: string, session: LinkedSession, expiresAt: number): Promise<void> {
    const key = this.linkKey(provider, idpSid);
    await this.redis.sadd(key, JSON.stringify([session.sub, session.sid]));
    // one provider session may sign in several of ours: the link lives as long as the longest
    await this.redis.pexpireat(key, expiresAt, 'GT');
    await this.redis.pexpireat(key, expiresAt, 'NX');
  }

  /** Our sessions that the provider's session `idpSid` signed in. */
  async linked(provider: string, idpSid: string): Promise<LinkedSession[]> {
    const members = await this.redis.smembers(this.linkKey(provider, idpSid));
    const out: LinkedSession[] = [];
    for (const m of members) {
      try {
        const [sub, sid] = JSON.parse(m) as unknown[];
        if (typeof sub === 'string' && typeof sid === 'string') out.push({ sub, sid });
      } catch {
        // a foreign member is skipped
      }
    }
    return out;
  }

  /** Forgets the link of a provider session whose sessions here have ended. */
  async unlink(provider: string, idpSid: string): Promise<void> {
    await this.redis.del(this.linkKey(provider, idpSid));
  }

  /**
   * Records a logout token id (SET NX): true the first time, false when it was used before,
   * so a replayed token is refused. Kept until the token expires, within bounds.
   */
  async claimJti(provider: string, jti: string, expSeconds: number | undefined, now = Date.now()): Promise<boolean> {
    const untilExp = expSeconds === undefined ? DEFAULT_JTI_TTL_MS : expSeconds * 1000 - now + 60_000;
    const ttl = Math.min(Math.max(untilExp, 60_000), MAX_JTI_TTL_MS);
    const ok = await this.redis.set(this.jtiKey(provider, jti), '1', 'PX', ttl, 'NX');
    return ok === 'OK';
  }

  /** Forgets a logout token id whose logout could not be carried out, so the provider's retry is not refused as a replay. */
  async releaseJti(provider: string, jti: string): Promise<void> {
    await this.redis.del(this.jtiKey(provider, jti));
  }
}

/** The flow cookie handing a browser its key. */
export function flowSetCookie(key: string, secure: boolean): string {
  return `${FLOW_COOKIE}=${key}; Path=${FLOW_COOKIE_PATH}; Max-Age=${FLOW_TTL_MS / 1000}; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
}

/** The Set-Cookie that removes the flow cookie. */
export function clearFlowSetCookie(secure: boolean): string {
  return `${FLOW_COOKIE}=; Path=${FLOW_COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
}

/** The flow cookie's value, or null when there is none or more than one (ambiguous). */
export function readFlowCookie(header: string | string[] | undefined): string | null {
  if (header === undefined) return null;
  const found: string[] = [];
  for (const part of [header].flat().join(';').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === FLOW_COOKIE) found.push(part.slice(eq + 1).trim());
  }
  return found.length === 1 ? found[0]! : null;
}
