#!/usr/bin/env node
// `npm start`: the whole demo stack from the repository's routes.yaml, in one terminal.
// Redis (REDIS_URL, or a private redis-server), the auth service, the example upstreams
// and the gateway, each a child process of this script in its own process group; Ctrl-C
// stops them all, in reverse order, and removes the keys and users it generated.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'gateway/bin/sessiongate.js');
const ROUTES_FILE = path.join(ROOT, 'routes.yaml');
// the OpenID Provider the tests use too: a real oidc-provider (a devDependency)
const IDP_SCRIPT = path.join(ROOT, 'test/fixtures/oidc-provider.mjs');
const HAVE_IDP = existsSync(path.join(ROOT, 'node_modules/oidc-provider/package.json'));
const IDP_USER = {
  sub: 'demo-olivia',
  username: 'olivia',
  claims: { name: 'Olivia Demo', email: 'olivia@example.com', email_verified: true, groups: ['staff', 'platform-admins'] },
};
const IDP_ROLES = ['user', 'admin'];
const NODE = process.execPath;

const HELP = `Usage: npm start [-- --eddsa --logs]
       node scripts/demo.mjs [--eddsa] [--logs]

Runs the demo stack from routes.yaml: Redis, the auth service, the example upstreams and
the gateway on http://localhost:8080 (in a browser, open http://localhost:8080/app).
Ctrl-C stops everything it started. Needs Node.js and, for the Python example upstream
(/api/reports), python3 on PATH: without it that upstream is not started (said at start).
See docs/demo.md.

Options:
  --eddsa      sign X-Session with Ed25519: the Node example verifies through the gateway's
               JWKS; the Python example (HS256 only) is not started
  --logs       also print every service's log lines here, prefixed with its name
  -h, --help   show this help

Environment:
  REDIS_URL        use this Redis; unset: start a private redis-server from PATH on a
                   free port, and stop it on exit
  DEMO_BASE_PORT   move every port: gateway N, its metrics N+1, auth N+2 (metrics N+3),
                   node-upstream N+4, python-upstream N+5, demo IdP N+6; 0 picks free
                   ports (default: gateway 8080/9091, auth 4000/9092, upstreams 4001,
                   4002, demo IdP 4003)
  Other settings (LOG_LEVEL, SESSION_IDLE_TIMEOUT, X_SESSION_TTL, ...) reach the gateway
  and the auth service as they would if run alone; the demo's own (ports, keys, users,
  routes, REDIS_URL, COOKIE_SECURE=false) win.
`;

const DEMO_USERS = [
  { name: 'alice', roles: ['user'] },
  { name: 'bob', roles: ['user', 'admin'] },
  { name: 'dave', roles: ['analyst', 'billing'] },
];
const READY_TIMEOUT_MS = 30_000;
// how long a service has to stop after SIGTERM before it is killed
const STOP_GRACE_MS = 5_000;
const LOG_TAIL_LINES = 20;

// ---------------------------------------------------------------------------------------
// arguments and ports

function parseArgs(argv) {
  const opts = { eddsa: false, logs: false };
  for (const a of argv) {
    if (a === '--eddsa') opts.eddsa = true;
    else if (a === '--logs') opts.logs = true;
    else if (a === '-h' || a === '--help') {
      process.stdout.write(HELP);
      process.exit(0);
    } else fail(`unknown option ${a}\n\n${HELP}`, 2);
  }
  return opts;
}

function fail(message, code = 1) {
  process.stderr.write(`sessiongate demo: ${message}\n`);
  process.exit(code);
}

/** Resolves true when nothing listens on 127.0.0.1:port. */
function portIsFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function choosePorts(env) {
  const names = ['gateway', 'gatewayMetrics', 'auth', 'authMetrics', 'node', 'python', 'idp'];
  const raw = env.DEMO_BASE_PORT?.trim();
  let ports;
  if (!raw) {
    ports = { gateway: 8080, gatewayMetrics: 9091, auth: 4000, authMetrics: 9092, node: 4001, python: 4002, idp: 4003 };
  } else if (raw === '0') {
    ports = {};
    for (const n of names) ports[n] = await freePort();
  } else {
    const base = Number(raw);
    if (!Number.isInteger(base) || base < 1024 || base > 65529) fail(`DEMO_BASE_PORT must be 0 or a port from 1024 to 65529, not "${raw}"`);
    ports = Object.fromEntries(names.map((n, i) => [n, base + i]));
  }
  const taken = [];
  for (const n of names) if (!(await portIsFree(ports[n]))) taken.push(`${ports[n]} (${n})`);
  if (taken.length) {
    fail(
      `port ${taken.join(', ')} already in use on 127.0.0.1: stop what uses it (another demo?), ` +
        'or move the demo with DEMO_BASE_PORT=18080 (or DEMO_BASE_PORT=0 for any free ports)',
    );
  }
  return ports;
}

