import type { SessionRef } from '@sessiongate/session';
import { DEFAULT_REVOCATION_RECHECK_MS } from '../defaults.js';

export type RevokedListener = () => void;

/** A watched session, and its roles when the watch began (a change of roles ends its tunnels too). */
export interface Watched {
  readonly ref: SessionRef;
  readonly roles: readonly string[] | null;
}

export interface RevocationWatchOptions {
  /** @default DEFAULT_REVOCATION_RECHECK_MS */
  recheckMs?: number;
  /** True while every change to a session reaches this gateway (key tracking). */
  channelTrusted(): boolean;
  /** For each session, whether it still stands as it was when watched; rejects when Redis cannot say. */
  stillValid(watched: readonly Watched[]): Promise<boolean[]>;
  log: { warn(obj: object, msg: string): void };
}

/**
 * Listeners by session id, told once when that session is revoked or changed: by an
 * invalidation message, or, while such messages may be lost, by a re-check against Redis.
 * A session that Redis cannot be asked about keeps its listeners until it can.
 */
export class RevocationWatch {
  private readonly bySid = new Map<string, Watched & { listeners: Set<RevokedListener> }>();
  private readonly recheckMs: number;
  private timer: NodeJS.Timeout | null = null;
  private checking = false;
  private stopped = false;

  constructor(private readonly opts: RevocationWatchOptions) {
    this.recheckMs = opts.recheckMs ?? DEFAULT_REVOCATION_RECHECK_MS;
  }

  /** Number of listeners registered. */
  get size(): number {
    let n = 0;
    for (const w of this.bySid.values()) n += w.listeners.size;
    return n;
  }

  /** Calls `cb` once when the session `ref` is revoked; returns the unsubscribe. */
  add(ref: SessionRef, cb: RevokedListener, roles: readonly string[] | null = null): () => void {
    let w = this.bySid.get(ref.sid);
    if (!w) this.bySid.set(ref.sid, (w = { ref, roles, listeners: new Set() }));
    w.listeners.add(cb);
    if (this.timer === null && !this.stopped) {
      this.timer = setInterval(() => {
        if (!this.opts.channelTrusted()) void this.recheck();
      }, this.recheckMs);
      this.timer.unref();
    }
    return () => this.remove(ref.sid, cb);
  }

  private remove(sid: string, cb: RevokedListener): void {
    const w = this.bySid.get(sid);
    if (!w) return;
    w.listeners.delete(cb);
    if (w.listeners.size === 0) this.bySid.delete(sid);
    if (this.bySid.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** Tells the listeners of these sessions, and forgets them. */
  revoke(sids: Iterable<string>): void {
    for (const sid of sids) {
      const w = this.bySid.get(sid);
      if (!w) continue;
      for (const cb of [...w.listeners]) {
        this.remove(sid, cb);
        try {
          cb();
        } catch (err) {
          this.opts.log.warn({ err }, 'revocation listener failed');
        }
      }
    }
  }

  /**
   * These sessions changed in Redis: a refresh of their expiry, a new role, or their end.
   * Those watched are read again, and revoked if they ended or their roles changed.
   */
  changed(sids: Iterable<string>): void {
    const watched: Watched[] = [];
    for (const sid of sids) {
      const w = this.bySid.get(sid);
      if (w) watched.push(w);
    }
    if (watched.length) void this.check(watched);
  }

  /** Asks Redis about every watched session (one check at a time) and revokes those gone. */
  async recheck(): Promise<void> {
    if (this.checking || this.bySid.size === 0) return;
    this.checking = true;
    try {
      await this.check([...this.bySid.values()]);
    } finally {
      this.checking = false;
    }
  }

  private async check(watched: readonly Watched[]): Promise<void> {
    try {
      const valid = await this.opts.stillValid(watched);
      this.revoke(watched.filter((_, i) => !valid[i]).map((w) => w.ref.sid));
    } catch (err) {
      // Redis cannot say: the sessions stand until it can (the next tick asks again)
      this.opts.log.warn({ err }, 'open tunnels could not be re-checked against the session store');
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.bySid.clear();
  }
}
