import { isIP } from 'node:net';
import type { KeyLayout, RedisClient } from '@sessiongate/session';
import { wellFormed } from './users/directory.js';

/** Failed logins one account may have per window before every attempt gets 429. @default 5 */
export const DEFAULT_MAX_FAILURES_PER_ACCOUNT = 5;
/** Failed logins one client IP may have per window, across all accounts. @default 100 */
export const DEFAULT_MAX_FAILURES_PER_IP = 100;
/** @default 15 min */
export const DEFAULT_FAILURE_WINDOW_MS = 15 * 60_000;

export interface ThrottleSettings {
  readonly maxPerAccount: number;
  readonly maxPerIp: number;
  readonly windowMs: number;
}

export type ThrottleScope = 'account' | 'ip';

export type ThrottleDecision = { allowed: true } | { allowed: false; scope: ThrottleScope; retryAfterSeconds: number };

// Each script names exactly one key, so it runs on Redis Cluster as is.
//
// Take a failure slot before the password is checked: with the counter already at the
// limit the attempt is refused; otherwise the counter goes up at once (PEXPIRE starts the
// window on the first failure). Counting before the check, not after, is what stops a burst
// of parallel guesses from all passing a check that reads a counter nobody has raised yet.
const RESERVE = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    ttl = tonumber(ARGV[2])
  end
  return {0, ttl}
end
n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {1, n}
`;

// Give back a slot taken for an attempt that turned out not to be a failure; never creates
// the key (a DECR on an expired key would leave one without a TTL).
const REFUND = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0
`;

/**
 * Login throttling shared by every instance through Redis: per account (the normalized user
 * name, known or not, so throttling says nothing about which names exist) and per client IP.
 */
export class LoginThrottle {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: KeyLayout,
    readonly settings: ThrottleSettings,
  ) {}

  /**
   * Decides before the password is checked. When allowed, the attempt already counts as a
   * failure for the account and the IP; `succeeded()` takes that back.
   */
  async reserve(account: string, clientId: string): Promise<ThrottleDecision> {
    const accountKey = this.key('account', account);
    const a = await this.take(accountKey, this.settings.maxPerAccount);
    if (!a.allowed) return { allowed: false, scope: 'account', retryAfterSeconds: a.retryAfterSeconds };
    const ipKey = this.key('ip', clientId);
    const i = await this.take(ipKey, this.settings.maxPerIp);
    if (!i.allowed) {
      await this.redis.eval(REFUND, 1, accountKey);
      return { allowed: false, scope: 'ip', retryAfterSeconds: i.retryAfterSeconds };
    }
    return { allowed: true };
  }

  /**
   * A successful login clears the account's counter and gives the IP its slot back (the IP
   * counter is never cleared: one valid account must not reset an attacker's budget).
   */
  async succeeded(account: string, clientId: string): Promise<void> {
    await this.redis.del(this.key('account', account));
    await this.redis.eval(REFUND, 1, this.key('ip', clientId));
  }

  // the key layout percent-encodes ids, which throws on a lone surrogate: never let one through
  private key(kind: ThrottleScope, id: string): string {
    return this.keys.throttle(kind, wellFormed(id));
  }

  private async take(key: string, max: number): Promise<{ allowed: true } | { allowed: false; retryAfterSeconds: number }> {
    const [ok, value] = (await this.redis.eval(RESERVE, 1, key, max, this.settings.windowMs)) as [number, number];
    if (ok === 1) return { allowed: true };
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(value / 1000)) };
  }
}

/**
 * The client id the IP limit counts: the IPv4 address, or the /64 of an IPv6 one (a single
 * host usually holds a whole /64, so counting single addresses would be no limit at all).
 */
export function clientThrottleId(ip: string): string {
  let v = ip.trim().replace(/^\[|\]$/g, '');
  const zone = v.indexOf('%');
  if (zone >= 0) v = v.slice(0, zone);
  if (v.toLowerCase().startsWith('::ffff:') && isIP(v.slice(7)) === 4) return v.slice(7);
  if (isIP(v) !== 6) return v;
  return `${expandIpv6(v).slice(0, 4).join(':')}::/64`;
}

function expandIpv6(ip: string): string[] {
  let s = ip.toLowerCase();
  // an embedded IPv4 tail (::1.2.3.4) becomes two groups
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const parts = v4[1]!.split('.').map(Number);
    s = s.slice(0, -v4[1]!.length) + `${((parts[0]! << 8) | parts[1]!).toString(16)}:${((parts[2]! << 8) | parts[3]!).toString(16)}`;
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => g.replace(/^0+(?=.)/, ''));
}
