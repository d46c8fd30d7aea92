import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { HAVE_CHROMIUM, NO_CHROMIUM, signIn } from './support/chromium.js';
import { DemoInBrowser } from './support/demo-browser.js';
import { demoEnv, demoPasswords } from './support/demo-process.js';
import { assertBuilt } from './support/process.js';

// A real browser against the demo stack (`npm start`, started as test/demo-stack.test.ts
// does): Debian's Chromium driven by playwright-core, no browser download. It signs in
// through the auth service's form, reads the protected page through the gateway, finds the
// session cookie out of page script's reach, signs out, and meets the 401 page again.

// the page's global in functions evaluated in the browser (the test build has no DOM types)
declare const document: { readonly cookie: string };

const stack = new DemoInBrowser();
let base = '';
let passwords: Record<string, string> = {};
const freshPage = () => stack.freshPage();

async function sidCookie(context: BrowserContext) {
  return (await context.cookies(base)).find((c) => c.name === 'sid');
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
  await stack.start(demoEnv({ REDIS_URL: inject('redisUrl') }));
  base = stack.base;
  passwords = demoPasswords(stack.output());
  expect(Object.keys(passwords)).toContain('alice');
  // what a user reads first
  expect(stack.output()).toContain(`open ${base}/app`);
}, 70_000);

afterEach(() => stack.closePages());

afterAll(() => stack.stop(), 20_000);

describe(`a real browser (Chromium) against the demo stack${HAVE_CHROMIUM ? '' : ` (skipped: ${NO_CHROMIUM})`}`, () => {
  it('signs in through the form, reads /app, cannot read the cookie from script, picks a tenant that stays, signs out, meets the 401 page', async ({ skip }) => {
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

    // 5. pick a tenant: the page keeps it in the session (through the gateway) and shows it
    //    again after the form's redirect and after a reload
    expect(await page.locator('#tenant').textContent()).toBe('(none chosen)');
    await page.getByLabel('Tenant', { exact: true }).selectOption('globex');
    const chosen = page.waitForResponse((r) => new URL(r.url()).pathname === '/app/tenant');
    await page.getByRole('button', { name: 'Switch tenant' }).click();
    expect((await chosen).status()).toBe(303);
    await page.waitForURL(`${base}/app`);
    expect(await page.locator('#tenant').textContent()).toBe('globex');
    await page.reload();
    expect(await page.locator('#tenant').textContent()).toBe('globex');
    expect(await page.getByLabel('Tenant', { exact: true }).inputValue()).toBe('globex');

    // 6. sign out: back on the login form, the cookie cleared
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${base}/auth/login?notice=signed-out`);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Sign in');
    expect(await sidCookie(context)).toBeUndefined();

    // 7. the protected page is a 401 page again
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
    // a new session: whatever tenant another session of alice picked is not here
    expect(await page.locator('#tenant').textContent()).toBe('(none chosen)');
    expect(cspViolations).toEqual([]);
  });
});
