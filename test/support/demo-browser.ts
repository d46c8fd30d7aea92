import type { Browser, BrowserContext } from 'playwright-core';
import { closeContexts, freshPage, launchChromium, type FreshPage } from './chromium.js';
import { removeRunDir, startDemo, stopDemo, waitForDemoReady, type Demo } from './demo-process.js';

// The demo stack and a Chromium beside it, for the browser tests: started together, every
// page in a fresh profile, stopped together (the demo's run directory removed).

export class DemoInBrowser {
  demo: Demo | undefined;
  browser: Browser | undefined;
  /** The gateway's URL, once started. */
  base = '';
  private readonly contexts: BrowserContext[] = [];

  async start(env: NodeJS.ProcessEnv): Promise<void> {
    this.demo = startDemo(env);
    [this.base, this.browser] = await Promise.all([waitForDemoReady(this.demo), launchChromium()]);
  }

  output(): string {
    return this.demo?.output() ?? '';
  }

  /** A fresh browser profile: no cookies, no cache. Collects CSP violations of its pages. */
  freshPage(): Promise<FreshPage> {
    return freshPage(this.browser!, this.contexts);
  }

  closePages(): Promise<void> {
    return closeContexts(this.contexts);
  }

  async stop(): Promise<void> {
    await this.browser?.close();
    if (!this.demo) return;
    await stopDemo(this.demo);
    removeRunDir(this.demo);
  }
}
