import type { Cluster, Redis } from 'ioredis';
import {
  KeyLayout,
  RECORD_VERSION,
  mintToken,
  parseRecord,
  recordStarts,
  remainingLifetimeMs,
  serializeRecord,
  shortUserAgent,
  sessionRef,
  userTag,
  type SessionRecord,
  type SessionRef,
} from './record.js';
import { CREATE, DESTROY_ALL, DESTROY_ONE, REWRITE, SNAPSHOT, WRITE_DATA } from './scripts.js';
import { dataSummary, type DataPatch } from './session-data.js';

/** A standalone, Sentinel-managed or Cluster client: the store works the same on all three. */
export type RedisClient = Redis | Cluster;

/** Most live sessions one user may hold; a login past it ends the oldest. @default 20 */
export const DEFAULT_MAX_SESSIONS_PER_USER = 20;
/** Index entries checked for sessions that ended idle on each login. */
const PRUNE_SAMPLE = 2;
/** Rounds setRoles() reads again records that changed under it before it gives up. */
const REWRITE_ROUNDS = 5;

export interface NewSession {
  sub: string;
  roles: readonly string[];
  claims?: Readonly<Record<string, string | number | boolean>>;
  userAgent?: string;
  idleTimeoutMs: number;
  absoluteTimeoutMs: number;
}

/** A session just created, and the sessions of the same user that the cap ended. */
export interface CreatedSession {
  token: string;
  ref: SessionRef;
  record: SessionRecord;
  /** Sids of the user's oldest sessions, ended because the login went past the cap. */
  evicted: string[];
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
  /** Which services stored data in it: the namespaces and their sizes, never the values. */
  data: { namespace: string; bytes: number }[];
}

/** What a session data write did: written, or why not. */
export type DataWriteOutcome = 'ok' | 'gone' | 'foreign' | 'corrupt' | 'too_large';

/** The outcome of a session data write, with the sizes it found or made. */
export interface DataWriteResult {
  outcome: DataWriteOutcome;
  /** The namespace's size, in bytes, as written (or as it would have been). */
  namespaceBytes: number;
  /** The size of every namespace's data together. */
  dataBytes: number;
}

/** Receives the latency of each command on the request path (for a histogram). */
export type CommandObserver = (command: string, seconds: number, ok: boolean) => void;

export interface SessionStoreOptions {
  observe?: CommandObserver;
  /** @default DEFAULT_MAX_SESSIONS_PER_USER */
  maxSessionsPerUser?: number;
}

/**
 * Every Redis operation on sessions. The request path (read, refresh) names one session key;
 * everything that touches a user's index (create, list, revoke, change roles) is one script
 * over that user's slot, so it runs unchanged and atomically on Redis Cluster. No command
 * ever rewrites a record that might have been deleted meanwhile, so a logout can never be
 * undone by a concurrent refresh or role change.
 */
export class SessionStore {
  readonly keys: KeyLayout;
  readonly redis: RedisClient;
  readonly maxSessionsPerUser: number;

  private readonly observe: CommandObserver | undefined;

