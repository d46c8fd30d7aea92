import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';

// The session store's multi-key operations, each one Lua script over a user's index and
// session keys. They share the user's slot tag, so every script runs on one Cluster node,
// and a script runs atomically: no login, list or revocation ever sees half of another.
// Session keys are built inside the scripts from the slot's key prefix and the sids read
// from the index: they hash to the declared index key's slot by construction.

type Client = Redis | Cluster;

/**
 * Moves a user's index from where earlier releases kept it (named by the user id) into its
 * place now (named by a hash of it), keeping the later expiry of the two; the scripts that
 * take a user's index run it first, so an upgrade loses no session to revocation or listing.
 * The legacy key is optional: the API key store, which shares the scripts, has none.
 */
const ADOPT_LEGACY_INDEX = `
local function adopt(index, legacy)
  if not legacy or redis.call('EXISTS', legacy) == 0 then return end
  redis.call('ZUNIONSTORE', index, 2, index, legacy, 'AGGREGATE', 'MAX')
  redis.call('DEL', legacy)
  local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', index, last[2])
end
`;

/** A script sent once per server by its SHA1, and in full when the server does not know it yet. */
export class LuaScript {
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Client, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      // a Redis reply error carries no code, only its text: NOSCRIPT after a restart or failover
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

/**
 * Creates a session: its record and its index entry in one step, so there is never an entry
 * without its session (which pruning would drop) nor a session that revocation cannot find.
 * Pruning rides along at a fixed cost: entries past their absolute expiry go (each entry goes
 * once), and a few entries picked at random are checked for sessions that ended idle. Past
 * the cap, the oldest entries go until it holds; the sessions of those still alive end.
 * KEYS: index, session, legacy index. ARGV: sid, record, ttl ms, absolute expiry ms, now ms,
 * cap, session key prefix of the slot, how many entries to sample. Returns the sids of the
 * sessions ended.
 */
export const CREATE = new LuaScript(`${ADOPT_LEGACY_INDEX}
local index, key = KEYS[1], KEYS[2]
adopt(index, KEYS[3])
local sid, prefix = ARGV[1], ARGV[7]
local cap, sample = tonumber(ARGV[6]), tonumber(ARGV[8])
redis.call('ZREMRANGEBYSCORE', index, '-inf', ARGV[5])
if sample > 0 then
  for _, m in ipairs(redis.call('ZRANDMEMBER', index, sample)) do
    if redis.call('EXISTS', prefix .. m) == 0 then redis.call('ZREM', index, m) end
  end
end
redis.call('SET', key, ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', index, ARGV[4], sid)
redis.call('PEXPIREAT', index, ARGV[4], 'GT')
redis.call('PEXPIREAT', index, ARGV[4], 'NX')
local ended = {}
while redis.call('ZCARD', index) > cap do
  local oldest = redis.call('ZRANGE', index, 0, 1)
  local m = oldest[1]
  if m == sid then m = oldest[2] end
  if not m then break end
  if redis.call('DEL', prefix .. m) == 1 then ended[#ended + 1] = m end
  redis.call('ZREM', index, m)
end
return ended
`);

/**
 * The sessions of a user: sid, record and PTTL of each live one. Entries whose session is
 * gone are dropped: creation is atomic, so such an entry can never come back to life.
 * KEYS: index, legacy index (optional). ARGV: session key prefix of the slot, now ms. Returns sid, raw, pttl, ….
 */
export const SNAPSHOT = new LuaScript(`${ADOPT_LEGACY_INDEX}
local index, prefix = KEYS[1], ARGV[1]
adopt(index, KEYS[2])
redis.call('ZREMRANGEBYSCORE', index, '-inf', ARGV[2])
local out = {}
for _, m in ipairs(redis.call('ZRANGE', index, 0, -1)) do
  local key = prefix .. m
  local raw = redis.call('GET', key)
  if raw then
    out[#out + 1] = m
    out[#out + 1] = raw
    out[#out + 1] = redis.call('PTTL', key)
  else
    redis.call('ZREM', index, m)
  end
end
return out
`);

/**
 * Ends every session the index lists and removes exactly those entries, in one step: a
 * session created before it is ended, one created after it is a new login.
 * KEYS: index, legacy index (optional). ARGV: session key prefix of the slot. Returns {sessions ended, sids listed}.
 */
export const DESTROY_ALL = new LuaScript(`${ADOPT_LEGACY_INDEX}
local index, prefix = KEYS[1], ARGV[1]
adopt(index, KEYS[2])
local members = redis.call('ZRANGE', index, 0, -1)
local ended = 0
for _, m in ipairs(members) do ended = ended + redis.call('DEL', prefix .. m) end
for i = 1, #members, 500 do
  redis.call('ZREM', index, unpack(members, i, math.min(i + 499, #members)))
end
return {ended, members}
`);

/**
 * Ends one session of a user. A session missing from the index (none should be) is ended
 * only when its record names this user, so nobody ends another user's session by its sid.
 * KEYS: index, session, legacy index (optional). ARGV: sid, sub, how the user's records of the
 * early version 2 form start (recordStarts; optional: the other forms are JSON objects,
 * decoded). Returns {listed, ended}.
 */
export const DESTROY_ONE = new LuaScript(`${ADOPT_LEGACY_INDEX}
adopt(KEYS[1], KEYS[3])
local listed = redis.call('ZREM', KEYS[1], ARGV[1])
if listed == 0 then
  local raw = redis.call('GET', KEYS[2])
  if not raw then return {0, 0} end
  local early = ARGV[3]
  if not early or string.sub(raw, 1, #early) ~= early then
    -- a JSON object naming its user; the identity ends where the services' data starts
    local nl = string.find(raw, '\\n', 1, true)
    if nl then raw = string.sub(raw, 1, nl - 1) end
    local ok, record = pcall(cjson.decode, raw)
    if not ok or type(record) ~= 'table' or record.sub ~= ARGV[2] then return {0, 0} end
  end
end
return {listed, redis.call('DEL', KEYS[2])}
`);

/**
 * Rewrites records read by SNAPSHOT, each only if it is still exactly what was read (and
 * keeps its TTL; XX never recreates one deleted meanwhile). Records changed meanwhile, and
 * entries added since the snapshot, come back to be read again.
 * KEYS: index, legacy index (optional). ARGV: session key prefix of the slot, then sid, value read, new
 * value ('' to leave it) for each session read. Returns {sids rewritten, sids to read again}.
 */
export const REWRITE = new LuaScript(`${ADOPT_LEGACY_INDEX}
local index, prefix = KEYS[1], ARGV[1]
adopt(index, KEYS[2])
local seen, rewritten, again = {}, {}, {}
for i = 2, #ARGV, 3 do
  local sid, read, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  seen[sid] = true
  local key = prefix .. sid
  local raw = redis.call('GET', key)
  if raw == read then
    if value ~= '' then
      redis.call('SET', key, value, 'KEEPTTL', 'XX')
      rewritten[#rewritten + 1] = sid
    end
  elseif raw then
    again[#again + 1] = sid
  end
end
for _, m in ipairs(redis.call('ZRANGE', index, 0, -1)) do
  if not seen[m] then again[#again + 1] = m end
end
return {rewritten, again}
`);

/**
 * Writes keys of one namespace of a session's data, atomically: concurrent writes to the
 * same session each apply whole, none loses another's keys. The identity part of the record
 * is kept byte for byte; only the data after it is re-encoded. Never creates a session (no
 * record: 'gone'), never touches another user's (the record must start as given) and never
 * changes its expiry (KEEPTTL). Refused ('too_large') when the namespace would pass its cap
 * or the data of all namespaces would pass what X-Session has room for, leaving it as it was.
 * KEYS: session. ARGV: namespace, keys to set (a JSON object), keys to delete (a JSON list),
 * namespace cap (bytes), room for all data (bytes), how the record must start (recordStarts:
 * as written now, or in the early version 2 form).
 * Returns {'ok', namespace bytes, data bytes} or {reason, namespace bytes, data bytes}.
 */
export const WRITE_DATA = new LuaScript(`
local raw = redis.call('GET', KEYS[1])
if not raw then return {'gone', 0, 0} end
local written, early = ARGV[6], ARGV[7]
if string.sub(raw, 1, #written) ~= written and string.sub(raw, 1, #early) ~= early then return {'foreign', 0, 0} end
local identity, data = raw, {}
local nl = string.find(raw, '\\n', 1, true)
if nl then
  identity = string.sub(raw, 1, nl - 1)
  local ok, decoded = pcall(cjson.decode, string.sub(raw, nl + 1))
  if not ok or type(decoded) ~= 'table' then return {'corrupt', 0, 0} end
  data = decoded
end
local name = ARGV[1]
local ns = data[name]
if type(ns) ~= 'table' then ns = {} end
for k, v in pairs(cjson.decode(ARGV[2])) do ns[k] = v end
for _, k in ipairs(cjson.decode(ARGV[3])) do ns[k] = nil end
local nsBytes = 0
if next(ns) == nil then data[name] = nil else
  data[name] = ns
  nsBytes = #cjson.encode(ns)
end
local value, dataBytes = identity, 0
if next(data) ~= nil then
  local encoded = cjson.encode(data)
  dataBytes = #encoded
  value = identity .. '\\n' .. encoded
end
if nsBytes > tonumber(ARGV[4]) or dataBytes > tonumber(ARGV[5]) then return {'too_large', nsBytes, dataBytes} end
redis.call('SET', KEYS[1], value, 'KEEPTTL', 'XX')
return {'ok', nsBytes, dataBytes}
`);
