import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, assertBuilt } from './support/process.js';

// The pages a person sees, in a real browser (Debian's Chromium, as test/browser.test.ts):
// the gateway's 401, 403 and 503 pages and the sign-in form, against the demo stack with its
// own private redis-server (so Redis can be stopped for real) and a product name configured.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const NO_CHROMIUM = `no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`;
const DEMO = path.join(ROOT, 'scripts/demo.mjs');
const BRAND = 'Acme Orders';

let demo: { child: ChildProcess; output(): string; exited: Promise<unknown> } | undefined;
let browser: Browser | undefined;
let base = '';
const passwords: Record<string, string> = {};
const contexts: BrowserContext[] = [];

async function waitFor(re: RegExp, timeoutMs = 25_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = demo!.output().match(re);
    if (m) return m;
    if (demo!.child.exitCode !== null) throw new Error(`demo exited before ${re}:\n${demo!.output()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}:\n${demo!.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every process below `pid`, with its command line, from /proc (Linux). */
function descendants(pid: number): { pid: number; cmd: string }[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited meanwhile
    }
  }
  const out: { pid: number; cmd: string }[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      let cmd = '';
      try {
        cmd = readFileSync(`/proc/${c}/cmdline`, 'utf8').split('\0').join(' ');
      } catch {
        // gone
      }
      out.push({ pid: c, cmd });
      walk(c);
    }
  };
  walk(pid);
  return out;
}

async function freshPage(): Promise<{ context: BrowserContext; page: Page; cspViolations: string[] }> {
  const context = await browser!.newContext();
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(5_000);
  const cspViolations: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  return { context, page, cspViolations };
}

async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.getByLabel('User name', { exact: true }).fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

async function expectLooksLikeTheSite(page: Page): Promise<void> {
  expect(await page.locator('meta[name="viewport"]').getAttribute('content')).toBe('width=device-width, initial-scale=1');
  expect(await page.locator('header.brand').textContent()).toBe(BRAND);
  expect(await page.title()).toMatch(new RegExp(` · ${BRAND}$`));
  // styled: not the browser's default serif text
  expect(await page.evaluate('getComputedStyle(document.body).fontFamily')).toMatch(/system-ui/);
}

beforeAll(async () => {
  if (!HAVE_CHROMIUM) {
    console.warn(`test/browser-pages.test.ts skipped: ${NO_CHROMIUM}`);
    return;
  }
  assertBuilt();
  // no REDIS_URL: the demo's own redis-server, which this test may stop
  const child = spawn(process.execPath, [DEMO], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DEMO_BASE_PORT: '0', SESSIONGATE_REDIS_PREFIX: `sgtest:${randomUUID()}:`, SESSIONGATE_BRAND_NAME: BRAND },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  demo = { child, output: () => out, exited: new Promise((r) => child.on('exit', r)) };
  const [[, url], launched] = await Promise.all([
    waitFor(/^sessiongate demo ready: (http:\/\/localhost:\d+) /m),
    chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'] }),
  ]);
  browser = launched;
  base = url!;
  for (const m of out.matchAll(/^ {2}(alice|bob|dave) +(\S+) +roles /gm)) passwords[m[1]!] = m[2]!;
}, 40_000);

afterEach(async () => {
  for (const c of contexts.splice(0)) await c.close();
});

afterAll(async () => {
  await browser?.close();
  if (!demo || demo.child.exitCode !== null) return;
  const pids = descendants(demo.child.pid!);
  for (const p of pids) if (/redis-server/.test(p.cmd)) process.kill(p.pid, 'SIGCONT');
  demo.child.kill('SIGINT');
  const stopped = await Promise.race([demo.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 10_000))]);
  if (!stopped) {
    for (const p of [demo.child.pid!, ...pids.map((x) => x.pid)]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  const logs = /^ {2}logs +(\S+)\/logs /m.exec(demo.output());
  if (logs) rmSync(logs[1]!, { recursive: true, force: true });
}, 20_000);

describe(`the pages people see (Chromium)${HAVE_CHROMIUM ? '' : ` (skipped: ${NO_CHROMIUM})`}`, () => {
  it('401 links to sign-in with next; the form keeps the name after a wrong password; 403 names the user with three ways out', async ({ skip }) => {
    skip(!HAVE_CHROMIUM, NO_CHROMIUM);
    const { context, page, cspViolations } = await freshPage();

    const first = await page.goto(`${base}/app`);
    expect(first!.status()).toBe(401);
    await expectLooksLikeTheSite(page);
    expect(await page.locator('h1').textContent()).toBe('Sign in to continue');
    expect(await page.locator('code').textContent()).toBe('unauthenticated');
    expect(await page.getByRole('link', { name: 'Sign in' }).getAttribute('href')).toBe('/auth/login?next=%2Fapp');

    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.waitForURL(`${base}/auth/login?next=%2Fapp`);
    await expectLooksLikeTheSite(page);

    // a wrong password: the error, and the name still there
    await signIn(page, 'alice', 'not-her-password');
    await page.waitForURL(`${base}/auth/login?error=invalid&next=%2Fapp`);
    expect(await page.getByRole('alert').textContent()).toBe('The user name or password is not correct.');
    expect(await page.getByLabel('User name', { exact: true }).inputValue()).toBe('alice');
    expect(await page.getByLabel('Password', { exact: true }).inputValue()).toBe('');

    await signIn(page, 'alice', passwords.alice!);
    await page.waitForURL(`${base}/app`);

    // alice is no admin: the 403 page says who she is and how to get on
    const forbidden = await page.goto(`${base}/admin`);
    expect(forbidden!.status()).toBe(403);
    await expectLooksLikeTheSite(page);
    expect(await page.locator('#user').textContent()).toBe('You are signed in as alice.');
    expect(await page.getByRole('button', { name: 'Sign out' }).count()).toBe(1);
    expect(await page.getByRole('link', { name: 'Sign in as someone else' }).getAttribute('href')).toBe('/auth/login?next=%2Fadmin');
    expect(await page.getByRole('link', { name: 'Back' }).count()).toBe(1);

    // sign out: the form says so and still leads back to /admin, where bob may go
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${base}/auth/login?notice=signed-out&next=%2Fadmin`);
    expect(await page.getByRole('status').textContent()).toBe('You have signed out.');
    expect((await context.cookies(base)).find((c) => c.name === 'sid')).toBeUndefined();
    await signIn(page, 'bob', passwords.bob!);
    await page.waitForURL(`${base}/admin`);
    expect(await page.content()).toContain('bob');
    expect(cspViolations).toEqual([]);
  });

  it('says how long to wait when sign-in is throttled', async ({ skip }) => {
    skip(!HAVE_CHROMIUM, NO_CHROMIUM);
    const { page } = await freshPage();
    await page.goto(`${base}/auth/login`);
    for (let i = 0; i < 5; i++) {
      await signIn(page, 'dave', `wrong-${i}`);
      await page.waitForURL(/error=invalid/);
    }
    await signIn(page, 'dave', passwords.dave!);
    await page.waitForURL(/error=throttled/);
    expect(await page.getByRole('alert').textContent()).toMatch(/^Too many failed sign-ins\. Try again in 1[45] minutes\.$/);
    expect(await page.getByLabel('User name', { exact: true }).inputValue()).toBe('dave');
  });

  it('503 says it is temporary while Redis is stopped', async ({ skip }) => {
    skip(!HAVE_CHROMIUM, NO_CHROMIUM);
    const redis = descendants(demo!.child.pid!).filter((p) => /redis-server/.test(p.cmd));
    expect(redis).toHaveLength(1);
    const { context, page } = await freshPage();
    await context.addCookies([{ name: 'sid', value: `${'x'.repeat(43)}.abcd`, url: base, httpOnly: true }]);
    process.kill(redis[0]!.pid, 'SIGSTOP');
    try {
      const res = await page.goto(`${base}/app`);
      expect(res!.status()).toBe(503);
      await expectLooksLikeTheSite(page);
      expect(await page.locator('h1').textContent()).toBe('This page is unavailable for a moment');
      expect(await page.locator('#explanation').textContent()).toMatch(/temporary/);
    } finally {
      process.kill(redis[0]!.pid, 'SIGCONT');
    }
  });
});
