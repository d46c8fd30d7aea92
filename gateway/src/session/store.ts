import type { Cluster, Redis } from 'ioredis';
import {
  KeyLayout,
  RECORD_VERSION,
  hashToken,
  mintSessionId,
  mintToken,
  parseRecord,
  remainingLifetimeMs,
  serializeRecord,
  type SessionRecord,
} from './record.js';

/** A standalone, Sentinel-managed or Cluster client: the store works the same on all three. */
export type RedisClient = Redis | Cluster;

export interface NewSession {
  sub: string;
  roles: readonly string[];
  claims?: Readonly<Record<string, string | number | boolean>>;
  userAgent?: string;
  idleTimeoutMs: number;
  absoluteTimeoutMs: number;
}

/** One live session as "my sessions" shows it. */
export interface SessionSummary {
  sid: string;
  createdAt: number;
  /** Approximate: when the idle expiry was last pushed forward. */
  lastSeenAt: number;
  absoluteExpiresAt: number;
  /** When it ends unless used again: the idle expiry, capped by the absolute one. */
  expiresAt: number;
  userAgent: string | null;
}

/** Receives the latency of each command on the request path (for a histogram). */
export type CommandObserver = (command: string, seconds: number, ok: boolean) => void;

/** An invalidation message: the token hashes every gateway must drop from its cache. */
export interface Invalidation {
  hashes: string[];
}

export function encodeInvalidation(msg: Invalidation): string {
  return JSON.stringify({ h: msg.hashes });
}

export function decodeInvalidation(raw: string): Invalidation | null {
  try {
    const v = JSON.parse(raw) as { h?: unknown };
    if (Array.isArray(v.h) && v.h.every((x) => typeof x === 'string')) return { hashes: v.h as string[] };
  } catch {
    // a foreign message on our channel is ignored
  }
  return null;
}

function indexMember(sid: string, tokenHash: string): string {
  return `${sid}.${tokenHash}`;
}

function splitMember(member: string): { sid: string; tokenHash: string } {
  const i = member.lastIndexOf('.');
  return { sid: member.slice(0, i), tokenHash: member.slice(i + 1) };
}

/**
 * Every Redis operation on sessions. Each command names one key, so it runs unchanged on
 * Redis Cluster; no command ever rewrites a record that might have been deleted meanwhile,
 * so a logout can never be undone by a concurrent refresh or role change.
 */
export class SessionStore {
  readonly keys: KeyLayout;
  readonly redis: RedisClient;

  private readonly observe: CommandObserver | undefined;

  constructor(redis: RedisClient, keys: KeyLayout = new KeyLayout(), opts: { observe?: CommandObserver } = {}) {
    this.redis = redis;
    this.keys = keys;
    this.observe = opts.observe;
  }

  /** Runs one command of the request path, reporting its latency to the observer. */
  private async timed<T>(command: string, run: () => Promise<T>): Promise<T> {
    const observe = this.observe;
    if (!observe) return run();
    const t0 = process.hrtime.bigint();
    try {
      const r = await run();
      observe(command, Number(process.hrtime.bigint() - t0) / 1e9, true);
      return r;
    } catch (err) {
      observe(command, Number(process.hrtime.bigint() - t0) / 1e9, false);
      throw err;
    }
  }

  /** The stored value of a session, or null. Parsing is the caller's, so it can count failures. */
  async readRaw(tokenHash: string): Promise<string | null> {
    return this.timed('get', () => this.redis.get(this.keys.session(tokenHash)));
  }

  /**
   * The stored value of a session, pushing its idle expiry to `ttlMs` from now in the same
   * command (GETEX PX): a read that also refreshes. Like PEXPIRE, GETEX on a key that is gone
   * does nothing, so it cannot resurrect a session.
   */
  async readRawAndRefresh(tokenHash: string, ttlMs: number): Promise<string | null> {
    return this.timed('getex', () => this.redis.getex(this.keys.session(tokenHash), 'PX', ttlMs));
  }

  /** The record of a session, or null when there is none (throws InvalidRecordError when corrupt). */
  async read(tokenHash: string): Promise<SessionRecord | null> {
    const raw = await this.readRaw(tokenHash);
    return raw === null ? null : parseRecord(raw);
  }

  /**
   * Pushes the idle expiry forward, never past the absolute one. PEXPIRE on a key that was
   * deleted meanwhile does nothing, so this cannot resurrect a session.
   */
  async touch(tokenHash: string, record: SessionRecord, now = Date.now()): Promise<void> {
    const ttl = remainingLifetimeMs(record, now);
    const key = this.keys.session(tokenHash);
    if (ttl <= 0) await this.timed('del', () => this.redis.del(key));
    else await this.timed('pexpire', () => this.redis.pexpire(key, Math.ceil(ttl)));
  }

  /** Writes a new session under a freshly minted token; the caller sets the cookie. */
  async create(input: NewSession, now = Date.now()): Promise<{ token: string; tokenHash: string; record: SessionRecord }> {
    const token = mintToken();
    const tokenHash = hashToken(token);
    const record: SessionRecord = {
      v: RECORD_VERSION,
      sid: mintSessionId(),
      sub: input.sub,
      roles: [...input.roles],
      createdAt: now,
      absoluteExpiresAt: now + input.absoluteTimeoutMs,
      idleTimeoutMs: input.idleTimeoutMs,
      claims: { ...(input.claims ?? {}) },
      ...(input.userAgent ? { userAgent: input.userAgent.slice(0, 512) } : {}),
    };
    const index = this.keys.userIndex(record.sub);
    // index first: a crash in between leaves an index entry without a session (pruned
    // later), never a session that logout-all cannot find
    await this.redis.zadd(index, record.absoluteExpiresAt, indexMember(record.sid, tokenHash));
    await this.redis.pexpireat(index, record.absoluteExpiresAt, 'GT');
    await this.redis.pexpireat(index, record.absoluteExpiresAt, 'NX');
    await this.redis.set(this.keys.session(tokenHash), serializeRecord(record), 'PX', remainingLifetimeMs(record, now));
    return { token, tokenHash, record };
  }

