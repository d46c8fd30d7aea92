import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './process.js';

/** Whether python3 can run here (the WSGI upstream needs nothing else). */
export const hasPython = !spawnSync('python3', ['--version']).error;

export interface WsgiUpstream {
  readonly url: string;
  readonly child: ChildProcess;
  close(): Promise<void>;
}

/**
 * Python's wsgiref server echoing the WSGI environ as JSON (`test/support/wsgi-echo.py`):
 * headers arrive as `HTTP_*` variables, with "-" and "_" both folded to "_", as in every
 * CGI-style upstream.
 */
export async function startWsgiUpstream(): Promise<WsgiUpstream> {
  const child = spawn('python3', ['-u', path.join(ROOT, 'test/support/wsgi-echo.py')], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: '0' },
    stdio: 'pipe',
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 10_000;
  let m: RegExpExecArray | null;
  while (!(m = /listening on (http:\/\/\S+)/.exec(out))) {
    if (child.exitCode !== null) throw new Error(`wsgi-echo.py exited (${child.exitCode}):\n${out}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`wsgi-echo.py did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    url: m[1]!,
    child,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
