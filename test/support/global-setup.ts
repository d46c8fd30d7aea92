import type { TestProject } from 'vitest/node';
import { startRedisServer, type RedisServer } from './redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

let redis: RedisServer | undefined;

// One shared Redis for the suite: the one in REDIS_URL, else a private redis-server on a
// free port. Tests isolate themselves with their own key prefix, never by flushing.
export async function setup(project: TestProject): Promise<void> {
  const url = process.env.REDIS_URL;
  if (url) {
    project.provide('redisUrl', url);
    return;
  }
  redis = await startRedisServer();
  project.provide('redisUrl', redis.url);
}

export async function teardown(): Promise<void> {
  await redis?.stop();
}
