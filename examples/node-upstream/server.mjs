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
