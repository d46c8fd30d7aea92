import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { defaultParams, hashPassword } from '../src/users/password.js';
import { startTestAuth, type TestAuth } from '../../test/support/auth-service.js';

// A name that is no user must cost the scrypt work some user costs, in the same mix as the
// users' own costs, so timing cannot tell which names exist. Work is observed, not time: the
// service counts each password check by the scrypt parameters it ran with.

const tmp = mkdtempSync(path.join(tmpdir(), 'sg-unknown-cost-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const COMMON = 'ln=14,r=8,p=1';
const RARE = 'ln=15,r=8,p=1';

describe('unknown user names cost what users cost', () => {
  let a: TestAuth;
  let b: TestAuth;
  let file: string;

  beforeAll(async () => {
    // three users at the common cost, one (an older or newer hash) at another
    const lines = ['version: 1', 'users:'];
    for (const [name, cost] of [['ann', 14], ['ben', 14], ['cai', 14], ['rare', 15]] as const) {
      lines.push(`  ${name}:`, '    roles: [user]', `    password: ${await hashPassword(`${name}-password`, defaultParams(cost))}`);
    }
    file = path.join(tmp, 'users.yaml');
    writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
    const env = { LOGIN_MAX_FAILURES_PER_IP: '10000' };
    a = await startTestAuth({ redisUrl: inject('redisUrl'), usersFile: file, env });
    // a second instance on the same file, as behind a load balancer
    b = await startTestAuth({ redisUrl: inject('redisUrl'), usersFile: file, env });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  /** The cost of the one password check a failed login ran, read from the metrics. */
  async function costOf(t: TestAuth, username: string): Promise<string> {
    const before = await checks(t);
    const res = await t.login(username, 'not-the-password');
    expect(res.statusCode).toBe(401);
    const after = await checks(t);
    const ran = Object.keys(after).filter((k) => after[k] !== (before[k] ?? 0));
    expect(ran).toHaveLength(1);
    expect(after[ran[0]!]! - (before[ran[0]!] ?? 0)).toBe(1);
    return ran[0]!;
  }

  async function checks(t: TestAuth): Promise<Record<string, number>> {
    const metric = (await t.svc.metrics.registry.getSingleMetric('sessiongate_auth_password_checks_total')!.get()).values;
    return Object.fromEntries(metric.map((v) => [String(v.labels.cost), v.value]));
  }

  it('a user is checked at the cost of their own hash', async () => {
    expect(await costOf(a, 'ann')).toBe(COMMON);
    expect(await costOf(a, 'rare')).toBe(RARE);
  });

  it('unknown names get both costs, each name always the same one, on every instance', { timeout: 90_000 }, async () => {
    const names = Array.from({ length: 40 }, (_, i) => `nobody-${i}`);
    const costs = new Map<string, string>();
    for (const n of names) costs.set(n, await costOf(a, n));
    const rare = [...costs.values()].filter((c) => c === RARE).length;
    // one user in four has the rare cost: so do about a quarter of unknown names (never none,
    // which is what a single cost for every unknown name gives)
    expect(rare).toBeGreaterThan(0);
    expect(rare).toBeLessThan(names.length);
    expect([...costs.values()].every((c) => c === COMMON || c === RARE)).toBe(true);
    for (const n of names.slice(0, 12)) {
      expect(await costOf(a, n)).toBe(costs.get(n));
      expect(await costOf(b, n)).toBe(costs.get(n));
    }
  });
});
