import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

// Debian's Chromium driven by playwright-core (no browser download), for the browser tests.

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
export const NO_CHROMIUM = `no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`;

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export interface FreshPage {
  context: BrowserContext;
  page: Page;
  /** Content Security Policy violations the page reported on its console. */
  cspViolations: string[];
}

/** A fresh browser profile: no cookies, no cache; its context is added to `opened` for closing. */
export async function freshPage(browser: Browser, opened?: BrowserContext[]): Promise<FreshPage> {
  const context = await browser.newContext();
  opened?.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(5_000);
  const cspViolations: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  return { context, page, cspViolations };
}

export async function closeContexts(opened: BrowserContext[]): Promise<void> {
  for (const c of opened.splice(0)) await c.close();
}

/** Fills and submits the auth service's sign-in form. */
export async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.getByLabel('User name', { exact: true }).fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}
