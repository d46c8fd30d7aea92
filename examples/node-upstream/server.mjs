#!/usr/bin/env node
// An upstream service behind sessiongate. It trusts the user only through the signed
// X-Session header, verified with a stock JWT library (jose): no cookie, no Redis, no
// sessiongate code. Plain JavaScript, so it runs without a build step.
//
// One of these sets where the keys come from (and so the only algorithm accepted):
//   GATEWAY_JWKS_URL      EdDSA: the gateway's public keys, e.g. http://127.0.0.1:8080/.well-known/jwks.json
//   X_SESSION_KEYS_FILE   HS256: a JWK set file holding the shared secret(s) (kty "oct"), chosen by kid
//   X_SESSION_SECRET      HS256: one shared secret, base64url (the "k" of the gateway's key)
// Also: HOST (127.0.0.1), PORT (4001), X_SESSION_ISSUER (sessiongate), and
//   SESSIONGATE_DATA_URL  the gateway's session data endpoint, where /app keeps the chosen
//                         tenant, e.g. http://127.0.0.1:8081/_sessiongate/session-data
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const SERVICE = 'node-upstream';
const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT || 4001);
const ISSUER = process.env.X_SESSION_ISSUER || 'sessiongate';
// the gateway signs for 60 s; allow a little clock skew between the two machines
const CLOCK_TOLERANCE_SECONDS = 5;
const DATA_URL = process.env.SESSIONGATE_DATA_URL || null;
// the tenants /app offers; the choice lives in the user's session, in the namespace the app
// route declares in routes.yaml (sessionData.namespace), so X-Session brings it back as
// the claim sg_data.app.tenant
const TENANTS = ['acme', 'globex', 'initech'];
const DATA_NAMESPACE = 'app';

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

/** The user and the chosen tenant of a verified X-Session, or throws (jose's errors name the failed check). */
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
  // sg_data: the session data of the namespaces this route reads, signed with the rest
  const tenant = payload.sg_data?.[DATA_NAMESPACE]?.tenant;
  return { user: { sub: payload.sub, roles: payload.roles }, tenant: typeof tenant === 'string' ? tenant : null };
}

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

// The browser page (/app): only script from this origin (no inline script), nothing from
// anywhere else, its forms may post only here, and it is never framed.
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

function appPage({ user, tenant }, error = null) {
  const roles = user.roles.length ? user.roles.map((r) => `<li>${esc(r)}</li>`).join('') : '<li>(none)</li>';
  const options = TENANTS.map((t) => `<option${t === tenant ? ' selected' : ''}>${esc(t)}</option>`).join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Signed in as ${esc(user.sub)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}code{background:#f3f3f3;padding:0 .25rem}button,select{padding:.5rem 1.25rem;font:inherit}[role=alert]{color:#a00}</style>
<script src="/app/page.js" defer></script>
</head>
<body>
<main>
<h1>Signed in as <span id="sub">${esc(user.sub)}</span></h1>
<p>${SERVICE} knows you only from the signed <code>X-Session</code> header the gateway sent with this request.</p>
<h2>Roles</h2>
<ul id="roles">${roles}</ul>
<h2>Tenant</h2>
<p>Working in <strong id="tenant">${tenant === null ? '(none chosen)' : esc(tenant)}</strong>: kept in your session by the gateway, read from the <code>X-Session</code> claim <code>sg_data.${DATA_NAMESPACE}.tenant</code>.</p>
${error === null ? '' : `<p role="alert" id="error">${esc(error)}</p>\n`}<form method="post" action="/app/tenant"><label for="tenant-choice">Tenant</label> <select id="tenant-choice" name="tenant">${options}</select> <button type="submit">Switch tenant</button></form>
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

function methodNotAllowed(req, res, allow) {
  res.writeHead(405, { allow, 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify({ error: 'method_not_allowed', message: `${req.method} is not allowed here` }));
}

function sendBody(req, res, status, type, body) {
  res.writeHead(status, { ...PAGE_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function sendPage(req, res, path, session) {
  if (path === '/app/tenant') return req.method === 'POST' ? chooseTenant(req, res, session) : methodNotAllowed(req, res, 'POST');
  if (req.method !== 'GET' && req.method !== 'HEAD') return methodNotAllowed(req, res, 'GET, HEAD');
  if (path === '/app') return sendBody(req, res, 200, 'text/html; charset=utf-8', appPage(session));
  if (path === '/app/page.js') return sendBody(req, res, 200, 'text/javascript; charset=utf-8', PAGE_SCRIPT);
  return send(res, 404, { error: 'not_found', message: `${SERVICE} serves no ${path}` });
}

/** The form's fields, or null when the body is larger than any form of this page. */
async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 1024) return null;
  }
  return new URLSearchParams(body);
}

// POST /app/tenant (the form): keep the choice in the session, then send the browser back
// to /app, whose next X-Session carries it
async function chooseTenant(req, res, session) {
  const tenant = (await readForm(req))?.get('tenant');
  const html = 'text/html; charset=utf-8';
  if (!TENANTS.includes(tenant)) return sendBody(req, res, 400, html, appPage(session, `Choose one of ${TENANTS.join(', ')}.`));
  const refused = await writeSessionData(session.token, { tenant });
  if (refused) return sendBody(req, res, refused.status, html, appPage(session, `The tenant was not changed: ${refused.message}`));
  res.writeHead(303, { location: '/app', 'cache-control': 'no-store' });
  res.end();
}

/**
 * Writes keys of this route's namespace into the user's session: a PATCH to the gateway's
 * session data endpoint, authorised by the X-Session the gateway sent with this request
 * (it names the route and the session). Resolves null, or why the gateway refused.
 */
async function writeSessionData(xSession, values) {
  if (!DATA_URL) return { status: 503, message: 'SESSIONGATE_DATA_URL is not set, so this service cannot write to the session' };
  let answer;
  try {
    answer = await fetch(DATA_URL, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', 'x-session': xSession },
      body: JSON.stringify(values),
      signal: AbortSignal.timeout(5000),
    });
  } catch (err) {
    return { status: 502, message: `the session data endpoint did not answer (${err.cause?.code ?? err.message})` };
  }
  if (answer.ok) return null;
  // the gateway's JSON error says what is wrong (never the token): shown as it is
  const body = await answer.json().catch(() => ({}));
  return { status: answer.status, message: body.message ?? `the gateway answered ${answer.status}` };
}

async function handle(req, res) {
  const path = new URL(req.url ?? '/', 'http://upstream').pathname;
  if (path === '/healthz') return send(res, 200, { status: 'ok' });
  const route = ROUTES.find((r) => path === r.prefix || path.startsWith(`${r.prefix}/`));
  if (!route) return send(res, 404, { error: 'not_found', message: `${SERVICE} serves no ${path}` });

  let user = null;
  let tenant = null;
  const token = req.headers['x-session'];
  if (route.aud !== null) {
    if (typeof token !== 'string' || token === '') {
      return send(res, 401, { error: 'unauthenticated', message: 'X-Session is missing: call this service through the gateway' });
    }
    try {
      ({ user, tenant } = await verify(token, route.aud));
    } catch (err) {
      // the reason is safe to show (which check failed); the token never is
      return send(res, 401, { error: 'unauthenticated', message: `X-Session rejected: ${err.message}` });
    }
    // the gateway already enforced routes.yaml; a service may still check what it relies on
    if (route.role && !user.roles.includes(route.role)) {
      return send(res, 403, { error: 'forbidden', message: `needs the ${route.role} role` });
    }
  }

  if (route.page) return sendPage(req, res, path, { user, tenant, token });
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
