#!/usr/bin/env node
// An upstream service behind sessiongate. It trusts the user only through the signed
// X-Session header, verified with a stock JWT library (jose): no cookie, no Redis, no
// sessiongate code. Plain JavaScript, so it runs without a build step.
//
// One of these sets where the keys come from (and so the only algorithm accepted):
//   GATEWAY_JWKS_URL      EdDSA: the gateway's public keys, e.g. http://127.0.0.1:8080/.well-known/jwks.json
//   X_SESSION_KEYS_FILE   HS256: a JWK set file holding the shared secret(s) (kty "oct"), chosen by kid
//   X_SESSION_SECRET      HS256: one shared secret, base64url (the "k" of the gateway's key)
// Also: HOST (127.0.0.1), PORT (4001), X_SESSION_ISSUER (sessiongate).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const SERVICE = 'node-upstream';
const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT || 4001);
const ISSUER = process.env.X_SESSION_ISSUER || 'sessiongate';
// the gateway signs for 60 s; allow a little clock skew between the two machines
const CLOCK_TOLERANCE_SECONDS = 5;

// What this service serves, by the path it receives. `aud` is the name of the route in
// routes.yaml that forwards here: the gateway signs each X-Session for one route, so a
// header minted for /api/orders is refused on /admin.
const ROUTES = [
  { prefix: '/app', aud: 'app', page: true }, // a page for browsers: HTML, not JSON
  { prefix: '/orders', aud: 'orders' },
  { prefix: '/admin', aud: 'admin', role: 'admin' },
  { prefix: '/public', aud: null }, // auth: none: the gateway sends no X-Session here
];

function keySource(env) {
  const sources = ['GATEWAY_JWKS_URL', 'X_SESSION_KEYS_FILE', 'X_SESSION_SECRET'].filter((v) => env[v]);
  if (sources.length !== 1) {
    throw new Error(`set exactly one of GATEWAY_JWKS_URL (EdDSA), X_SESSION_KEYS_FILE or X_SESSION_SECRET (HS256); got ${sources.join(', ') || 'none'}`);
  }
  if (env.GATEWAY_JWKS_URL) {
    const url = new URL(env.GATEWAY_JWKS_URL);
    // fetched on first use, cached, and fetched again when an unknown kid shows up (rotation)
    return { alg: 'EdDSA', key: createRemoteJWKSet(url), describe: `EdDSA, public keys from ${url}` };
  }
  if (env.X_SESSION_KEYS_FILE) {
    const set = JSON.parse(readFileSync(env.X_SESSION_KEYS_FILE, 'utf8'));
    // keep only the shared secrets: an Ed25519 key of the set is verified through the JWKS
    const secrets = new Map((set.keys ?? []).filter((k) => k.kty === 'oct').map((k) => [k.kid, new Uint8Array(Buffer.from(k.k, 'base64url'))]));
    if (secrets.size === 0) throw new Error(`X_SESSION_KEYS_FILE ${env.X_SESSION_KEYS_FILE} holds no HS256 ("oct") key`);
    // the token's kid picks the secret, so a rotation (new key first, old one kept) just works
    const key = (header) => {
      const secret = secrets.get(header.kid);
      if (!secret) throw new Error(`unknown kid ${JSON.stringify(header.kid)}`);
      return secret;
    };
    return { alg: 'HS256', key, describe: `HS256, ${secrets.size} key(s) from ${env.X_SESSION_KEYS_FILE}` };
  }
  const secret = Buffer.from(env.X_SESSION_SECRET, 'base64url');
  if (secret.length < 32) throw new Error('X_SESSION_SECRET must be at least 32 bytes, base64url');
  return { alg: 'HS256', key: new Uint8Array(secret), describe: 'HS256, secret from X_SESSION_SECRET' };
}

let source;
try {
  source = keySource(process.env);
} catch (err) {
  console.error(`${SERVICE}: ${err.message}`);
  process.exit(1);
}

/** The verified claims of an X-Session, or throws (jose's errors name the failed check). */
async function verify(token, aud) {
  const { payload } = await jwtVerify(token, source.key, {
    algorithms: [source.alg], // pinned: never let the token choose its algorithm
    issuer: ISSUER,
    audience: aud,
    typ: 'JWT',
    requiredClaims: ['sub', 'exp', 'iat'],
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
  });
  if (typeof payload.sub !== 'string' || !Array.isArray(payload.roles) || !payload.roles.every((r) => typeof r === 'string')) {
    throw new Error('X-Session lacks sub or roles');
  }
  return { sub: payload.sub, roles: payload.roles };
}

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

