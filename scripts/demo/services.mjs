// The demo's child processes: each service in its own process group, stopped in reverse
// start order (the gateway first) on Ctrl-C or when one of them dies; readiness probes;
// one-shot `sessiongate` CLI runs.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, rmSync } from 'node:fs';
import path from 'node:path';
import { BIN, LOG_TAIL_LINES, NODE, READY_TIMEOUT_MS, ROOT, STOP_GRACE_MS } from './config.mjs';

/** Every service started, in start order; stopped in reverse, the gateway first. */
const services = [];
/** One-shot CLI commands running now: stopped too if the demo stops meanwhile. */
const oneShots = new Set();
let stopping = false;
let firstSignalAt = 0;

/** Stopped before every other service: the gateway, so no request meets a stopped one. */
export const STOP_FIRST = true;

export function service(name, command, args, { env, logDir, echo }, stopFirst = false) {
  // Ctrl-C while starting: start nothing more
  if (stopping) throw new Error(`not starting ${name}: stopping`);
  // own process group: the terminal's Ctrl-C reaches only this script, which then stops
  // the services in order; the whole group is signalled, so nothing a service forks lingers
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const log = createWriteStream(path.join(logDir, `${name}.log`), { flags: 'a' });
  const tail = [];
  const s = { name, child, tail, exited: false, exit: null, stopFirst };
  s.done = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      s.exited = true;
      s.exit = { code, signal };
      resolve(s.exit);
    });
    // spawn failed (no such command): there will be no 'exit'
    child.once('error', (err) => {
      if (child.pid !== undefined) return;
      s.exited = true;
      s.exit = { code: null, signal: null, error: new Error(`could not start ${command}: ${err.message}`) };
      resolve(s.exit);
    });
  });
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream.on('data', (chunk) => {
      log.write(chunk);
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        tail.push(line);
        if (tail.length > LOG_TAIL_LINES) tail.shift();
        if (echo) process.stdout.write(`${name.padEnd(16)}| ${line}\n`);
      }
    });
  }
  s.closeLog = () => new Promise((resolve) => log.end(resolve));
  services.push(s);
  void s.done.then((exit) => {
    if (!stopping) void unexpectedExit(s, exit);
  });
  return s;
}

export function signalGroup(s, signal) {
  if (s.exited || s.child.pid === undefined) return;
  try {
    process.kill(-s.child.pid, signal);
  } catch {
    try {
      s.child.kill(signal);
    } catch {
      // already gone
    }
  }
}

async function stopService(s) {
  if (s.exited) return;
  signalGroup(s, 'SIGTERM');
  const timer = setTimeout(() => signalGroup(s, 'SIGKILL'), STOP_GRACE_MS);
  await s.done;
  clearTimeout(timer);
  // a service exits before anything it forked: take the rest of its group with it
  try {
    process.kill(-s.child.pid, 'SIGKILL');
  } catch {
    // the group is empty
  }
}

// removed on exit: keys, users, generated routes, the private Redis's directory
let cleanupDir = null;
// kept on exit, for a look at what happened
let logDirForExit = null;

/** What stopAll removes (`cleanup`) and names as kept (`logs`). */
export function onExitFiles({ cleanup, logs }) {
  cleanupDir = cleanup;
  logDirForExit = logs;
}

export async function stopAll(code, why) {
  if (stopping) return;
  stopping = true;
  if (why) process.stdout.write(`\n${why}\n`);
  // a `keys generate` or `users add` still running
  await Promise.all(
    [...oneShots].map((c) => {
      const closed = new Promise((resolve) => c.once('close', resolve));
      c.kill('SIGTERM');
      return closed;
    }),
  );
  const order = [...services].reverse();
  for (const s of [...order.filter((x) => x.stopFirst), ...order.filter((x) => !x.stopFirst)]) {
    if (!s.exited) process.stdout.write(`  stopping ${s.name}\n`);
    await stopService(s);
  }
  await Promise.all(services.map((s) => s.closeLog()));
  if (cleanupDir) rmSync(cleanupDir, { recursive: true, force: true });
  process.stdout.write(`sessiongate demo stopped${logDirForExit ? `; logs kept in ${logDirForExit}` : ''}\n`);
  process.exit(code);
}

async function unexpectedExit(s, exit) {
  const how = exit.error ? exit.error.message : exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
  const lines = s.tail.length ? s.tail.map((l) => `    ${l}`).join('\n') : '    (no output)';
  process.stderr.write(`\nsessiongate demo: ${s.name} stopped unexpectedly (${how}). Its last lines:\n${lines}\n`);
  await stopAll(1, 'stopping the rest of the demo stack');
}

function onSignal(signal) {
  if (stopping) {
    // a second Ctrl-C (not the echo of the first one through npm) forces it
    if (Date.now() - firstSignalAt > 500) {
      process.stdout.write('forced: killing every service\n');
      for (const s of services) signalGroup(s, 'SIGKILL');
    }
    return;
  }
  firstSignalAt = Date.now();
  void stopAll(0, `${signal}: stopping the demo stack`);
}

export function installSignalHandlers() {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => onSignal(sig));
  // last resort if this script itself fails: leave no service behind
  process.on('exit', () => {
    for (const s of services) signalGroup(s, 'SIGKILL');
    for (const c of oneShots) c.kill('SIGKILL');
  });
  process.on('uncaughtException', (err) => {
    process.stderr.write(`sessiongate demo: ${err.stack ?? err}\n`);
    void stopAll(1);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until `probe` resolves true, failing early if the service exits. */
export async function waitReady(s, what, probe) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (s.exited) throw Object.assign(new Error(`${s.name} exited while starting`), { service: s });
    if (await probe()) return;
    await sleep(50);
  }
  throw Object.assign(new Error(`${s.name} was not ready after ${READY_TIMEOUT_MS / 1000} s (${what})`), { service: s });
}

export const httpOk = (url) => () =>
  fetch(url, { signal: AbortSignal.timeout(1000) }).then(
    (r) => r.ok,
    () => false,
  );

export function startupFailure(err, s) {
  // a service that died has already been reported (unexpectedExit)
  if (stopping) return;
  const tail = s?.tail.length ? `\n  ${s.name}'s last lines:\n${s.tail.map((l) => `    ${l}`).join('\n')}` : '';
  process.stderr.write(`\nsessiongate demo: ${err.message}${tail}\n`);
  return stopAll(1);
}

/** Runs `sessiongate ARGS`; resolves its stdout, rejects with its stderr. */
export function runCli(args, { env, input = '' }) {
  return new Promise((resolve, reject) => {
    if (stopping) return reject(new Error('stopping'));
    const child = spawn(NODE, [BIN, ...args], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    oneShots.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', (err) => reject(new Error(`sessiongate ${args.slice(0, 2).join(' ')}: ${err.message}`)));
    child.once('close', (code, signal) => {
      oneShots.delete(child);
      if (code === 0) resolve(stdout);
      else reject(new Error(`sessiongate ${args.slice(0, 3).join(' ')} failed (${signal ?? `exit ${code}`}): ${(stderr || stdout).trim()}`));
    });
    child.stdin.end(input);
  });
}

export function hasCommand(cmd) {
  const r = spawnSync(cmd, ['--version'], { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

