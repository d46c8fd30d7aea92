#!/usr/bin/env node
// `npm start`: the whole demo stack from the repository's routes.yaml, in one terminal.
// Redis (REDIS_URL, or a private redis-server), the auth service, the example upstreams
// and the gateway, each a child process of this script in its own process group; Ctrl-C
// stops them all, in reverse order, and removes the keys and users it generated.
// The parts live in scripts/demo/: config, ports, services (process supervision), setup
// (generated files) and output.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BIN, DEMO_USERS, HAVE_IDP, IDP_SCRIPT, NODE, ROOT, fail, parseArgs } from './demo/config.mjs';
import { printWelcome } from './demo/output.mjs';
import { choosePorts, freePort, tcpOpen } from './demo/ports.mjs';
import { STOP_FIRST, hasCommand, httpOk, installSignalHandlers, onExitFiles, runCli, service, startupFailure, waitReady } from './demo/services.mjs';
import { idpFixture, routesFor, writeOidcFile } from './demo/setup.mjs';

installSignalHandlers();

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
  onExitFiles({ cleanup: secretDir, logs: logDir });

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
  // the gateway's internal listener where upstreams keep data in the session (never public)
  const sessionDataUrl = `http://127.0.0.1:${ports.sessionData}/_sessiongate/session-data`;
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
        SESSIONGATE_DATA_URL: sessionDataUrl,
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
      spawnOpts(
        {
          ...common,
          SESSIONGATE_ROUTES: routesFile,
          GATEWAY_PORT: String(ports.gateway),
          GATEWAY_METRICS_PORT: String(ports.gatewayMetrics),
          SESSION_DATA_PORT: String(ports.sessionData),
        },
        sgEnv,
      ),
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

main().catch((err) => startupFailure(err));
