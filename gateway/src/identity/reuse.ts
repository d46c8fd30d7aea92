import { pickNamespaces } from '@sessiongate/session';
import type { CredentialVia, ResolvedSession, SessionSlot } from '../session/resolver.js';
import type { IdentityClaims, XSessionSigner } from './signer.js';

/** Where each X-Session is counted as reused or signed (the gateway's metrics). */
export interface ReuseObserver {
  xSession(reused: boolean): void;
}

/** A signed X-Session kept for reuse, per route. */
export interface CachedIdentity {
  readonly token: string;
  /** Reuse it until then (half its lifetime). */
  readonly reuseUntil: number;
}

/**
 * The signed X-Session headers of one session, by route: most sessions use one route, so
 * that one sits in fields and any others in a map made when needed.
 */
class SignedHeaders {
  private more: Map<string, CachedIdentity> | null = null;

  constructor(
    private route: string,
    private identity: CachedIdentity,
  ) {}

  get(route: string): CachedIdentity | undefined {
    return this.route === route ? this.identity : this.more?.get(route);
  }

  set(route: string, identity: CachedIdentity): void {
    if (this.route === route) this.identity = identity;
    else (this.more ??= new Map()).set(route, identity);
  }
}

/**
 * The sessions holding signed headers, oldest first, at most `size`: a signed X-Session is
 * a few hundred bytes, so only that many sessions keep theirs. A busy session signs again at
 * most once per reuse period; one seen once in a while signs per request, as it would anyway.
 */
class SignedRing {
  private readonly slots: (SessionSlot | undefined)[];
  private next = 0;

  constructor(readonly size: number) {
    this.slots = new Array<SessionSlot | undefined>(size);
  }

  add(slot: SessionSlot): void {
    const old = this.slots[this.next];
    // the oldest lets go of its headers (the ring needs the room)
    if (old !== undefined && old !== slot) old.derived = undefined;
    this.slots[this.next] = slot;
    this.next = (this.next + 1) % this.size;
  }
}

const NO_NAMESPACES: readonly string[] = Object.freeze([]);

/** The key a reader route's headers are kept under, made once per loaded route (its `reads` list). */
const readerKeys = new WeakMap<readonly string[], string>();
function readerKey(aud: string, reads: readonly string[]): string {
  let key = readerKeys.get(reads);
  if (key === undefined) readerKeys.set(reads, (key = `${aud}\n${reads.join(' ')}`));
  return key;
}

/** The X-Session `amr` claim for each way of authenticating. */
const AMR: Readonly<Record<CredentialVia, readonly string[]>> = Object.freeze({
  session: Object.freeze(['session']),
  api_key: Object.freeze(['api_key']),
  jwt: Object.freeze(['jwt']),
});

/**
 * The X-Session a request forwards: signed for the session and the route, and reused for
 * half its lifetime. The headers live in the session's slot, so they go when the session's
 * entry goes, and a record read afresh (a role change) never reuses one signed before.
 */
export class IdentityReuse {
  private readonly ring: SignedRing;

  constructor(
    private readonly signer: XSessionSigner,
    /** Most sessions that keep their signed headers. */
    max: number,
    private readonly metrics?: ReuseObserver,
  ) {
    this.ring = new SignedRing(Math.max(1, max));
  }

  /**
   * The X-Session for `session` on route `aud` at `now`, carrying the session data of the
   * namespaces the route `reads`: the one kept if still fresh, else a new one.
   */
  headerFor(session: ResolvedSession, aud: string, now: number, reads: readonly string[] = NO_NAMESPACES): string {
    const slot = session.slot;
    const held = slot.derived as SignedHeaders | undefined;
    // what a route reads may change with a routes reload: a header is kept for both together
    const use = reads.length === 0 ? aud : readerKey(aud, reads);
    const cached = held?.get(use);
    if (cached && cached.reuseUntil > now) {
      this.metrics?.xSession(true);
      return cached.token;
    }
    const r = session.record;
    const claims: IdentityClaims = { sub: r.sub, roles: r.roles, sid: r.sid, amr: AMR[session.via], extra: r.claims };
    if (session.via === 'api_key') claims.keyId = r.sid;
    if (r.data !== undefined) claims.data = pickNamespaces(r.data, reads);
    const { token, expiresAtMs } = this.signer.sign(aud, claims, now);
    const identity = { token, reuseUntil: now + (expiresAtMs - now) / 2 };
    if (held) {
      held.set(use, identity);
    } else {
      slot.derived = new SignedHeaders(use, identity);
      this.ring.add(slot);
    }
    this.metrics?.xSession(false);
    return token;
  }
}