// The browser page (/app): only script from this origin (no inline script), nothing from
// anywhere else, the logout form may post only here, and it is never framed.
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
};

const HTML_ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);

function appPage(user) {
  const roles = user.roles.length ? user.roles.map((r) => `<li>${esc(r)}</li>`).join('') : '<li>(none)</li>';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Signed in as ${esc(user.sub)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}code{background:#f3f3f3;padding:0 .25rem}button{padding:.5rem 1.25rem;font:inherit}</style>
<script src="/app/page.js" defer></script>
</head>
<body>
<main>
<h1>Signed in as <span id="sub">${esc(user.sub)}</span></h1>
<p>${SERVICE} knows you only from the signed <code>X-Session</code> header the gateway sent with this request.</p>
<h2>Roles</h2>
<ul id="roles">${roles}</ul>
<h2>What page script can read</h2>
<p><code>document.cookie</code> is <output id="cookie">(not run)</output>: the session cookie is HttpOnly.</p>
<form method="post" action="/auth/logout"><button type="submit">Sign out</button></form>
</main>
</body>
</html>
`;
}

// what the page's script does: show that the session cookie is out of its reach
const PAGE_SCRIPT = `document.getElementById('cookie').textContent = JSON.stringify(document.cookie);\n`;

function sendPage(req, res, path, user) {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
    return res.end(JSON.stringify({ error: 'method_not_allowed', message: `${req.method} is not allowed here` }));
  }
  let type;
  let body;
  if (path === '/app') [type, body] = ['text/html; charset=utf-8', appPage(user)];
  else if (path === '/app/page.js') [type, body] = ['text/javascript; charset=utf-8', PAGE_SCRIPT];
  else return send(res, 404, { error: 'not_found', message: `${SERVICE} serves no ${path}` });
  res.writeHead(200, { ...PAGE_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

async function handle(req, res) {
  const path = new URL(req.url ?? '/', 'http://upstream').pathname;
  if (path === '/healthz') return send(res, 200, { status: 'ok' });
  const route = ROUTES.find((r) => path === r.prefix || path.startsWith(`${r.prefix}/`));
  if (!route) return send(res, 404, { error: 'not_found', message: `${SERVICE} serves no ${path}` });

  let user = null;
  if (route.aud !== null) {
    const token = req.headers['x-session'];
    if (typeof token !== 'string' || token === '') {
      return send(res, 401, { error: 'unauthenticated', message: 'X-Session is missing: call this service through the gateway' });
    }
    try {
      user = await verify(token, route.aud);
    } catch (err) {
      // the reason is safe to show (which check failed); the token never is
      return send(res, 401, { error: 'unauthenticated', message: `X-Session rejected: ${err.message}` });
    }
    // the gateway already enforced routes.yaml; a service may still check what it relies on
    if (route.role && !user.roles.includes(route.role)) {
      return send(res, 403, { error: 'forbidden', message: `needs the ${route.role} role` });
    }
  }

  if (route.page) return sendPage(req, res, path, user);
  const body = { service: SERVICE, route: route.aud ?? 'public', method: req.method, path, user };
  const order = /^\/orders\/([^/]+)$/.exec(path);
  if (order && user) body.order = { id: decodeURIComponent(order[1]), owner: user.sub, canDelete: user.roles.includes('admin') };
  return send(res, 200, body);
}

const server = http.createServer((req, res) => {
  handle(req, res)
    .catch((err) => {
      console.error(`${SERVICE}: ${err.stack ?? err}`);
      if (!res.headersSent) send(res, 500, { error: 'internal', message: 'internal error' });
    })
    .finally(() => console.log(`${req.method} ${req.url} ${res.statusCode}`));
});

server.on('error', (err) => {
  console.error(`${SERVICE}: cannot listen on ${HOST}:${PORT}: ${err.message}`);
  process.exit(1);
});
server.listen(PORT, HOST, () => {
  const { port } = server.address();
  console.log(`${SERVICE} listening on http://${HOST}:${port} (${source.describe}, iss ${ISSUER})`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
