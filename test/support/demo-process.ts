import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './process.js';

// `npm start` (scripts/demo.mjs) as a child process, for tests that drive the demo stack.

export const DEMO = path.join(ROOT, 'scripts/demo.mjs');
/** The line the demo prints once every service answers; group 1 is the gateway's URL. */
export const DEMO_READY = /^sessiongate demo ready: (http:\/\/localhost:\d+) /m;

export interface DemoExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Demo {
  child: ChildProcess;
  output(): string;
  exited: Promise<DemoExit>;
}

export function startDemo(env: NodeJS.ProcessEnv, args: string[] = []): Demo {
  const child = spawn(process.execPath, [DEMO, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<DemoExit>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, output: () => out, exited };
}

/** The demo's environment: free ports, a fresh key prefix, nothing else from this process but PATH and HOME. */
export function demoEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, DEMO_BASE_PORT: '0', SESSIONGATE_REDIS_PREFIX: `sgtest:${randomUUID()}:`, ...extra };
}

/**
 * Resolves with the first match of `re` in the output. The default wait allows for a loaded
 * machine: the demo starts five processes and hashes three passwords before it is ready.
 */
export async function waitForOutput(d: Demo, re: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
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

/** Waits for the ready line; resolves the gateway's URL. */
export async function waitForDemoReady(d: Demo, timeoutMs?: number): Promise<string> {
  const [, base] = await waitForOutput(d, DEMO_READY, timeoutMs);
  return base!;
}

/** The demo users' passwords, as printed in the welcome text. */
export function demoPasswords(output: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of output.matchAll(/^ {2}(alice|bob|dave) +(\S+) +roles /gm)) out[m[1]!] = m[2]!;
  return out;
}

/** The demo's run directory (its logs and secrets), from the welcome text. */
export function runDirOf(output: string): string {
  const m = /^ {2}logs +(\S+)\/logs /m.exec(output);
  if (!m) throw new Error(`no logs line in:\n${output}`);
  return m[1]!;
}

/** Removes the run directory the demo keeps on exit (its logs), if it printed one. */
export function removeRunDir(d: Demo): void {
  const logs = /^ {2}logs +(\S+)\/logs /m.exec(d.output());
  if (logs) rmSync(logs[1]!, { recursive: true, force: true });
}

/** Every process below `pid`, from /proc (Linux): the demo's services, in their own groups. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses
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

/** The command line of `pid`, or '(gone)'. */
export function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '(gone)';
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // a zombie still answers kill(0): it is gone for our purpose
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** SIGKILL to the demo and to the process group of each of `services` (default: its descendants now). */
export function killDemo(d: Demo, services: number[] = descendants(d.child.pid!)): void {
  d.child.kill('SIGKILL');
  for (const p of services) {
    try {
      process.kill(-p, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** Ctrl-C, as a user stops it; killed (with every service) if it does not stop in time. */
export async function stopDemo(d: Demo): Promise<void> {
  if (d.child.exitCode !== null || d.child.signalCode !== null) return;
  const services = descendants(d.child.pid!);
  d.child.kill('SIGINT');
  const stopped = await Promise.race([d.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 10_000))]);
  if (!stopped) killDemo(d, services);
}
