// The demo's fixed parts: where things are, its users, its timeouts, its command line.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'gateway/bin/sessiongate.js');
export const ROUTES_FILE = path.join(ROOT, 'routes.yaml');
// the OpenID Provider the tests use too: a real oidc-provider (a devDependency)
export const IDP_SCRIPT = path.join(ROOT, 'test/fixtures/oidc-provider.mjs');
export const HAVE_IDP = existsSync(path.join(ROOT, 'node_modules/oidc-provider/package.json'));
export const IDP_USER = {
  sub: 'demo-olivia',
  username: 'olivia',
  claims: { name: 'Olivia Demo', email: 'olivia@example.com', email_verified: true, groups: ['staff', 'platform-admins'] },
};
export const IDP_ROLES = ['user', 'admin'];
export const NODE = process.execPath;

export const HELP = `Usage: npm start [-- --eddsa --logs]
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
                   node-upstream N+4, python-upstream N+5, demo IdP N+6, the gateway's
                   session data endpoint N+7; 0 picks free ports (default: gateway
                   8080/9091, auth 4000/9092, upstreams 4001, 4002, demo IdP 4003,
                   session data 8081)
  Other settings (LOG_LEVEL, SESSION_IDLE_TIMEOUT, X_SESSION_TTL, ...) reach the gateway
  and the auth service as they would if run alone; the demo's own (ports, keys, users,
  routes, REDIS_URL, COOKIE_SECURE=false) win.
`;

export const DEMO_USERS = [
  { name: 'alice', roles: ['user'] },
  { name: 'bob', roles: ['user', 'admin'] },
  { name: 'dave', roles: ['analyst', 'billing'] },
];
export const READY_TIMEOUT_MS = 30_000;
// how long a service has to stop after SIGTERM before it is killed
export const STOP_GRACE_MS = 5_000;
export const LOG_TAIL_LINES = 20;

export function parseArgs(argv) {
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

export function fail(message, code = 1) {
  process.stderr.write(`sessiongate demo: ${message}\n`);
  process.exit(code);
}

