// Settings of the bench: its command line, its environment knobs and its fixed figures.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

// the bench/ folder, where the servers under test and the results live
export const HERE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = path.resolve(HERE, '..');
export const require = createRequire(import.meta.url);

export const HELP = `Usage: npm run bench [-- options]     (or: node bench/run.mjs [options] after npm run build)

Options:
  --quick        2 rounds × 2 s, 1 s warm-up, no memory check (a smoke run, not a result)
  --rss          only the memory check (100 000 live sessions through the cache-on gateway)
  --no-rss       skip the memory check
  --profile      run the servers under test with --cpu-prof (profiles in bench/results/profiles/)
  -h, --help     this help

Environment:
  BENCH_DURATION      seconds measured per target per round      (5; --quick: 2)
  BENCH_ROUNDS        rounds; targets alternate within each, the   (3; --quick: 2)
                      baseline measured between every two
  BENCH_WARMUP        seconds of warm-up per target before round 1 (5; --quick: 1); every
                      measured interval is also preceded by BENCH_SETTLE s of unmeasured load
  BENCH_SETTLE        seconds of unmeasured load before each measured (1)
                      interval
  BENCH_TAIL_PAIRS    p99 phase: slices of each cache-on target,   (20; --quick: 2)
                      each paired with a baseline slice next to it;
                      0 skips the phase and judges p99 by the rounds
  BENCH_TAIL_SLICE    p99 phase: seconds of one slice              (2; --quick: 1)
  BENCH_CONNECTIONS   concurrent connections                       (50)
  BENCH_SESSIONS      size of the session pool                     (1000)
  BENCH_RSS_SESSIONS  distinct sessions of the memory check        (100000)
  BENCH_RSS_PASSES    passes over them                             (2)
  BENCH_LOADGEN       autocannon | wrk                             (wrk when on PATH)
  BENCH_TARGETS       comma list of target ids to run              (all: baseline,on-pool,on-bearer,on-single,on-data,on-write,
                      off-pool,off-single,on-pool-w2,on-pool-otel,none,quick,quick-lru,
                      fa-plain,fa-sessiongate,fa-reference,aa)
                      on-data: the cache-on gateway, a route whose X-Session carries the
                      session data of a pool of its own (~100 B a session, written beforehand
                      through the session data endpoint); on-write: a route whose upstream
                      PATCHes one key of the session's data on every request (another pool)
                      on-pool-w2: GATEWAY_WORKERS=2, not pinned; on-pool-otel: tracing on,
                      exported to a local OTLP sink (on-pool is the same gateway, tracing off)
                      aa: a second plain proxy process, the p99 phase's control (an A/A
                      comparison: what the machine's noise alone does to the ratio)
                      fa-*: forward auth, nginx in front of the upstream (needs nginx with
                      auth_request): plain proxy_pass, auth_request → sessiongate (cache on),
                      auth_request → the hand-rolled bench/reference-authz.mjs
  BENCH_GATEWAY_BIN   the sessiongate CLI to run                   (gateway/bin/sessiongate.js)
  BENCH_GATEWAY_NODE_OPTIONS  NODE_OPTIONS of the gateway processes only (e.g. --max-old-space-size=96)
  BENCH_GATEWAY_NODE_ARGS     node flags of the gateway processes that NODE_OPTIONS refuses, after
                              the --no-memory-reducer they run with (e.g. "--trace-gc-nvp", or
                              "--memory-reducer" to see the gateway without it)
  BENCH_BASELINE_NODE_ARGS    node flags of the baseline process (e.g. "--no-memory-reducer --trace-gc-nvp",
                              to set its collections beside the gateway's)
  BENCH_KEEP_LOGS     1: keep the work folder with every process's log and intervals.json, every
                      measured interval of the rounds with its latency histogram, and p99-phase.json,
                      every slice of the p99 phase with its own (its path is printed)
  BENCH_COMPARE_BIN   a second sessiongate CLI, measured in the same rounds as "B: …" targets
                      (A/B a change: copy gateway/, change it, point this at its bin/)
  BENCH_COMPARE_NODE_ARGS  node flags of the B gateways instead of BENCH_GATEWAY_NODE_ARGS (A/B a
                      node flag: BENCH_COMPARE_BIN=gateway/bin/sessiongate.js and the flag here)
`;

