import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { ROOT, assertBuilt } from './support/process.js';

// A real browser against the demo stack (`npm start`, started as test/demo-stack.test.ts
// does): Debian's Chromium driven by playwright-core, no browser download. It signs in
// through the auth service's form, reads the protected page through the gateway, finds the
// session cookie out of page script's reach, signs out, and meets the 401 page again.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const NO_CHROMIUM = `no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`;
const DEMO = path.join(ROOT, 'scripts/demo.mjs');

// the page's global in functions evaluated in the browser (the test build has no DOM types)
declare const document: { readonly cookie: string };

interface Demo {
  child: ChildProcess;
  output(): string;
  exited: Promise<unknown>;
}

let demo: Demo | undefined;
let browser: Browser | undefined;
let base = '';
let passwords: Record<string, string> = {};

function startDemo(env: NodeJS.ProcessEnv): Demo {
  const child = spawn(process.execPath, [DEMO], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return { child, output: () => out, exited };
}

async function waitFor(d: Demo, re: RegExp, timeoutMs = 25_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  let done = false;
  void d.exited.then(() => (done = true));
  for (;;) {
    const m = d.output().match(re);
    if (m) return m;
    if (done) throw new Error(`demo exited before ${re}:\n${d.output()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}:\n${d.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every process below `pid`, from /proc (Linux): the demo's services, in their own groups. */
function descendants(pid: number): number[] {
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
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** Ctrl-C, as a user stops it; killed (with every service) if it does not stop in time. */
async function stopDemo(d: Demo): Promise<void> {
  if (d.child.exitCode !== null || d.child.signalCode !== null) return;
  const services = descendants(d.child.pid!);
  d.child.kill('SIGINT');
  const stopped = await Promise.race([d.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 10_000))]);
  if (stopped) return;
  d.child.kill('SIGKILL');
  for (const p of services) {
    try {
      process.kill(-p, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

const contexts: BrowserContext[] = [];

/** A fresh browser profile: no cookies, no cache. Collects CSP violations of its pages. */
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

async function sidCookie(context: BrowserContext) {
  return (await context.cookies(base)).find((c) => c.name === 'sid');
}

async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.getByLabel('User name', { exact: true }).fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** The gateway's 401 page for a browser: HTML, status 401, a link to the sign-in form. */
async function expect401Page(page: Page, status: number | undefined): Promise<void> {
  expect(status).toBe(401);
  expect(await page.locator('h1').textContent()).toBe('Sign in to continue');
  expect(await page.locator('code').textContent()).toBe('unauthenticated');
  expect(await page.getByRole('link', { name: 'Sign in' }).getAttribute('href')).toBe('/auth/login?next=%2Fapp');
}

beforeAll(async () => {
  if (!HAVE_CHROMIUM) {
    // skipped (never failed) only for want of the browser; CI installs it (.ci/run)
    console.warn(`test/browser.test.ts skipped: ${NO_CHROMIUM}`);
    return;
  }
  assertBuilt();
  demo = startDemo({
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DEMO_BASE_PORT: '0',
    REDIS_URL: inject('redisUrl'),
    SESSIONGATE_REDIS_PREFIX: `sgtest:${randomUUID()}:`,
  });
  const [[, url], launched] = await Promise.all([
    waitFor(demo, /^sessiongate demo ready: (http:\/\/localhost:\d+) /m),
    chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    }),
  ]);
  browser = launched;
  base = url!;
  for (const m of demo.output().matchAll(/^ {2}(alice|bob|dave) +(\S+) +roles /gm)) passwords[m[1]!] = m[2]!;
  expect(Object.keys(passwords)).toContain('alice');
  // what a user reads first
  expect(demo.output()).toContain(`open ${base}/app`);
}, 30_000);

afterEach(async () => {
  for (const c of contexts.splice(0)) await c.close();
});

afterAll(async () => {
  await browser?.close();
  if (!demo) return;
  await stopDemo(demo);
  const logs = /^ {2}logs +(\S+)\/logs /m.exec(demo.output());
  if (logs) rmSync(logs[1]!, { recursive: true, force: true });
}, 20_000);

describe(`a real browser (Chromium) against the demo stack${HAVE_CHROMIUM ? '' : ` (skipped: ${NO_CHROMIUM})`}`, () => {
  it('signs in through the form, reads /app, cannot read the cookie from script, signs out, meets the 401 page', async ({ skip }) => {
    skip(!HAVE_CHROMIUM, NO_CHROMIUM);
    const { context, page, cspViolations } = await freshPage();

    // 1. the protected page without a session: the gateway's 401 page, linking to the form
    const first = await page.goto(`${base}/app`);
    expect(first!.headers()['content-type']).toMatch(/^text\/html/);
    await expect401Page(page, first?.status());

    // 2. follow the link to the login form (served by the auth service, no script)
    const formResponse = page.waitForResponse((r) => new URL(r.url()).pathname === '/auth/login');
    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.waitForURL(`${base}/auth/login?next=%2Fapp`);
    const form = await formResponse;
    expect(form.status()).toBe(200);
    expect(form.headers()['content-security-policy']).toMatch(/^default-src 'none';.*form-action 'self'/);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Sign in');

    // a cookie page script may read, so reading document.cookie is shown to work at all
    await context.addCookies([{ name: 'theme', value: 'dark', url: base }]);

    // 3. sign in: the 303 lands on /app, which names alice
    await signIn(page, 'alice', passwords.alice!);
    await page.waitForURL(`${base}/app`);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Signed in as alice');
    expect(await page.locator('#roles').innerText()).toBe('user');

    // 4. the session cookie is there, HttpOnly, and page script cannot see it
    const sid = await sidCookie(context);
    expect(sid).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' });
    expect(sid!.value).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{4}$/);
    const visible = await page.evaluate(() => document.cookie);
    expect(visible).toBe('theme=dark');
    expect(visible).not.toContain('sid');
    expect(visible).not.toContain(sid!.value);
    // the page's own script (/app/page.js, allowed by its CSP) saw the same
    expect(await page.locator('#cookie').textContent()).toBe('"theme=dark"');

    // 5. sign out: back on the login form, the cookie cleared
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${base}/auth/login?notice=signed-out`);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Sign in');
    expect(await sidCookie(context)).toBeUndefined();

    // 6. the protected page is a 401 page again
    await expect401Page(page, (await page.goto(`${base}/app`))?.status());

    // and the old token is dead on the server, not just forgotten by the browser
    await context.addCookies([{ name: 'sid', value: sid!.value, url: base, httpOnly: true, sameSite: 'Lax' }]);
    let status: number | undefined;
    const deadline = Date.now() + 1_500; // every gateway stops honouring it within 1 s
    do status = (await page.goto(`${base}/app`))?.status();
    while (status !== 401 && Date.now() < deadline);
    await expect401Page(page, status);

    expect(cspViolations).toEqual([]);
  });

  it('shows the error on the form after a wrong password, sets no cookie, and signs in after it', async ({ skip }) => {
    skip(!HAVE_CHROMIUM, NO_CHROMIUM);
    const { context, page, cspViolations } = await freshPage();
    await page.goto(`${base}/auth/login`);
    await signIn(page, 'alice', `${passwords.alice}-wrong`);
    await page.waitForURL(`${base}/auth/login?error=invalid`);
    expect(await page.getByRole('alert').textContent()).toBe('The user name or password is not correct.');
    expect(await sidCookie(context)).toBeUndefined();

    // the form still works (and a success clears alice's failure count)
    await signIn(page, 'alice', passwords.alice!);
    await page.waitForURL(`${base}/app`);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Signed in as alice');
    expect(cspViolations).toEqual([]);
  });
});