  constructor(redis: RedisClient, keys: KeyLayout = new KeyLayout(), opts: SessionStoreOptions = {}) {
    this.redis = redis;
    this.keys = keys;
    this.observe = opts.observe;
    const max = opts.maxSessionsPerUser ?? DEFAULT_MAX_SESSIONS_PER_USER;
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxSessionsPerUser must be a whole number ≥ 1, got ${max}`);
    this.maxSessionsPerUser = max;
  }

  /**
   * Runs one command of the request path, reporting its latency to the observer: one clock
   * read (a plain number, no BigInt) at each end and no async frame of its own, since every
   * request without the cache goes through here.
   */
  private timed<T>(command: string, run: () => Promise<T>): Promise<T> {
    const observe = this.observe;
    if (!observe) return run();
    const t0 = performance.now();
    let running: Promise<T>;
    try {
      running = run();
    } catch (err) {
      observe(command, (performance.now() - t0) / 1e3, false);
      return Promise.reject(err);
    }
    return running.then(
      (r) => {
        observe(command, (performance.now() - t0) / 1e3, true);
        return r;
      },
      (err: unknown) => {
        observe(command, (performance.now() - t0) / 1e3, false);
        throw err;
      },
    );
  }

  /** The stored value of a session, or null. Parsing is the caller's, so it can count failures. */
  readRaw(ref: SessionRef): Promise<string | null> {
    return this.timed('get', () => this.redis.get(this.keys.session(ref)));
  }

  /**
   * The stored value of a session, pushing its idle expiry to `ttlMs` from now in the same
   * command (GETEX PX): a read that also refreshes. Like PEXPIRE, GETEX on a key that is gone
   * does nothing, so it cannot resurrect a session.
   */
  readRawAndRefresh(ref: SessionRef, ttlMs: number): Promise<string | null> {
    return this.timed('getex', () => this.redis.getex(this.keys.session(ref), 'PX', ttlMs));
  }

  /**
   * Pushes the idle expiry forward, never past the absolute one. PEXPIRE on a key that was
   * deleted meanwhile does nothing, so this cannot resurrect a session.
   */
  async touch(ref: SessionRef, record: SessionRecord, now = Date.now()): Promise<void> {
    const ttl = remainingLifetimeMs(record, now);
    const key = this.keys.session(ref);
    if (ttl <= 0) await this.timed('del', () => this.redis.del(key));
    else await this.timed('pexpire', () => this.redis.pexpire(key, Math.ceil(ttl)));
  }

  /**
   * Writes a new session under a freshly minted token, with its index entry, in one script;
   * the caller sets the cookie. Past the cap the user's oldest sessions end (their keys are
   * deleted: Redis reports that to every gateway, as any change to a session key).
   */
  async create(input: NewSession, now = Date.now()): Promise<CreatedSession> {
    const token = mintToken(input.sub);
    const ref = sessionRef(token);
    const record: SessionRecord = {
      v: RECORD_VERSION,
      sid: ref.sid,
      sub: input.sub,
      roles: [...input.roles],
      createdAt: now,
      absoluteExpiresAt: now + input.absoluteTimeoutMs,
      idleTimeoutMs: input.idleTimeoutMs,
      claims: { ...(input.claims ?? {}) },
      // only "my sessions" shows it: a summary, not the whole string
      ...(input.userAgent ? { userAgent: shortUserAgent(input.userAgent) } : {}),
    };
    const [index, legacy] = this.keys.userIndexes(record.sub);
    const evicted = (await CREATE.run(
      this.redis,
      [index, this.keys.session(ref), legacy],
      [
        ref.sid,
        serializeRecord(record),
        remainingLifetimeMs(record, now),
        record.absoluteExpiresAt,
        now,
        this.maxSessionsPerUser,
        this.keys.sessionPrefix(ref.tag),
        PRUNE_SAMPLE,
      ],
    )) as string[];
    return { token, ref, record, evicted };
  }

  /** sid, stored value and PTTL of each live session of a user (entries of ended ones are dropped). */
  private async snapshot(sub: string, now: number): Promise<{ sid: string; raw: string; pttl: number }[]> {
    const flat = (await SNAPSHOT.run(this.redis, this.keys.userIndexes(sub), [this.keys.sessionPrefix(userTag(sub)), now])) as (
      | string
      | number
    )[];
    const out: { sid: string; raw: string; pttl: number }[] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) out.push({ sid: String(flat[i]), raw: String(flat[i + 1]), pttl: Number(flat[i + 2]) });
    return out;
  }

  /** The live sessions of a user, newest first. */
  async list(sub: string, now = Date.now()): Promise<SessionSummary[]> {
    const out: SessionSummary[] = [];
    for (const { sid, raw, pttl } of await this.snapshot(sub, now)) {
      let record: SessionRecord;
      try {
        record = parseRecord(raw, sid);
      } catch {
        continue;
      }
      if (record.sub !== sub || pttl < 0) continue;
      out.push({
        sid: record.sid,
        createdAt: record.createdAt,
        lastSeenAt: Math.max(record.createdAt, Math.min(now, now - (record.idleTimeoutMs - pttl))),
        absoluteExpiresAt: record.absoluteExpiresAt,
        expiresAt: Math.min(now + pttl, record.absoluteExpiresAt),
        userAgent: record.userAgent ?? null,
        data: dataSummary(record.data),
      });
    }
    return out.sort((a, b) => b.createdAt - a.createdAt);
  }

  /**
   * Writes keys of one namespace of a session's data in one atomic command (WRITE_DATA): it
   * never creates a session, never touches another user's, never changes an expiry, and
   * refuses a namespace past `maxBytes` or data past `maxDataBytes` as a whole.
   */
  async writeData(
    sub: string,
    sid: string,
    namespace: string,
    patch: DataPatch,
    limits: { maxBytes: number; maxDataBytes: number },
  ): Promise<DataWriteResult> {
    const key = this.keys.session({ tag: userTag(sub), sid });
    const starts = recordStarts(sub);
    const args = [namespace, JSON.stringify(patch.set), JSON.stringify(patch.remove), limits.maxBytes, limits.maxDataBytes, starts.written, starts.early];
    const [outcome, namespaceBytes, dataBytes] = (await this.timed('eval', () => WRITE_DATA.run(this.redis, [key], args))) as [
      DataWriteOutcome,
      number,
      number,
    ];
    return { outcome, namespaceBytes, dataBytes };
  }

  /**
   * Ends one session of a user by its sid; resolves false when the user has no such live
   * session. Every gateway hears of it from Redis (key tracking).
   */
  async destroyBySid(sub: string, sid: string): Promise<boolean> {
    const ref = { tag: userTag(sub), sid };
    const [index, legacy] = this.keys.userIndexes(sub);
    const [, ended] = (await DESTROY_ONE.run(this.redis, [index, this.keys.session(ref), legacy], [sid, sub, recordStarts(sub).early])) as [number, number];
    return ended > 0;
  }

  /** Ends every session of a user; resolves how many were alive. Every gateway hears of it from Redis. */
  async destroyAll(sub: string): Promise<number> {
    const [ended] = (await DESTROY_ALL.run(this.redis, this.keys.userIndexes(sub), [this.keys.sessionPrefix(userTag(sub))])) as [number, string[]];
    return ended;
  }

  /**
   * Gives every live session of a user new roles, keeping each one's expiry; resolves how
   * many records were rewritten. Each record is rewritten only if it is still what was read,
   * and sessions created meanwhile are read too, until none is left over.
   */
  async setRoles(sub: string, roles: readonly string[], now = Date.now()): Promise<number> {
    const indexes = this.keys.userIndexes(sub);
    const prefix = this.keys.sessionPrefix(userTag(sub));
    let changed = 0;
    for (let round = 0; round < REWRITE_ROUNDS; round++) {
      const args: string[] = [prefix];
      for (const { sid, raw } of await this.snapshot(sub, now)) {
        let next = '';
        try {
          const record = parseRecord(raw, sid);
          // only this user's records, whatever an index lists
          if (record.sub === sub && !sameRoles(record.roles, roles)) next = serializeRecord({ ...record, roles: [...roles] });
        } catch {
          // a record the gateway refuses anyway is left as it is
        }
        args.push(sid, raw, next);
      }
      const [rewritten, again] = (await REWRITE.run(this.redis, indexes, args)) as [string[], string[]];
      changed += rewritten.length;
      if (!again.length) return changed;
      now = Date.now();
    }
    throw new Error(`the sessions of this user kept changing: roles applied to ${changed} of them, run it again`);
  }
}

function sameRoles(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((r, i) => r === b[i]);
}