// ---------------------------------------------------------------------------------------
// settings

export const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rss: { type: 'boolean', default: false },
    'no-rss': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (flags.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

export function envNumber(name, fallback, { min = 0, integer = false } = {}) {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    process.stderr.write(`bench: ${name}="${raw}" is not a ${integer ? 'whole ' : ''}number ≥ ${min}\n`);
    process.exit(2);
  }
  return n;
}

export const QUICK = flags.quick;
export const DURATION_S = envNumber('BENCH_DURATION', QUICK ? 2 : 5, { min: 1 });
export const ROUNDS = envNumber('BENCH_ROUNDS', QUICK ? 2 : 3, { min: 1, integer: true });
export const WARMUP_S = envNumber('BENCH_WARMUP', QUICK ? 1 : 5, { min: 0 });
export const SETTLE_S = envNumber('BENCH_SETTLE', 1, { min: 0 });
export const TAIL_PAIRS = envNumber('BENCH_TAIL_PAIRS', QUICK ? 2 : 20, { min: 0, integer: true });
export const TAIL_SLICE_S = envNumber('BENCH_TAIL_SLICE', QUICK ? 1 : 2, { min: 1, integer: true });
export const QUIESCE_MS = 200;
export const CONNECTIONS = envNumber('BENCH_CONNECTIONS', 50, { min: 1, integer: true });
export const POOL_SIZE = envNumber('BENCH_SESSIONS', 1000, { min: 1, integer: true });
export const RSS_SESSIONS = envNumber('BENCH_RSS_SESSIONS', 100_000, { min: 1, integer: true });
export const RSS_PASSES = envNumber('BENCH_RSS_PASSES', 2, { min: 1, integer: true });
export const RUN_THROUGHPUT = !flags.rss;
export const RUN_RSS = flags.rss || (!flags['no-rss'] && !QUICK);

export const ROUTE_PREFIX = '/api/orders';
export const REQUEST_PATH = `${ROUTE_PREFIX}/42`;
export const PUBLIC_PREFIX = '/api/public';
/** The route whose sessions hold session data (namespace `cart`), read on every request. */
export const DATA_PREFIX = '/api/cart';
export const DATA_PATH = `${DATA_PREFIX}/42`;
/** The route whose upstream writes session data (namespace `visits`) on every request. */
export const WRITE_PREFIX = '/api/visits';
export const WRITE_PATH = `${WRITE_PREFIX}/42`;
export const IDLE_TIMEOUT_MS = 30 * 60_000;
export const ABSOLUTE_TIMEOUT_MS = 12 * 60 * 60_000;
export const REFRESH_FRACTION = 0.1; // the gateway's default SESSION_REFRESH_FRACTION
export const REFRESH_INTERVAL_MS = IDLE_TIMEOUT_MS * REFRESH_FRACTION;
export const LOG_LEVEL = 'warn';
/** Key prefix of the references' copy of the sessions. */
export const REFERENCE_KEY_PREFIX = 'ref:';
export const RSS_LIMIT_MB = 200;

// the project's performance targets, as ratios to the plain proxy measured in the same run
// (cache off is also held to the hand-rolled reference without a cache, measured in the same rounds)
export const TARGETS = { cacheOnRatio: 0.95, cacheOffRatio: 0.8, cacheOnP99: 1.2, cacheOnCmds: 0.02, cacheOffCmds: 1.0, forwardAuthVsReference: 1.3, forwardAuthP99: 1.3, sessionDataReadVsCacheOn: 0.95 };
// published figures of other session setups (same machine class, same ratio to a plain proxy)
export const REFERENCES = [
  ['express + express-session + connect-redis', 0.23],
  ['nginx auth_request', 0.61],
  ['fastify + ioredis GETEX + HMAC, no cache', 0.66],
  ['stateless HS256 JWT fastify proxy', 0.71],
  ['fastify + ioredis GETEX + HMAC, 1 s lru-cache', 0.75],
];
