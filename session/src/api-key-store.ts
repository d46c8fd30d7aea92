import createError from '@fastify/error';
import {
  API_KEY_PREFIX,
  API_KEY_RECORD_VERSION,
  ApiKeyLayout,
  MAX_API_KEYS_PER_USER,
  effectiveKeyRoles,
  mintApiKey,
  parseApiKeyRecord,
  type ApiKeyRecord,
} from './api-keys.js';
import { userTag, type SessionRef } from './record.js';
import { DESTROY_ALL, DESTROY_ONE, LuaScript, REWRITE, SNAPSHOT } from './scripts.js';
import type { SessionStore } from './store.js';

/** The owner already holds MAX_API_KEYS_PER_USER keys. */
export const ApiKeyLimitReached = createError('SG_ERR_API_KEY_LIMIT', 'This user already holds %d API keys: revoke one first', 409);

/** Rounds setOwnerRoles() reads again records that changed under it before it gives up. */
const REWRITE_ROUNDS = 5;

/**
 * Writes a key's record (expiring with the key) and its index entry in one step, unless the
 * user already holds the most keys allowed; entries of expired keys are dropped on the way.
 * KEYS: index, record. ARGV: id, record, expiry ms or '', index score, now ms, cap.
 * Returns 1 when written, 0 at the cap.
 */
const CREATE_KEY = new LuaScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[5])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[6]) then return 0 end
if ARGV[3] == '' then
  redis.call('SET', KEYS[2], ARGV[2])
