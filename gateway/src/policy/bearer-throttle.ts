import { LRUCache } from 'lru-cache';
import { DEFAULT_BEARER_FAILURE_WINDOW_MS, DEFAULT_BEARER_MAX_FAILURES } from '../defaults.js';
import type { ApiKeyLayout, RedisClient } from '@sessiongate/session';

/** Client addresses this gateway remembers as throttled. */
const BLOCKED_MAX = 10_000;

// One key per address, so it runs on Redis Cluster as is; PEXPIRE starts the window on the
// first failure. KEYS: counter. ARGV: window ms. Returns {count, pttl}.
const FAIL = `
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}
`;

export interface BearerThrottleSettings {
  /** @default DEFAULT_BEARER_MAX_FAILURES */
  maxFailures?: number;
  /** @default DEFAULT_BEARER_FAILURE_WINDOW_MS */
  windowMs?: number;
}

/**
 * Failed API keys and JWTs, counted per client address in Redis (shared by every gateway),
 * like failed logins in the auth service. Only a failure writes; an address past the limit
 * is remembered here until its window ends, so the success path costs one map lookup.
 */
export class BearerThrottle {
  private readonly blocked: LRUCache<string, number>;
  readonly maxFailures: number;
  readonly windowMs: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly layout: ApiKeyLayout,
    settings: BearerThrottleSettings = {},
    private readonly now: () => number = Date.now,
  ) {
    this.maxFailures = settings.maxFailures ?? DEFAULT_BEARER_MAX_FAILURES;
    this.windowMs = settings.windowMs ?? DEFAULT_BEARER_FAILURE_WINDOW_MS;
    if (!Number.isInteger(this.maxFailures) || this.maxFailures < 1) throw new RangeError('bearer maxFailures must be a whole number ≥ 1');
    if (!(this.windowMs > 0)) throw new RangeError('bearer failure window must be positive');
    this.blocked = new LRUCache<string, number>({ max: BLOCKED_MAX });
  }

  /** Seconds until `ip` may try again, or 0. */
  retryAfter(ip: string): number {
    const until = this.blocked.get(ip);
    if (until === undefined) return 0;
    const left = until - this.now();
    if (left > 0) return Math.ceil(left / 1000);
    this.blocked.delete(ip);
    return 0;
  }

  /** Counts a failure of `ip`; past the limit, the address is throttled until its window ends. */
  async fail(ip: string): Promise<void> {
    const [n, pttl] = (await this.redis.eval(FAIL, 1, this.layout.failures(ip), this.windowMs)) as [number, number];
    if (n >= this.maxFailures) this.blocked.set(ip, this.now() + (pttl > 0 ? pttl : this.windowMs));
  }
}
