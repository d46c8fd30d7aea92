import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './process.js';

// `npm start` (scripts/demo.mjs) as a child process, for tests that drive the demo stack.

export const DEMO = path.join(ROOT, 'scripts/demo.mjs');

export interface Demo {
  child: ChildProcess;
  output(): string;
  exited: Promise<unknown>;
}

export function startDemo(env: NodeJS.ProcessEnv): Demo {
  const child = spawn(process.execPath, [DEMO], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return { child, output: () => out, exited };
}

export async function waitForOutput(d: Demo, re: RegExp, timeoutMs = 25_000): Promise<RegExpMatchArray> {
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
export function descendants(pid: number): number[] {
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
export async function stopDemo(d: Demo): Promise<void> {
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
