import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFixture } from '../../test/support/process.js';
import { startRedisServer, type RedisServer } from '../../test/support/redis-server.js';

// What a cached session costs: a gateway may hold 100,000 of them, and the bench's memory
// check holds its peak RSS under 200 MB (docs/performance.md). A child process resolves
// 20,000 sessions of a real Redis through a cache-on resolver and weighs the heap (and array
// buffers) the cache grew by, after full collections.

const CHILD = fileURLToPath(new URL('../../test/fixtures/cached-session-bytes.mjs', import.meta.url));

let redis: RedisServer;

beforeAll(async () => {
  redis = await startRedisServer();
});

afterAll(async () => {
  await redis?.stop();
});

describe('session cache memory', () => {
  it('holds a cached session in about half a kilobyte', async () => {
    const r = JSON.parse(await runFixture(CHILD, { nodeArgs: ['--expose-gc'], env: { REDIS_URL: redis.url } })) as { cached: number; bytesPerSession: number };
    expect(r.cached).toBe(20_000);
    // about 510 bytes: the entry, the record's fields and strings, the LRU's slots. It was
    // about 610 while each cached sid was a slice that kept its whole 43-character hash
    // alive and the active-sessions gauge kept a map entry per session.
    expect(r.bytesPerSession).toBeGreaterThan(200);
    expect(r.bytesPerSession).toBeLessThan(560);
  }, 60_000);
});
