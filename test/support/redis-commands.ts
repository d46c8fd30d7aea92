import type { Redis } from 'ioredis';
import type { RedisClient } from '@sessiongate/session';

/** Removes every key under a prefix (never FLUSHDB: the Redis may be shared). */
export async function deletePrefix(redis: RedisClient, prefix: string): Promise<void> {
  const stream = (redis as Redis).scanStream({ match: `${prefix}*`, count: 500 });
  for await (const keys of stream as AsyncIterable<string[]>) if (keys.length) await redis.del(...keys);
}

/** Calls per command since the server started (INFO commandstats), lower-case names. */
export async function commandCounts(redis: RedisClient): Promise<Map<string, number>> {
  const info = await redis.info('commandstats');
  const out = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set(m[1]!, Number(m[2]));
  return out;
}

/** Calls of one command between two snapshots. */
export function delta(before: Map<string, number>, after: Map<string, number>, command: string): number {
  return (after.get(command) ?? 0) - (before.get(command) ?? 0);
}

/** Every command sent between two snapshots, except the probes' and the heartbeat's. */
export function requestPathCommands(before: Map<string, number>, after: Map<string, number>): number {
  const ignored = new Set(['info', 'ping', 'subscribe', 'client|id', 'client|tracking', 'client|setname']);
  let n = 0;
  for (const [cmd, calls] of after) if (!ignored.has(cmd)) n += calls - (before.get(cmd) ?? 0);
  return n;
}
