import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { HAVE_CHROMIUM, NO_CHROMIUM } from './support/chromium.js';
import { DemoInBrowser } from './support/demo-browser.js';
import { demoEnv } from './support/demo-process.js';
import { assertBuilt } from './support/process.js';

// A real browser (Debian's Chromium through playwright-core) signing in with OpenID Connect
// on the demo stack: /app → the 401 page → the sign-in page → "Sign in with Demo IdP" → the
// provider's own form → back on /app as the provider's user with the mapped roles; then
// signing out there goes on to the provider's sign-out and back to the sign-in page.

const stack = new DemoInBrowser();
let base = '';
let idpPassword = '';

beforeAll(async () => {
  if (!HAVE_CHROMIUM) {
    console.warn(`test/browser-oidc.test.ts skipped: ${NO_CHROMIUM}`);
    return;
  }
  assertBuilt();
  await stack.start(demoEnv({ REDIS_URL: inject('redisUrl') }));
  base = stack.base;
  idpPassword = /^ {2}olivia +(\S+) +mapped roles /m.exec(stack.output())?.[1] ?? '';
  expect(idpPassword).not.toBe('');
}, 70_000);

afterEach(() => stack.closePages());

afterAll(() => stack.stop(), 20_000);

describe(`a real browser (Chromium) signing in with OpenID Connect${HAVE_CHROMIUM ? '' : ` (skipped: ${NO_CHROMIUM})`}`, () => {
  it('/app → 401 page → Sign in with Demo IdP → the IdP form → back on /app with the mapped roles → sign out at both', async ({ skip }) => {
    skip(!HAVE_CHROMIUM, NO_CHROMIUM);
    const { context, page, cspViolations } = await stack.freshPage();

    // 1. the protected page: the gateway's 401 page, then the sign-in page it links to
    expect((await page.goto(`${base}/app`))?.status()).toBe(401);
    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.waitForURL(`${base}/auth/login?next=%2Fapp`);

    // 2. the provider's button, then the provider's own form (another origin)
    await page.getByRole('link', { name: 'Sign in with Demo IdP' }).click();
    await page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/interaction\//);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Demo IdP sign-in');
    await page.getByLabel('IdP user name').fill('olivia');
    await page.getByLabel('IdP password').fill(idpPassword);
    await page.getByRole('button', { name: 'Continue' }).click();

    // 3. back on /app as the provider's user, with the roles the rules gave
    await page.waitForURL(`${base}/app`);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Signed in as oidc:demo:demo-olivia');
    expect((await page.locator('#roles').innerText()).split('\n')).toEqual(['user', 'admin']);
    const cookies = await context.cookies(base);
    expect(cookies.map((c) => c.name)).toEqual(['sid']);
    expect(cookies[0]).toMatchObject({ httpOnly: true, sameSite: 'Lax' });

    // 4. sign out: our session ends, the browser goes on to the provider's sign-out and back
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/session\/end/);
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    await page.waitForURL(`${base}/auth/login`);
    expect(await page.getByRole('link', { name: 'Sign in with Demo IdP' }).count()).toBe(1);
    expect(await context.cookies(base)).toEqual([]);
    expect((await page.goto(`${base}/app`))?.status()).toBe(401);
    expect(cspViolations).toEqual([]);
  });
});
