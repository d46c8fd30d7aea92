import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFixture } from '../../test/support/process.js';
import { startRedisServer, type RedisServer } from '../../test/support/redis-server.js';

// What a cached lookup leaves behind: nothing that outlives a young-generation collection.
// Objects the request path leaves alive across two of them are promoted to the old
// generation, and the mark-compacts they bring on pause every request in flight: the
// gateway's p99 follows them (docs/performance.md). A child process resolves cached sessions
// and API keys against a real Redis under V8's --trace-gc-nvp, and the bytes its
// young-generation collections promoted are weighed against the bytes allocated.

const CHILD = fileURLToPath(new URL('../../test/fixtures/cached-lookups.mjs', import.meta.url));

let redis: RedisServer;

beforeAll(async () => {
  redis = await startRedisServer();
});

afterAll(async () => {
  await redis?.stop();
});

/** Young-generation collections (`gc=s`) between the marks: how many, bytes allocated and promoted. */
function scavenges(out: string): { count: number; allocated: number; promoted: number } {
  const measured = out.split('\nmeasure\n')[1]?.split('\ndone ')[0] ?? '';
  let count = 0;
  let allocated = 0;
  let promoted = 0;
  for (const line of measured.split('\n')) {
    if (!line.includes(' gc=s ')) continue;
    count++;
    allocated += Number(/ allocated=(\d+)/.exec(line)?.[1]);
    promoted += Number(/ promoted=(\d+)/.exec(line)?.[1]);
  }
  return { count, allocated, promoted };
}

describe('old generation', () => {
  it('cached session and API-key lookups promote (next to) nothing', async () => {
    const out = await runFixture(CHILD, { nodeArgs: ['--trace-gc-nvp'], env: { REDIS_URL: redis.url } });
    expect(out).toMatch(/\ndone 210000\n/);
    const s = scavenges(out);
    // the loop allocates enough for several collections, or there would be nothing to weigh
    expect(s.count).toBeGreaterThanOrEqual(5);
    expect(s.allocated).toBeGreaterThan(50e6);
    // about 1.5 KB per MB allocated (the loop's own promises in flight across collections);
    // with an object spread on the API-key path it was about 25
    expect((s.promoted / s.allocated) * 1000).toBeLessThan(5);
  }, 60_000);
});