else
  redis.call('SET', KEYS[2], ARGV[2], 'PXAT', ARGV[3])
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
return 1
`);

export interface NewApiKey {
  sub: string;
  name: string;
  /** Roles asked for; null: whatever the owner has, now and later. */
  scope: readonly string[] | null;
  /** The owner's roles now: the key never carries more. */
  ownerRoles: readonly string[];
  /** Epoch ms, or null for a key that does not expire. */
  expiresAt: number | null;
}

/** One key as its owner (or an operator) sees it: never the secret, nor its hash. */
export interface ApiKeySummary {
  id: string;
  name: string;
  /** The start of the key (`sgk_<id>`): enough to recognise it, useless to use it. */
  prefix: string;
  roles: readonly string[];
  scope: readonly string[] | null;
  createdAt: number;
  lastUsedAt: number | null;
  expiresAt: number | null;
}

/**
 * Every Redis operation on API keys. A user's keys sit in the user's slot next to their
 * sessions and use the same scripts: listing, revoking one, revoking all, rewriting roles.
 * Each change rewrites or deletes the key's record, which Redis reports to every gateway
 * (key tracking), as for sessions.
 */
export class ApiKeyStore {
  readonly layout: ApiKeyLayout;

  constructor(readonly sessions: SessionStore) {
    this.layout = new ApiKeyLayout(sessions.keys);
  }

  private get redis() {
    return this.sessions.redis;
  }

  /** The stored record of a key, or null (the gateway's read). */
  async readRaw(ref: SessionRef): Promise<string | null> {
    return this.redis.get(this.layout.key(ref));
  }

  /** Notes that a key was used (the gateway calls this at most once a minute per key). */
  async noteUse(record: Pick<ApiKeyRecord, 'sub' | 'id'>, now: number): Promise<void> {
    await this.redis.hset(this.layout.lastUsed(record.sub), record.id, String(now));
  }

  /** Mints a key and stores its record: the key is in the answer and nowhere else. */
  async create(input: NewApiKey, now = Date.now()): Promise<{ key: string; record: ApiKeyRecord }> {
    const minted = mintApiKey(input.sub);
    const record: ApiKeyRecord = {
      v: API_KEY_RECORD_VERSION,
      id: minted.id,
      sub: input.sub,
      name: input.name,
      hash: minted.hash,
      scope: input.scope === null ? null : [...input.scope],
      roles: effectiveKeyRoles(input.scope, input.ownerRoles),
      createdAt: now,
      expiresAt: input.expiresAt,
    };
    const written = await CREATE_KEY.run(
      this.redis,
      [this.layout.userKeys(input.sub), this.layout.key({ tag: userTag(input.sub), sid: minted.id })],
      [minted.id, JSON.stringify(record), input.expiresAt ?? '', input.expiresAt ?? 'inf', now, MAX_API_KEYS_PER_USER],
    );
    if (written !== 1) throw new ApiKeyLimitReached(MAX_API_KEYS_PER_USER);
    return { key: minted.key, record };
  }

  /** id, stored value and PTTL of each live key of a user (entries of expired ones are dropped). */
  private async snapshot(sub: string, now: number): Promise<{ id: string; raw: string }[]> {
    const flat = (await SNAPSHOT.run(this.redis, [this.layout.userKeys(sub)], [this.layout.keyPrefix(userTag(sub)), now])) as (string | number)[];
    const out: { id: string; raw: string }[] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) out.push({ id: String(flat[i]), raw: String(flat[i + 1]) });
    return out;
  }

  /** The live keys of a user, newest first. */
  async list(sub: string, now = Date.now()): Promise<ApiKeySummary[]> {
    const live = await this.snapshot(sub, now);
    const used = live.length ? await this.redis.hmget(this.layout.lastUsed(sub), ...live.map((k) => k.id)) : [];
    const out: ApiKeySummary[] = [];
    live.forEach(({ raw }, i) => {
      let r: ApiKeyRecord;
      try {
        r = parseApiKeyRecord(raw);
      } catch {
        return;
      }
      if (r.sub !== sub) return;
      const last = used[i] ? Number(used[i]) : null;
      out.push({
        id: r.id,
        name: r.name,
        prefix: `${API_KEY_PREFIX}${r.id}`,
        roles: r.roles,
        scope: r.scope,
        createdAt: r.createdAt,
        lastUsedAt: last !== null && Number.isFinite(last) ? last : null,
        expiresAt: r.expiresAt,
      });
    });
    return out.sort((a, b) => b.createdAt - a.createdAt);
  }

  /** Revokes one key of a user (deletes its record); false when the user has no such key. */
  async revoke(sub: string, id: string): Promise<boolean> {
    const ref = { tag: userTag(sub), sid: id };
    const [listed, ended] = (await DESTROY_ONE.run(this.redis, [this.layout.userKeys(sub), this.layout.key(ref)], [id, sub])) as [number, number];
    if (listed || ended) await this.redis.hdel(this.layout.lastUsed(sub), id);
    return ended > 0;
  }

  /** Revokes every key of a user (deletes their records); resolves how many were live. */
  async revokeAll(sub: string): Promise<number> {
    const [ended] = (await DESTROY_ALL.run(this.redis, [this.layout.userKeys(sub)], [this.layout.keyPrefix(userTag(sub))])) as [number, string[]];
    await this.redis.del(this.layout.lastUsed(sub));
    return ended;
  }

  /**
   * The owner's roles changed: each key's roles become its scope within the new ones.
   * Records are rewritten only if unchanged since read (keeping their expiry); resolves
   * how many changed.
   */
  async setOwnerRoles(sub: string, ownerRoles: readonly string[], now = Date.now()): Promise<number> {
    const index = this.layout.userKeys(sub);
    const prefix = this.layout.keyPrefix(userTag(sub));
    let changed = 0;
    for (let round = 0; round < REWRITE_ROUNDS; round++) {
      const args: string[] = [prefix];
      for (const { id, raw } of await this.snapshot(sub, now)) {
        let next = '';
        try {
          const r = parseApiKeyRecord(raw);
          const roles = effectiveKeyRoles(r.scope, ownerRoles);
          if (roles.length !== r.roles.length || roles.some((x, i) => x !== r.roles[i])) next = JSON.stringify({ ...r, roles });
        } catch {
          // a record the gateway refuses anyway is left as it is
        }
        args.push(id, raw, next);
      }
      const [rewritten, again] = (await REWRITE.run(this.redis, [index], args)) as [string[], string[]];
      changed += rewritten.length;
      if (!again.length) return changed;
      now = Date.now();
    }
    throw new Error(`the API keys of this user kept changing: roles applied to ${changed} of them, run it again`);
  }
}