// ---------------------------------------------------------------------------------------
// child processes

/** Every service started, in start order; stopped in reverse, the gateway first. */
const services = [];
/** One-shot CLI commands running now: stopped too if the demo stops meanwhile. */
const oneShots = new Set();
let stopping = false;
let firstSignalAt = 0;

/** Stopped before every other service: the gateway, so no request meets a stopped one. */
const STOP_FIRST = true;

function service(name, command, args, { env, logDir, echo }, stopFirst = false) {
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

function signalGroup(s, signal) {
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

async function stopAll(code, why) {
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

// ---------------------------------------------------------------------------------------
// readiness

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function tcpOpen(host, port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Waits until `probe` resolves true, failing early if the service exits. */
async function waitReady(s, what, probe) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (s.exited) throw Object.assign(new Error(`${s.name} exited while starting`), { service: s });
    if (await probe()) return;
    await sleep(50);
  }
  throw Object.assign(new Error(`${s.name} was not ready after ${READY_TIMEOUT_MS / 1000} s (${what})`), { service: s });
}

const httpOk = (url) => () =>
  fetch(url, { signal: AbortSignal.timeout(1000) }).then(
    (r) => r.ok,
    () => false,
  );

function startupFailure(err, s) {
  // a service that died has already been reported (unexpectedExit)
  if (stopping) return;
  const tail = s?.tail.length ? `\n  ${s.name}'s last lines:\n${s.tail.map((l) => `    ${l}`).join('\n')}` : '';
  process.stderr.write(`\nsessiongate demo: ${err.message}${tail}\n`);
  return stopAll(1);
}

// ---------------------------------------------------------------------------------------
// the stack

/** Runs `sessiongate ARGS`; resolves its stdout, rejects with its stderr. */
function runCli(args, { env, input = '' }) {
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

function hasCommand(cmd) {
  const r = spawnSync(cmd, ['--version'], { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

/** The routes file for the chosen ports: routes.yaml itself, or a copy with ports moved. */
function routesFor(ports, dir) {
  const text = readFileSync(ROUTES_FILE, 'utf8');
  const moved = { 4000: ports.auth, 4001: ports.node, 4002: ports.python };
  let changed = false;
  const out = text.replace(/^(\s*upstream:\s*http:\/\/(?:127\.0\.0\.1|localhost)):(\d+)/gm, (m, head, port) => {
    const to = moved[port];
    if (to === undefined || to === Number(port)) return m;
    changed = true;
    return `${head}:${to}`;
  });
  if (!changed) return ROUTES_FILE;
  const copy = path.join(dir, 'routes.yaml');
  writeFileSync(copy, `# generated by scripts/demo.mjs from ${ROUTES_FILE} for DEMO_BASE_PORT\n${out}`);
  return copy;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!existsSync(path.join(ROOT, 'gateway/dist/cli/main.js')) || !existsSync(path.join(ROOT, 'auth-service/dist/cli.js'))) {
    fail('the packages are not built: run `npm run build` first (`npm start` does it)');
  }

  // Redis first: without it there is nothing to show
  let redisUrl = process.env.REDIS_URL?.trim();
  const privateRedis = !redisUrl;
  if (privateRedis && !hasCommand('redis-server')) {
    fail(
      'Redis is needed and there is none to use. Either\n' +
        '  - point the demo at a running Redis:  REDIS_URL=redis://127.0.0.1:6379 npm start\n' +
        '  - or install redis-server so the demo can start a private one (apt-get install redis-server,\n' +
        '    brew install redis, ...), or run the whole stack with `docker compose up`',
    );
  }
  if (!privateRedis) {
    let u;
    try {
      u = new URL(redisUrl);
    } catch {
      fail(`REDIS_URL "${redisUrl}" is not a URL like redis://127.0.0.1:6379`);
    }
    const host = u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
    const port = Number(u.port || 6379);
    if (!(await tcpOpen(host, port, 2000))) {
      fail(`cannot reach Redis at ${host}:${port} (REDIS_URL): start it, fix REDIS_URL, or unset it to let the demo start a private redis-server`);
    }
  }

  const ports = await choosePorts(process.env);
  const python = opts.eddsa ? null : hasCommand('python3') ? 'python3' : null;
  if (!opts.eddsa && !python) {
    // said first and plainly: otherwise /api/reports answers 502 and nobody knows why
    process.stderr.write(
      '\nsessiongate demo: WARNING: python3 is not on PATH, so the Python example upstream is NOT started:\n' +
        '  /api/reports will answer 502 (upstream_unavailable). Install python3 (apt-get install python3,\n' +
        '  brew install python) to run it; everything else works without it.\n\n',
    );
  }

  const runDir = mkdtempSync(path.join(tmpdir(), 'sessiongate-demo-'));
  const secretDir = path.join(runDir, 'secrets');
  const logDir = path.join(runDir, 'logs');
  mkdirSync(secretDir, { mode: 0o700 });
  mkdirSync(logDir);
  cleanupDir = secretDir;
  logDirForExit = logDir;

  // the example upstreams get only what they need; sessiongate's own services also get
  // the caller's environment (LOG_LEVEL, SESSION_IDLE_TIMEOUT=1m, ...) under the demo's
  // settings, which always win
  const baseEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
  const sgEnv = { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL || 'info' };
  const spawnOpts = (env, base = baseEnv) => ({ env: { ...base, ...env }, logDir, echo: opts.logs });

  console.log(`sessiongate demo: starting (X-Session signed with ${opts.eddsa ? 'EdDSA, verified through the JWKS' : 'HS256; `npm start -- --eddsa` for EdDSA'})`);

  // 1. Redis
  let redis;
  if (privateRedis) {
    const port = await freePort();
    const redisDir = path.join(secretDir, 'redis');
    mkdirSync(redisDir);
    redis = service(
      'redis',
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir],
      spawnOpts({}),
    );
    try {
      await waitReady(redis, `redis-server on port ${port}`, () => tcpOpen('127.0.0.1', port));
    } catch (err) {
      return startupFailure(err, redis);
    }
    redisUrl = `redis://127.0.0.1:${port}`;
  }

  // 2. fresh keys and users each run, in a directory only this user can read; every
  //    service starts as soon as what it needs exists, and the demo is ready when all answer
  const keysFile = path.join(secretDir, 'x-session-keys.json');
  const usersFile = path.join(secretDir, 'users.yaml');
  const routesFile = routesFor(ports, secretDir);
  const common = {
    REDIS_URL: redisUrl,
    X_SESSION_KEYS: keysFile,
    COOKIE_SECURE: 'false',
    ...Object.fromEntries(['GATEWAY_HOST', 'GATEWAY_METRICS_HOST', 'AUTH_HOST', 'AUTH_METRICS_HOST'].map((v) => [v, '127.0.0.1'])),
  };
  const gatewayUrl = `http://127.0.0.1:${ports.gateway}`;
  const users = DEMO_USERS.map((u) => ({ ...u, password: randomBytes(9).toString('base64url') }));
  const idp = HAVE_IDP ? { issuer: `http://127.0.0.1:${ports.idp}`, password: randomBytes(9).toString('base64url') } : null;
  const authEnv = idp ? { SESSIONGATE_OIDC: writeOidcFile(secretDir, idp, ports) } : {};
  const ready = [];
  try {
    // the users file meanwhile, one user at a time: each `users add` rewrites the whole file
    const userEnv = { ...sgEnv, SESSIONGATE_USERS: usersFile, SESSIONGATE_SCRYPT_COST: '14' };
    const usersMade = (async () => {
      for (const u of users) await runCli(['users', 'add', u.name, '--roles', u.roles.join(',')], { env: userEnv, input: `${u.password}\n` });
    })();
    usersMade.catch(() => undefined);

    const keys = await runCli(['keys', 'generate', '--alg', opts.eddsa ? 'EdDSA' : 'HS256', '--kid', 'demo'], { env: baseEnv });
    writeFileSync(keysFile, keys, { mode: 0o600 });

    // 3. with the keys: the upstreams and the gateway (it needs no upstream to start)
    const nodeUp = service(
      'node-upstream',
      NODE,
      [path.join(ROOT, 'examples/node-upstream/server.mjs')],
      spawnOpts({
        HOST: '127.0.0.1',
        PORT: String(ports.node),
        ...(opts.eddsa ? { GATEWAY_JWKS_URL: `${gatewayUrl}/.well-known/jwks.json` } : { X_SESSION_KEYS_FILE: keysFile }),
      }),
    );
    ready.push(waitReady(nodeUp, `/healthz on :${ports.node}`, httpOk(`http://127.0.0.1:${ports.node}/healthz`)));
    if (python) {
      const py = service(
        'python-upstream',
        python,
        ['-u', path.join(ROOT, 'examples/python-upstream/server.py')],
        spawnOpts({ HOST: '127.0.0.1', PORT: String(ports.python), X_SESSION_KEYS_FILE: keysFile }),
      );
      ready.push(waitReady(py, `/healthz on :${ports.python}`, httpOk(`http://127.0.0.1:${ports.python}/healthz`)));
    }
    const gateway = service(
      'gateway',
      NODE,
      [BIN, 'gateway'],
      spawnOpts({ ...common, SESSIONGATE_ROUTES: routesFile, GATEWAY_PORT: String(ports.gateway), GATEWAY_METRICS_PORT: String(ports.gatewayMetrics) }, sgEnv),
      STOP_FIRST,
    );
    ready.push(waitReady(gateway, `/readyz on :${ports.gatewayMetrics}`, httpOk(`http://127.0.0.1:${ports.gatewayMetrics}/readyz`)));
    // a service dying meanwhile stops the demo at once (unexpectedExit)
    for (const r of ready) r.catch(() => undefined);

    // the demo IdP: "Sign in with Demo IdP" on the sign-in page
    if (idp) {
      const op = service('demo-idp', NODE, [IDP_SCRIPT], spawnOpts({ OIDC_FIXTURE: JSON.stringify(idpFixture(idp, ports)) }));
      ready.push(waitReady(op, `discovery on :${ports.idp}`, httpOk(`${idp.issuer}/.well-known/openid-configuration`)));
    }

    // 4. with the users: the auth service
    await usersMade;
    // the demo's landing page is the Node example's /app
    const auth = service(
      'auth',
      NODE,
      [BIN, 'auth'],
      spawnOpts({ ...common, ...authEnv, SESSIONGATE_USERS: usersFile, LOGIN_DEFAULT_NEXT: '/app', AUTH_PORT: String(ports.auth), AUTH_METRICS_PORT: String(ports.authMetrics) }, sgEnv),
    );
    ready.push(waitReady(auth, `/readyz on :${ports.authMetrics}`, httpOk(`http://127.0.0.1:${ports.authMetrics}/readyz`)));
    await Promise.all(ready);
  } catch (err) {
    return startupFailure(err, err.service);
  }

  printWelcome({ ports, redisUrl, privateRedis, python, opts, users, logDir, routesFile, idp });
}

/** The demo IdP's client: the auth service behind the gateway, as the browser sees it. */
function idpFixture(idp, ports) {
  const gw = `http://localhost:${ports.gateway}`;
  return {
    port: ports.idp,
    users: [{ ...IDP_USER, password: idp.password }],
    clients: [
      {
        client_id: 'sessiongate-demo',
        client_secret: idp.clientSecret,
        redirect_uris: [`${gw}/auth/oidc/demo/callback`],
        post_logout_redirect_uris: [`${gw}/auth/login`],
        backchannel_logout_uri: `http://127.0.0.1:${ports.auth}/auth/oidc/demo/backchannel-logout`,
        backchannel_logout_session_required: true,
      },
    ],
  };
}

/** The auth service's OIDC file for the demo IdP; the client secret in a file of its own. */
function writeOidcFile(dir, idp, ports) {
  idp.clientSecret = randomBytes(24).toString('base64url');
  writeFileSync(path.join(dir, 'oidc-client-secret'), `${idp.clientSecret}\n`, { mode: 0o600 });
  const file = path.join(dir, 'oidc.yaml');
  writeFileSync(
    file,
    `version: 1
base_url: http://localhost:${ports.gateway}
providers:
  - id: demo
    display_name: Demo IdP
    issuer: ${idp.issuer}
    client_id: sessiongate-demo
    client_secret_file: oidc-client-secret
    scopes: [openid, email, profile, groups]
    require:
      - { claim: email_verified, equals: true }
    rules:
      - roles: [user]
        when: [{ email_domain: [example.com] }]
      - roles: [admin]
        when: [{ claim: groups, includes: platform-admins }]
`,
    { mode: 0o600 },
  );
  return file;
}

function printWelcome({ ports, redisUrl, privateRedis, python, opts, users, logDir, routesFile, idp }) {
  const gw = `http://localhost:${ports.gateway}`;
  const alg = opts.eddsa ? 'EdDSA via the JWKS' : 'HS256';
  const rows = [
    ['gateway', gw, `the way in; routes from ${routesFile === ROUTES_FILE ? 'routes.yaml' : `${routesFile} (routes.yaml, ports moved)`}`],
    ['gateway metrics', `http://localhost:${ports.gatewayMetrics}/metrics`, '/healthz, /readyz too; never on the public port'],
    ['auth service', `http://127.0.0.1:${ports.auth}`, `behind ${gw}/auth (metrics :${ports.authMetrics})`],
    ['node-upstream', `http://127.0.0.1:${ports.node}`, `/app, /api/orders, /public, /admin (jose, ${alg})`],
    python
      ? ['python-upstream', `http://127.0.0.1:${ports.python}`, '/api/reports (standard library, HS256)']
      : ['python-upstream', 'not started', opts.eddsa ? 'it verifies HS256 only; run without --eddsa for it' : 'python3 is not on PATH'],
    idp
      ? ['demo IdP', idp.issuer, 'an OpenID Provider (oidc-provider): "Sign in with Demo IdP"']
      : ['demo IdP', 'not started', 'oidc-provider is not installed (npm ci installs it)'],
    ['redis', redisUrl.replace(/\/\/[^@/]*@/, '//***@'), privateRedis ? 'a private redis-server, stopped on exit' : 'from REDIS_URL'],
    ['logs', logDir, opts.logs ? 'also printed here' : '`npm start -- --logs` prints them here'],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  const alice = users.find((u) => u.name === 'alice');
  const dave = users.find((u) => u.name === 'dave');
  const origin = `-H 'Origin: ${gw}'`;
  const login = (u) => `curl -i -c jar -H 'content-type: application/json' -d '{"username":"${u.name}","password":"${u.password}"}' ${gw}/auth/login`;
  const out = [
    '',
    'What runs where',
    ...rows.map(([a, b, c]) => `  ${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`),
    '',
    'Demo users (fresh passwords every run; demo only)',
    ...users.map((u) => `  ${u.name.padEnd(6)} ${u.password}   roles ${u.roles.join(', ')}`),
    '',
    ...(idp
      ? [
          'Demo IdP user (OpenID Connect: "Sign in with Demo IdP", then this on the IdP\'s form)',
          `  ${IDP_USER.username.padEnd(6)} ${idp.password}   mapped roles ${IDP_ROLES.join(', ')} (verified example.com email; group platform-admins)`,
          '',
        ]
      : []),
    'Cookies go over plain http here (COOKIE_SECURE=false): fine on localhost, never in production.',
    '',
    'In a browser',
    `  open ${gw}/app: the gateway's 401 page links to the sign-in form; sign in as alice, the page`,
    '  shows who you are (and that its script cannot read the HttpOnly sid cookie); Sign out ends it',
    ...(idp ? ['  or choose "Sign in with Demo IdP" and sign in there as olivia: back on /app with roles user, admin'] : []),
    '',
    'Try it (writes carrying the cookie need an Origin header: that is the CSRF check)',
    `  ${login(alice)}    # 204 + Set-Cookie: sid`,
    `  curl -b jar ${gw}/api/orders/1          # 200: node-upstream names alice`,
    `  curl -i -b jar ${gw}/admin              # 403: alice is no admin`,
    `  curl -b jar ${gw}/auth/me               # who am I`,
    `  curl -i -b jar -X POST ${origin} ${gw}/auth/logout   # 204`,
    `  curl -i -b jar ${gw}/api/orders/1       # 401: the session is gone`,
    ...(python
      ? [
          `  ${login(dave)}`,
          `  curl -b jar ${gw}/api/reports/monthly   # 200 from python-upstream: dave is analyst AND billing`,
        ]
      : []),
    `  curl ${gw}/public/hello                 # no session needed`,
    '',
    `sessiongate demo ready: ${gw} (Ctrl-C stops everything)`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
}

main().catch((err) => startupFailure(err));
