import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './process.js';
import { waitForPort } from './redis-server.js';

// What the nginx and Caddy harnesses share: configs rendered from a template file, and a
// proxy process run in the foreground with its output kept.

/** Where the templates of the shipped forward-auth configs live. */
export const FORWARD_AUTH_TEMPLATES = path.join(ROOT, 'test/fixtures/forward-auth');
/** Where the shipped forward-auth configs live. */
export const FORWARD_AUTH_DEPLOY = path.join(ROOT, 'deploy/forward-auth');

// a placeholder is `@@NAME@@`: nothing in an nginx, Caddy or YAML file looks like it
const PLACEHOLDER = /@@([A-Z_]+)@@/g;

/**
 * The template with every `@@NAME@@` replaced by `values[NAME]`. Throws when the template
 * names a value that is not given, or a value is given that the template never uses: a
 * config that changed shape must fail here, not run half-substituted.
 */
export function renderTemplate(template: string, values: Readonly<Record<string, string>>): string {
  const used = new Set<string>();
  const out = template.replace(PLACEHOLDER, (_m, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`template placeholder @@${name}@@ has no value`);
    used.add(name);
    return v;
  });
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (unused.length) throw new Error(`template has no placeholder for ${unused.join(', ')}`);
  return out;
}

/** A template file of test/fixtures/forward-auth, rendered. */
export function renderTemplateFile(name: string, values: Readonly<Record<string, string>>): string {
  return renderTemplate(readFileSync(path.join(FORWARD_AUTH_TEMPLATES, name), 'utf8'), values);
}

/** A proxy process on 127.0.0.1:port. */
export interface EdgeProxy {
  readonly port: number;
  readonly url: string;
  /** Everything the process printed so far. */
  output(): string;
  /** Stops the process (SIGTERM, then SIGKILL after a grace period) and removes its files. */
  stop(): Promise<void>;
}

/**
 * Spawns `bin args` in the foreground and resolves once `port` accepts connections.
 * `cleanup` runs after the process has exited (on stop() or a failed start).
 */
export async function startEdgeProcess(
  name: string,
  bin: string,
  args: string[],
  o: { port: number; env?: NodeJS.ProcessEnv; cleanup: () => void },
): Promise<EdgeProxy> {
  const child: ChildProcess = spawn(bin, args, { env: o.env ?? { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    }
    o.cleanup();
  };
  try {
    await Promise.race([
      waitForPort(o.port, '127.0.0.1', 15_000),
      exited.then(() => {
        throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before listening:\n${out.slice(-3000)}`);
      }),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { port: o.port, url: `http://127.0.0.1:${o.port}`, output: () => out, stop };
}
