// What the demo prints once it is ready: what runs where, the users, what to try.
import { IDP_ROLES, IDP_USER, ROUTES_FILE } from './config.mjs';

export function printWelcome({ ports, redisUrl, privateRedis, python, opts, users, logDir, routesFile, idp }) {
  const gw = `http://localhost:${ports.gateway}`;
  const alg = opts.eddsa ? 'EdDSA via the JWKS' : 'HS256';
  const rows = [
    ['gateway', gw, `the way in; routes from ${routesFile === ROUTES_FILE ? 'routes.yaml' : `${routesFile} (routes.yaml, ports moved)`}`],
    ['gateway metrics', `http://localhost:${ports.gatewayMetrics}/metrics`, '/healthz, /readyz too; never on the public port'],
    ['session data', `http://127.0.0.1:${ports.sessionData}`, 'PATCH /_sessiongate/session-data: node-upstream keeps /app\'s tenant; never on the public port'],
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
    '  shows who you are (and that its script cannot read the HttpOnly sid cookie); pick a tenant',
    '  and it stays chosen, kept in the session by the gateway, until you Sign out',
    ...(idp ? ['  or choose "Sign in with Demo IdP" and sign in there as olivia: back on /app with roles user, admin'] : []),
    '',
    'Try it (writes carrying the cookie need an Origin header: that is the CSRF check)',
    `  ${login(alice)}    # 204 + Set-Cookie: sid`,
    `  curl -b jar ${gw}/api/orders/1          # 200: node-upstream names alice`,
    `  curl -i -b jar ${gw}/admin              # 403: alice is no admin`,
    `  curl -b jar ${gw}/auth/me               # who am I`,
    `  curl -i -b jar ${origin} -d tenant=globex ${gw}/app/tenant   # 303: /app now shows tenant globex`,
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
