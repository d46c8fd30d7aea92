import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_CHROMIUM, NO_CHROMIUM, signIn } from './support/chromium.js';
import { DemoInBrowser } from './support/demo-browser.js';
import { commandOf, demoEnv, demoPasswords, descendants } from './support/demo-process.js';
import { assertBuilt } from './support/process.js';

// The pages a person sees, in a real browser (Debian's Chromium, as test/browser.test.ts):
// the gateway's 401, 403 and 503 pages and the sign-in form, against the demo stack with its
// own private redis-server (so Redis can be stopped for real) and a product name configured.

const BRAND = 'Acme Orders';

const stack = new DemoInBrowser();
let base = '';
let passwords: Record<string, string> = {};
const freshPage = () => stack.freshPage();

/** The demo's private redis-server(s), below the demo process. */
function redisServers(): number[] {
  return descendants(stack.demo!.child.pid!).filter((p) => /redis-server/.test(commandOf(p)));
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
  await stack.start(demoEnv({ SESSIONGATE_BRAND_NAME: BRAND }));
  base = stack.base;
  passwords = demoPasswords(stack.output());
}, 70_000);

afterEach(() => stack.closePages());

afterAll(async () => {
  // a redis-server left stopped would not stop on SIGTERM
  if (stack.demo?.child.exitCode === null) for (const p of redisServers()) process.kill(p, 'SIGCONT');
  await stack.stop();
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
    const redis = redisServers();
    expect(redis).toHaveLength(1);
    const { context, page } = await freshPage();
    await context.addCookies([{ name: 'sid', value: `${'x'.repeat(43)}.abcd`, url: base, httpOnly: true }]);
    process.kill(redis[0]!, 'SIGSTOP');
    try {
      const res = await page.goto(`${base}/app`);
      expect(res!.status()).toBe(503);
      await expectLooksLikeTheSite(page);
      expect(await page.locator('h1').textContent()).toBe('This page is unavailable for a moment');
      expect(await page.locator('#explanation').textContent()).toMatch(/temporary/);
    } finally {
      process.kill(redis[0]!, 'SIGCONT');
    }
  });
});
