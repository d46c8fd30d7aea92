// The servers under test and their sessions: a private Redis, the upstream, the baseline,
// the hand-rolled references, the sessiongate gateways, forward auth through nginx.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nginxBinary, startForwardAuthNginx } from '../forward-auth.mjs';
import { HERE, ROOT, flags, POOL_SIZE, RUN_THROUGHPUT, ROUTE_PREFIX, REQUEST_PATH, PUBLIC_PREFIX, IDLE_TIMEOUT_MS, ABSOLUTE_TIMEOUT_MS, REFRESH_INTERVAL_MS, LOG_LEVEL, REFERENCE_KEY_PREFIX } from './config.mjs';
import { keepLogs, log, sleep, freePort, procStatusKb, loadavg, children, workDir, PIN, SERVER_CORE, DRIVER_CORE, pinned, startChild, jsonPort } from './proc.mjs';
import { Redis, cliEntry, compareEntry, ApiKeyStore, SessionStore, KeyLayout, sessionRef, checkGateway, checkForwardAuth } from './checks.mjs';
import { startWriterUpstream, dataRoutesYaml, fillCartData, checkSessionData } from './session-data.mjs';

/** Node flags given as one string in an environment variable (BENCH_*_NODE_ARGS). */
function splitArgs(text) {
  return (text ?? '').split(/\s+/).filter(Boolean);
}

