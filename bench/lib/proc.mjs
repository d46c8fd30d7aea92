// Small helpers (output, statistics, CPU and memory readings) and the child processes:
// every one is tracked and ended on exit, Ctrl-C included.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { require, flags } from './config.mjs';

// ---------------------------------------------------------------------------------------
// small helpers

export const log = (msg) => process.stderr.write(`${msg}\n`);
export const out = [];
export const say = (line = '') => {
  out.push(line);
  process.stdout.write(`${line}\n`);
};
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

export function versionOf(pkg) {
  try {
    return JSON.parse(fs.readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')).version;
  } catch {
    return '?';
  }
}

export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    // never anything that could be someone's real Redis
    if (port !== 6379) return port;
  }
}

export function median(xs) {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** CPU seconds a process has used (user + system), from /proc; null when unreadable. */
export function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields 14 and 15 of stat(5), counted after the ")" that ends the command name
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

/** CPU seconds of a process and its children (a gateway's workers), or null. */
export function treeCpuSeconds(pid) {
  const own = cpuSeconds(pid);
  if (own === null) return null;
  let kids = [];
  try {
    kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // no children list: the process alone
  }
  return kids.reduce((sum, k) => sum + (cpuSeconds(k) ?? 0), own);
}

/** Busy and total jiffies of each CPU, from /proc/stat. */
export function coreTimes() {
  const cores = {};
  try {
    for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const v = m[2].trim().split(/\s+/).map(Number);
      const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
      cores[m[1]] = { busy: total - v[3] - v[4], total };
    }
  } catch {
    // not Linux: no per-core figures
  }
  return cores;
}

export function coreBusyPct(before, after, core) {
  const a = before[core];
  const b = after[core];
  if (!a || !b || b.total === a.total) return NaN;
  return ((b.busy - a.busy) / (b.total - a.total)) * 100;
}

export function procStatusKb(pid, field) {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

// ---------------------------------------------------------------------------------------
// child processes: every one is tracked and ended on exit, Ctrl-C included

export const children = new Set();
export const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessiongate-bench-'));
let keepWorkDir = process.env.BENCH_KEEP_LOGS === '1';
/** Keeps the work folder (the logs) when the bench ends: something went wrong. */
export function keepLogs() {
  keepWorkDir = true;
}

export const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
export const tasksetPath = which('taskset');
export const PIN = Boolean(tasksetPath) && cores >= 2 && process.platform === 'linux';
export const SERVER_CORE = 0;
export const DRIVER_CORE = 1;

// the cores this process may use before the bench pins itself to DRIVER_CORE: a child pinned
// to none would inherit that one core
const allCores = PIN ? (/^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? `0-${cores - 1}`) : null;

/** `core` null: every core (a multi-process gateway), not the one the bench itself runs on. */
export function pinned(core, cmd, args) {
  return PIN ? ['taskset', ['-c', core === null ? allCores : String(core), cmd, ...args]] : [cmd, args];
}

/** Spawns a child, keeps its output in a log file, resolves when `ready(line)` is true. */
export function startChild(name, core, cmd, args, { env = {}, ready, timeoutMs = 20_000 } = {}) {
  const [file, argv] = pinned(core, cmd, args);
  const logFile = path.join(workDir, `${name}.log`);
  const logStream = fs.createWriteStream(logFile);
  const child = spawn(file, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.name = name;
  child.logFile = logFile;
  child.stderr.pipe(logStream);
  let lines = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not start within ${timeoutMs} ms (log: ${logFile})`)), timeoutMs);
    let settled = false;
    const fail = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      keepWorkDir = true;
      reject(err);
    };
    child.on('error', fail);
    child.on('exit', (code, signal) => {
      children.delete(child);
      if (!settled) fail(new Error(`${name} exited (${code ?? signal}) before it was ready (log: ${logFile})`));
      else if (!shuttingDown) log(`!! ${name} exited unexpectedly (${code ?? signal}); log: ${logFile}`);
    });
    child.stdout.on('data', (chunk) => {
      logStream.write(chunk);
      if (settled) return;
      lines += chunk.toString();
      let i;
      while ((i = lines.indexOf('\n')) >= 0) {
        const line = lines.slice(0, i);
        lines = lines.slice(i + 1);
        const value = ready?.(line);
        if (value !== undefined && value !== false) {
          settled = true;
          clearTimeout(timer);
          resolve({ child, value });
          return;
        }
      }
    });
    if (!ready) {
      settled = true;
      clearTimeout(timer);
      resolve({ child, value: null });
    }
  });
}

export function jsonPort(line) {
  try {
    const v = JSON.parse(line);
    return typeof v.port === 'number' ? v.port : undefined;
  } catch {
    return undefined;
  }
}

export let shuttingDown = false;
export async function stopChildren() {
  shuttingDown = true;
  const alive = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  const exited = alive.map((c) => new Promise((r) => c.once('exit', r)));
  for (const c of alive) {
    try {
      process.kill(c.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const grace = flags.profile ? 15_000 : 5_000;
  await Promise.race([Promise.all(exited), sleep(grace)]);
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

process.on('exit', () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  if (!keepWorkDir) fs.rmSync(workDir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    log(`\n${sig}: stopping every child process`);
    void stopChildren().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------
// load generation: autocannon in this process (pinned to the driver core), or wrk
