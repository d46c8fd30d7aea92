/**
 * How often long-lived users of a session (WebSocket tunnels) are checked against Redis while
 * revocations cannot reach this gateway by pub/sub (channel down or silent, or the cache
 * and with it the subscription turned off). @default 500
 */
export const DEFAULT_REVOCATION_RECHECK_MS = 500;

export type RevokedListener = () => void;

export interface RevocationWatchOptions {
  /** @default DEFAULT_REVOCATION_RECHECK_MS */
  recheckMs?: number;
  /** True while every revocation reaches this gateway by pub/sub. */
  channelTrusted(): boolean;
  /** For each token hash, whether its session still stands; rejects when Redis cannot say. */
  stillValid(tokenHashes: readonly string[]): Promise<boolean[]>;
  log: { warn(obj: object, msg: string): void };
}

/**
 * Listeners by token hash, told once when that session is revoked or changed: by an
 * invalidation message, or, while such messages may be lost, by a re-check against Redis.
 * A session that Redis cannot be asked about keeps its listeners until it can.
 */
export class RevocationWatch {
  private readonly byHash = new Map<string, Set<RevokedListener>>();
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
    for (const set of this.byHash.values()) n += set.size;
    return n;
  }

  /** Calls `cb` once when the session of `tokenHash` is revoked; returns the unsubscribe. */
  add(tokenHash: string, cb: RevokedListener): () => void {
    let set = this.byHash.get(tokenHash);
    if (!set) this.byHash.set(tokenHash, (set = new Set()));
    set.add(cb);
    if (this.timer === null && !this.stopped) {
      this.timer = setInterval(() => {
        if (!this.opts.channelTrusted()) void this.recheck();
      }, this.recheckMs);
      this.timer.unref();
    }
    return () => this.remove(tokenHash, cb);
  }

  private remove(tokenHash: string, cb: RevokedListener): void {
    const set = this.byHash.get(tokenHash);
    if (!set) return;
    set.delete(cb);
    if (set.size === 0) this.byHash.delete(tokenHash);
    if (this.byHash.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** Tells the listeners of these sessions, and forgets them. */
  revoke(tokenHashes: Iterable<string>): void {
    for (const h of tokenHashes) {
      const set = this.byHash.get(h);
      if (!set) continue;
      for (const cb of [...set]) {
        this.remove(h, cb);
        try {
          cb();
        } catch (err) {
          this.opts.log.warn({ err }, 'revocation listener failed');
        }
      }
    }
  }

  /** Asks Redis about every watched session (one check at a time) and revokes those gone. */
  async recheck(): Promise<void> {
    if (this.checking || this.byHash.size === 0) return;
    this.checking = true;
    try {
      const hashes = [...this.byHash.keys()];
      const valid = await this.opts.stillValid(hashes);
      this.revoke(hashes.filter((_, i) => !valid[i]));
    } catch (err) {
      // Redis cannot say: the sessions stand until it can (the next tick asks again)
      this.opts.log.warn({ err }, 'open tunnels could not be re-checked against the session store');
    } finally {
      this.checking = false;
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.byHash.clear();
  }
}