/** Starts Redis, the upstream, the baseline, the references and the gateways, and writes the sessions. */
export async function startServers() {
  const started = new Date();
  if (PIN) execFileSync('taskset', ['-a', '-p', '-c', String(DRIVER_CORE), String(process.pid)], { stdio: 'ignore' });

  const redisVersion = /v=(\S+)/.exec(spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[1];
  if (!redisVersion) throw new Error('redis-server is not on PATH: install Redis (apt-get install redis-server, brew install redis)');
  const cpuModel = /^model name\s*:\s*(.*)$/m.exec(fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '')?.[1] ?? os.cpus()[0]?.model ?? '?';
  const sgVersion = JSON.parse(fs.readFileSync(path.join(ROOT, 'gateway/package.json'), 'utf8')).version;
  const loadAtStart = loadavg();

  // --- Redis (private, never 6379) -------------------------------------------------------
  const redisPort = await freePort();
  const redisDir = path.join(workDir, 'redis');
  fs.mkdirSync(redisDir);
  await startChild(
    'redis',
    DRIVER_CORE,
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir, '--loglevel', 'warning'],
  ); // ready when it answers PING, below
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  // commands queue until the server listens; give up after ~5 s
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 50, retryStrategy: (n) => (n > 50 ? null : 100) });
  redis.on('error', () => undefined); // refused until the server listens: retried
  await redis.ping();
  log(`redis-server ${redisVersion} on ${redisUrl}`);

  // --- upstream, baseline ----------------------------------------------------------------
  const up = await startChild('upstream', DRIVER_CORE, process.execPath, [path.join(HERE, 'upstream.mjs')], { ready: jsonPort });
  const upstreamUrl = `http://127.0.0.1:${up.value}`;
  const profDir = path.join(HERE, 'results', 'profiles');
  const nodeFlags = flags.profile ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  if (flags.profile) fs.mkdirSync(profDir, { recursive: true });
  const startBaseline = (name) =>
    startChild(name, SERVER_CORE, process.execPath, [...splitArgs(process.env.BENCH_BASELINE_NODE_ARGS), ...nodeFlags, path.join(HERE, 'baseline.mjs')], {
      env: { UPSTREAM: upstreamUrl, PREFIX: ROUTE_PREFIX, PORT: '0' },
      ready: jsonPort,
    });
  const base = RUN_THROUGHPUT ? await startBaseline('baseline') : null;
  // the writing route's upstream: it PATCHes the cache-on gateway's session data endpoint
  const writer = RUN_THROUGHPUT ? await startWriterUpstream() : null;

  // --- the hand-rolled reference, without and with a 1 s cache --------------------------
  const quick = async (name, cacheMs) =>
    startChild(name, SERVER_CORE, process.execPath, [...nodeFlags, path.join(HERE, 'quick-gateway.mjs')], {
      env: {
        UPSTREAM: upstreamUrl,
        PREFIX: ROUTE_PREFIX,
        PORT: '0',
        REDIS_URL: redisUrl,
        KEY_PREFIX: REFERENCE_KEY_PREFIX,
        CACHE_MS: String(cacheMs),
        IDLE_MS: String(IDLE_TIMEOUT_MS),
      },
      ready: jsonPort,
    });
  const quickNoCache = RUN_THROUGHPUT ? await quick('quick-gateway', 0) : null;
  const quickLru = RUN_THROUGHPUT ? await quick('quick-gateway-lru', 1000) : null;

  // --- sessiongate ×2 --------------------------------------------------------------------
  const keysJson = execFileSync(process.execPath, [cliEntry, 'keys', 'generate', '--alg', 'HS256', '--kid', 'bench'], { encoding: 'utf8' }).trim();
  const keysFile = path.join(workDir, 'x-session-keys.json');
  fs.writeFileSync(keysFile, keysJson, { mode: 0o600 });
  const secret = Buffer.from(JSON.parse(keysJson).keys[0].k, 'base64url');
  const routesFile = path.join(workDir, 'routes.yaml');
  const routesText = (credentials, more = '') =>
    `version: 1\nroutes:\n  - name: orders\n    prefix: ${ROUTE_PREFIX}\n    upstream: ${upstreamUrl}\n    roles: [user]\n${credentials}` +
    `  - name: public\n    prefix: ${PUBLIC_PREFIX}\n    upstream: ${upstreamUrl}\n    auth: none\n${more}`;
  // the route takes API keys too; a build compared against (BENCH_COMPARE_BIN) may not know
  // `credentials` nor `sessionData`: it gets this build's file if its own `check` accepts it,
  // and a cookie-only file otherwise (its API-key rows then fail with 401)
  fs.writeFileSync(routesFile, routesText('    credentials: [cookie, api_key]\n', writer ? dataRoutesYaml(upstreamUrl, writer.url) : ''));
  const plainRoutesFile = path.join(workDir, 'routes-cookie-only.yaml');
  fs.writeFileSync(plainRoutesFile, routesText(''));
  const routesByCli = new Map([[cliEntry, routesFile]]);
  const routesFor = (cli) => {
    if (!routesByCli.has(cli)) {
      try {
        execFileSync(process.execPath, [cli, 'check', routesFile], { stdio: 'ignore' });
        routesByCli.set(cli, routesFile);
      } catch {
        routesByCli.set(cli, plainRoutesFile);
      }
    }
    return routesByCli.get(cli);
  };

  async function startGateway(name, cacheOn, cli = cliEntry, { env: extraEnv = {}, core = SERVER_CORE, nodeArgs = process.env.BENCH_GATEWAY_NODE_ARGS } = {}) {
    const port = await freePort();
    const metricsPort = await freePort();
    // the way the `sessiongate` command and the image start it (gateway/bin/sessiongate.js)
    const extraArgs = splitArgs(nodeArgs);
    const { child } = await startChild(name, core, process.execPath, ['--no-memory-reducer', ...extraArgs, ...nodeFlags, cli, 'gateway'], {
      env: {
        REDIS_URL: redisUrl,
        HOST: '127.0.0.1',
        PORT: String(port),
        METRICS_HOST: '127.0.0.1',
        METRICS_PORT: String(metricsPort),
        SESSIONGATE_ROUTES: routesFor(cli),
        SESSIONGATE_WATCH_ROUTES: 'false',
        X_SESSION_KEYS: keysFile,
        SESSION_CACHE: cacheOn ? 'true' : 'false',
        LOG_LEVEL,
        COOKIE_SECURE: 'false',
        // nginx asks the forward-auth endpoint from here
        SESSIONGATE_FORWARD_AUTH_PROXIES: '127.0.0.1/32',
        ...(process.env.BENCH_GATEWAY_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_GATEWAY_NODE_OPTIONS } : {}),
        ...extraEnv,
      },
    });
    // ready when /readyz says so and, with the cache, the invalidation channel is subscribed
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode}); log: ${child.logFile}`);
      try {
        const ready = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
        await ready.arrayBuffer();
        if (ready.status === 200) {
          if (!cacheOn) break;
          const m = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
          if (/^sessiongate_session_cache_active 1$/m.test(m)) break;
        }
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        keepLogs();
        throw new Error(`${name} not ready after 20 s; log: ${child.logFile}`);
      }
      await sleep(100);
    }
    return { child, port, metricsPort, startRssKb: procStatusKb(child.pid, 'VmRSS') };
  }
  const wanted = (id) => !process.env.BENCH_TARGETS || process.env.BENCH_TARGETS.split(',').map((x) => x.trim()).includes(id);
  // The judged cache-on rows (sessions, API keys, one session, and `auth: none` beside them)
  // get a gateway of their own, as the baseline has a process of its own: the session data
  // rows (a Redis write on every request) and forward auth leave garbage that is collected
  // in whichever interval comes next, and would be charged to the judged rows.
  const gwOn = await startGateway('sessiongate-cache-on', true);
  // the session data endpoint on this one only: the writing route's upstream calls it
  const gwOther = RUN_THROUGHPUT ? await startGateway('sessiongate-cache-on-other', true, cliEntry, { env: { SESSION_DATA_PORT: String(writer.dataPort) } }) : null;
  const gwOff = RUN_THROUGHPUT ? await startGateway('sessiongate-cache-off', false) : null;
  // a second plain proxy, the p99 phase's control: how far two identical servers differ here
  const baseAA = RUN_THROUGHPUT && wanted('aa') ? await startBaseline('baseline-aa') : null;
  // two worker processes, on every core (pinning them to one would measure nothing)
  const gwW2 = RUN_THROUGHPUT && wanted('on-pool-w2') ? await startGateway('sessiongate-2-workers', true, cliEntry, { env: { GATEWAY_WORKERS: '2' }, core: null }) : null;
  // tracing on, every request sampled, exported to a collector that drops what it gets
  const sink = RUN_THROUGHPUT && wanted('on-pool-otel') ? await startChild('otlp-sink', DRIVER_CORE, process.execPath, [path.join(HERE, 'otlp-sink.mjs')], { ready: jsonPort }) : null;
  const gwOtel = sink
    ? await startGateway('sessiongate-tracing', true, cliEntry, { env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sink.value}`, OTEL_SERVICE_NAME: 'sessiongate-bench' } })
    : null;
  // B runs with node flags of its own when BENCH_COMPARE_NODE_ARGS is set (A/B a flag on one build)
  const compareNodeArgs = process.env.BENCH_COMPARE_NODE_ARGS ?? process.env.BENCH_GATEWAY_NODE_ARGS;
  const gwB = RUN_THROUGHPUT && compareEntry
    ? {
        on: await startGateway('B-cache-on', true, compareEntry, { nodeArgs: compareNodeArgs }),
        off: await startGateway('B-cache-off', false, compareEntry, { nodeArgs: compareNodeArgs }),
      }
    : null;

  // --- forward auth: nginx in front of the same upstream ---------------------------------
  // nginx (one worker) and the endpoints are servers under test: on the server core
  const faIds = ['fa-plain', 'fa-sessiongate', 'fa-reference'];
  const faWanted = RUN_THROUGHPUT && faIds.some(wanted);
  let fa = null;
  if (faWanted && !nginxBinary()) log('forward-auth targets skipped: nginx is not installed (apt-get install nginx-light)');
  else if (faWanted) {
    const ref = await startChild('reference-authz', SERVER_CORE, process.execPath, [path.join(HERE, 'reference-authz.mjs')], { env: { REDIS_URL: redisUrl }, ready: jsonPort });
    const spawnAs = (name) => (file, args) => {
      const [f, a] = pinned(SERVER_CORE, file, args);
      const c = spawn(f, a, { stdio: ['ignore', 'ignore', 'pipe'] });
      c.name = name;
      children.add(c);
      c.on('exit', () => children.delete(c));
      return c;
    };
    const upstreamAddr = `127.0.0.1:${up.value}`;
    const nginx = async (name, endpoint) => startForwardAuthNginx({ port: await freePort(), upstream: upstreamAddr, endpoint, workDir, name, spawnAs: spawnAs(name) });
    fa = {
      ref,
      plain: await nginx('nginx-plain', null),
      viaSg: await nginx('nginx-sessiongate', `127.0.0.1:${gwOther.port}`),
      viaRef: await nginx('nginx-reference', `127.0.0.1:${ref.value}`),
    };
    log(`forward auth: nginx plain on ${fa.plain.port}, auth_request → sessiongate on ${fa.viaSg.port}, → reference endpoint on ${fa.viaRef.port}`);
  }

  // --- sessions --------------------------------------------------------------------------
  // written the way the auth service writes them; their ages are spread over one refresh
  // interval so expiry refreshes (PEXPIRE) arrive at their steady rate, not in one burst
  const store = new SessionStore(redis, new KeyLayout());
  const newSession = async (sub, roles) => {
    const age = Math.floor(Math.random() * REFRESH_INTERVAL_MS);
    const s = await store.create(
      { sub, roles, claims: { name: `User ${sub}` }, idleTimeoutMs: IDLE_TIMEOUT_MS, absoluteTimeoutMs: ABSOLUTE_TIMEOUT_MS },
      Date.now() - age,
    );
    return { sub, cookie: `sid=${s.token}` };
  };
  const pool = [];
  for (let i = 0; i < POOL_SIZE; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(POOL_SIZE, i + 100); j++) batch.push(newSession(`user-${j}`, ['user']));
    pool.push(...(await Promise.all(batch)));
  }
  const guest = await newSession('guest-0', ['guest']);
  // pools of their own for the session data targets: the records of the pool above stay as
  // they were (no data), and writes never invalidate the sessions the other targets use
  const morePool = async (prefix) => {
    const sessions = [];
    for (let i = 0; i < POOL_SIZE; i += 100) {
      const batch = [];
      for (let j = i; j < Math.min(POOL_SIZE, i + 100); j++) batch.push(newSession(`${prefix}-${j}`, ['user']));
      sessions.push(...(await Promise.all(batch)));
    }
    return sessions;
  };
  const dataPool = writer ? await morePool('data-user') : [];
  const writePool = writer ? await morePool('writer-user') : [];
  // the references read a copy of the same sessions under a prefix of their own: their
  // GETEX on every request would otherwise be announced to the cache-on gateway (Redis key
  // tracking) and cost it CPU on the core they are measured on
  {
    const sgKeys = new KeyLayout();
    const refKeys = new KeyLayout(REFERENCE_KEY_PREFIX);
    const p = redis.pipeline();
    for (const s of [...pool, guest]) {
      const ref = sessionRef(s.cookie.slice('sid='.length));
      p.copy(sgKeys.session(ref), refKeys.session(ref));
    }
    await p.exec();
  }
  const poolCookies = pool.map((s) => s.cookie);
  const single = [pool[0].cookie];
  // one API key per user of the pool, as \`sessiongate api-keys create\` stores them
  const apiKeys = new ApiKeyStore(store);
  const poolKeys = [];
  for (let i = 0; i < pool.length; i += 100) {
    const batch = pool.slice(i, i + 100).map((s) => apiKeys.create({ sub: s.sub, name: 'bench', scope: null, ownerRoles: ['user'], expiresAt: null }));
    poolKeys.push(...(await Promise.all(batch)).map((k) => `Bearer ${k.key}`));
  }
  {
    const r = await fetch(`http://127.0.0.1:${gwOn.port}${REQUEST_PATH}`, { headers: { authorization: poolKeys[0] } });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`sessiongate (cache on): an API key answered ${r.status}, expected 200`);
  }

  await checkGateway('sessiongate (cache on)', gwOn.port, secret, pool[1 % pool.length], guest.cookie);
  if (gwOther) await checkGateway('sessiongate (cache on, other rows)', gwOther.port, secret, pool[9 % pool.length], guest.cookie);
  if (gwOff) await checkGateway('sessiongate (cache off)', gwOff.port, secret, pool[2 % pool.length], guest.cookie);
  if (gwW2) await checkGateway('sessiongate (2 workers)', gwW2.port, secret, pool[6 % pool.length], guest.cookie);
  if (gwOtel) await checkGateway('sessiongate (tracing on)', gwOtel.port, secret, pool[7 % pool.length], guest.cookie);
  if (gwB) {
    await checkGateway('B (cache on)', gwB.on.port, secret, pool[3 % pool.length], guest.cookie);
    await checkGateway('B (cache off)', gwB.off.port, secret, pool[4 % pool.length], guest.cookie);
  }
  for (const [name, q] of [['quick-gateway', quickNoCache], ['quick-gateway-lru', quickLru]]) {
    if (!q) continue;
    const url = `http://127.0.0.1:${q.value}${REQUEST_PATH}`;
    const statuses = [];
    for (const headers of [{ cookie: pool[5 % pool.length].cookie }, {}, { cookie: guest.cookie }]) {
      const r = await fetch(url, { headers });
      await r.arrayBuffer();
      statuses.push(r.status);
    }
    if (statuses.join() !== '200,401,403') throw new Error(`${name}: valid/none/guest cookie answered ${statuses.join('/')}, expected 200/401/403`);
  }
  log('correctness: session cookie stripped, other cookies kept, forged X-Session dropped, X-Session HS256 verifies (aud, sub, roles), no cookie → 401, wrong role → 403');
  if (fa) await checkForwardAuth(fa, secret, pool[8 % pool.length], guest.cookie);
  let cartBytes = null;
  if (writer) {
    const { written, bytes } = await fillCartData(gwOther.port, writer.dataPort, dataPool);
    cartBytes = bytes;
    await checkSessionData({ gatewayPort: gwOther.port, secret, redis, store, reader: dataPool[0], written, writer: writePool[0] });
  }
  const dataCookies = dataPool.map((s) => s.cookie);
  const writeCookies = writePool.map((s) => s.cookie);

  return { started, redisVersion, cpuModel, sgVersion, loadAtStart, redisPort, redisDir, redisUrl, redis, up, upstreamUrl, profDir, nodeFlags, base, baseAA, quick, quickNoCache, quickLru, keysJson, keysFile, secret, routesFile, routesText, plainRoutesFile, startGateway, gwOn, gwOther, gwOff, wanted, gwW2, sink, gwOtel, gwB, faIds, faWanted, fa, store, newSession, pool, guest, poolCookies, single, apiKeys, poolKeys, writer, dataCookies, writeCookies, cartBytes };
}