  /** Index entries of a user, expired ones pruned. */
  private async indexEntries(sub: string, now: number): Promise<{ sid: string; tokenHash: string }[]> {
    const index = this.keys.userIndex(sub);
    await this.redis.zremrangebyscore(index, '-inf', now);
    const members = await this.redis.zrange(index, 0, '-1');
    return members.map(splitMember);
  }

  /** The live sessions of a user; index entries whose session is gone are removed. */
  async list(sub: string, now = Date.now()): Promise<SessionSummary[]> {
    const entries = await this.indexEntries(sub, now);
    const out: SessionSummary[] = [];
    const dead: string[] = [];
    await Promise.all(
      entries.map(async (e) => {
        const key = this.keys.session(e.tokenHash);
        const [raw, pttl] = await Promise.all([this.redis.get(key), this.redis.pttl(key)]);
        let record: SessionRecord | null = null;
        try {
          record = raw === null ? null : parseRecord(raw);
        } catch {
          record = null;
        }
        if (!record || record.sub !== sub || pttl < 0) {
          dead.push(indexMember(e.sid, e.tokenHash));
          return;
        }
        out.push({
          sid: record.sid,
          createdAt: record.createdAt,
          lastSeenAt: Math.max(record.createdAt, Math.min(now, now - (record.idleTimeoutMs - pttl))),
          absoluteExpiresAt: record.absoluteExpiresAt,
          expiresAt: Math.min(now + pttl, record.absoluteExpiresAt),
          userAgent: record.userAgent ?? null,
        });
      }),
    );
    if (dead.length) await this.redis.zrem(this.keys.userIndex(sub), ...dead);
    return out.sort((a, b) => b.createdAt - a.createdAt);
  }

  /**
   * Removes index entries whose session is gone (expired by idle or absolute timeout), so
   * the per-user index never grows without bound. One EXISTS per entry; resolves how many
   * entries were removed.
   */
  async prune(sub: string, now = Date.now()): Promise<number> {
    const entries = await this.indexEntries(sub, now);
    const alive = await Promise.all(entries.map((e) => this.redis.exists(this.keys.session(e.tokenHash))));
    const dead = entries.filter((_, i) => alive[i] === 0).map((e) => indexMember(e.sid, e.tokenHash));
    if (dead.length) await this.redis.zrem(this.keys.userIndex(sub), ...dead);
    return dead.length;
  }

  /** Deletes one session by token hash; resolves true when it existed. Publishes the revocation. */
  async destroyByHash(sub: string, sid: string, tokenHash: string): Promise<boolean> {
    const n = await this.redis.del(this.keys.session(tokenHash));
    await this.redis.zrem(this.keys.userIndex(sub), indexMember(sid, tokenHash));
    await this.publishInvalidation([tokenHash]);
    return n > 0;
  }

  /** Deletes one session of a user by its sid; resolves false when the user has no such session. */
  async destroyBySid(sub: string, sid: string, now = Date.now()): Promise<boolean> {
    const entry = (await this.indexEntries(sub, now)).find((e) => e.sid === sid);
    if (!entry) return false;
    return this.destroyByHash(sub, sid, entry.tokenHash);
  }

  /** Deletes every session of a user; resolves how many there were. */
  async destroyAll(sub: string, now = Date.now()): Promise<number> {
    const entries = await this.indexEntries(sub, now);
    const counts = await Promise.all(entries.map((e) => this.redis.del(this.keys.session(e.tokenHash))));
    await this.redis.del(this.keys.userIndex(sub));
    if (entries.length) await this.publishInvalidation(entries.map((e) => e.tokenHash));
    return counts.reduce((a, b) => a + b, 0);
  }

  /**
   * Gives every live session of a user new roles, keeping each one's expiry. `SET … XX
   * KEEPTTL` writes only a key that still exists, so a session deleted meanwhile stays deleted.
   */
  async setRoles(sub: string, roles: readonly string[], now = Date.now()): Promise<number> {
    const entries = await this.indexEntries(sub, now);
    let changed = 0;
    const touched: string[] = [];
    for (const e of entries) {
      const key = this.keys.session(e.tokenHash);
      const raw = await this.redis.get(key);
      if (raw === null) continue;
      let record: SessionRecord;
      try {
        record = parseRecord(raw);
      } catch {
        continue;
      }
      const next = serializeRecord({ ...record, roles: [...roles] });
      const ok = await this.redis.set(key, next, 'KEEPTTL', 'XX');
      if (ok === 'OK') {
        changed++;
        touched.push(e.tokenHash);
      }
    }
    if (touched.length) await this.publishInvalidation(touched);
    return changed;
  }

  async publishInvalidation(hashes: string[]): Promise<void> {
    await this.redis.publish(this.keys.invalidationChannel, encodeInvalidation({ hashes }));
  }
}
