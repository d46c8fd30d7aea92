// Session data in the bench: the two routes that use it, the upstream that writes on every
// request, the data the reader route's sessions hold, and the checks that both routes do the
// whole job before they are measured.
import { createHmac, randomUUID } from 'node:crypto';
import path from 'node:path';
import { HERE, ROUTE_PREFIX, DATA_PREFIX, WRITE_PREFIX, WRITE_PATH } from './config.mjs';
import { log, sleep, freePort, startChild, jsonPort, DRIVER_CORE } from './proc.mjs';
import { SESSION_DATA_CLAIM, sessionRef, b64urlJson } from './checks.mjs';

export const DATA_ENDPOINT_PATH = '/_sessiongate/session-data';
const CONCURRENT_WRITES = 20;

/**
 * The upstream of the writing route: bench/upstream.mjs told where the gateway's session
 * data endpoint will listen (SESSION_DATA_PORT of the cache-on gateway, started after it).
 */
export async function startWriterUpstream() {
  const dataPort = await freePort();
  const { child, value } = await startChild('upstream-writer', DRIVER_CORE, process.execPath, [path.join(HERE, 'upstream.mjs')], {
    env: { SESSION_DATA_URL: `http://127.0.0.1:${dataPort}${DATA_ENDPOINT_PATH}` },
    ready: jsonPort,
  });
  return { child, port: value, url: `http://127.0.0.1:${value}`, dataPort };
}

/** routes.yaml entries: `cart` holds data its sessions carry in X-Session, `visits` is written on every request. */
export function dataRoutesYaml(upstreamUrl, writerUrl) {
  return (
    `  - name: cart\n    prefix: ${DATA_PREFIX}\n    upstream: ${upstreamUrl}\n    roles: [user]\n    sessionData: { namespace: cart }\n` +
    `  - name: visits\n    prefix: ${WRITE_PREFIX}\n    upstream: ${writerUrl}\n    roles: [user]\n    sessionData: { namespace: visits }\n`
  );
}

/** What a cart service might keep in a session: a tenant, a cart id, a count and a flag (~100 bytes). */
export function cartData() {
  return { tenant: 'acme-industries-eu', cartId: `c-${randomUUID()}`, items: 3, beta: true };
}

/** Resolves when the gateway's session data listener answers (it starts after /readyz does). */
async function dataListenerUp(dataPort) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${dataPort}${DATA_ENDPOINT_PATH}`, { method: 'PATCH', body: '{}' });
      await r.arrayBuffer();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`the session data endpoint (SESSION_DATA_PORT ${dataPort}) does not answer`);
      await sleep(100);
    }
  }
}

/** The X-Session the gateway forwards for `cookie` on `route` (its /_echo path). */
async function xSessionFor(gatewayPort, prefix, cookie) {
  const r = await fetch(`http://127.0.0.1:${gatewayPort}${prefix}/_echo`, { headers: { cookie } });
  if (r.status !== 200) {
    await r.arrayBuffer();
    throw Object.assign(new Error(`${prefix}/_echo answered ${r.status}`), { status: r.status });
  }
  return String((await r.json()).headers['x-session'] ?? '');
}

/**
 * Writes `cartData()` into every session of `sessions` the way a cart service would: a request
 * through the gateway on the `cart` route gives it an X-Session, which it PATCHes to the
 * session data endpoint with the data. Resolves the data written, by sub, and the namespace's
 * size as the endpoint reported it.
 */
export async function fillCartData(gatewayPort, dataPort, sessions) {
  await dataListenerUp(dataPort);
  const written = new Map();
  const sizes = [];
  for (let i = 0; i < sessions.length; i += CONCURRENT_WRITES) {
    await Promise.all(
      sessions.slice(i, i + CONCURRENT_WRITES).map(async (s) => {
        const data = cartData();
        // a 503 is the gateway failing closed on a Redis command slower than 1 s, which a
        // machine busy with other work can cause: this is set-up, not measured, so try again
        for (let attempt = 1; ; attempt++) {
          const xSession = await xSessionFor(gatewayPort, DATA_PREFIX, s.cookie).catch((err) => err);
          const r = typeof xSession === 'string'
            ? await fetch(`http://127.0.0.1:${dataPort}${DATA_ENDPOINT_PATH}`, {
                method: 'PATCH',
                headers: { 'x-session': xSession, 'content-type': 'application/json' },
                body: JSON.stringify(data),
              })
            : null;
          const status = r ? r.status : xSession.status;
          const answer = r ? await r.json() : { error: xSession.message };
          if (status === 200) {
            sizes.push(answer.bytes);
            break;
          }
          if (status !== 503 || attempt === 5) throw new Error(`session data write for ${s.sub}: ${status} ${JSON.stringify(answer)}`);
          await sleep(200 * attempt);
        }
        written.set(s.sub, data);
      }),
    );
  }
  const bytes = sizes.reduce((a, b) => a + b, 0) / Math.max(1, sizes.length);
  log(`session data: ${sessions.length} sessions hold ${bytes.toFixed(0)} bytes each in namespace cart, written through ${DATA_ENDPOINT_PATH}`);
  return { written, bytes };
}

/** JSON with keys in order at every level: Redis' Lua encoder keeps no key order. */
function sorted(v) {
  return JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a.localeCompare(b))) : x));
}

function verifiedClaims(jwt, secret) {
  const [h, p, sig] = jwt.split('.');
  if (!sig || createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url') !== sig) return null;
  return b64urlJson(p);
}

/**
 * The reader route forwards the session's data in a verified X-Session (and a route that
 * declares no namespace does not); a request on the writing route answers 200 and leaves
 * its key in the stored record.
 */
export async function checkSessionData({ gatewayPort, secret, redis, store, reader, written, writer }) {
  const problems = [];
  const onCart = verifiedClaims(await xSessionFor(gatewayPort, DATA_PREFIX, reader.cookie), secret);
  if (!onCart) problems.push('cart route: X-Session does not verify');
  else if (sorted(onCart[SESSION_DATA_CLAIM]) !== sorted({ cart: written.get(reader.sub) })) {
    problems.push(`cart route: ${SESSION_DATA_CLAIM} is ${JSON.stringify(onCart[SESSION_DATA_CLAIM])}, expected the cart data written`);
  }
  const onOrders = verifiedClaims(await xSessionFor(gatewayPort, ROUTE_PREFIX, reader.cookie), secret);
  if (!onOrders || SESSION_DATA_CLAIM in onOrders) problems.push(`orders route (no namespace): X-Session ${onOrders ? `carries ${SESSION_DATA_CLAIM}` : 'does not verify'}`);

  const key = store.keys.session(sessionRef(writer.cookie.slice('sid='.length)));
  const r = await fetch(`http://127.0.0.1:${gatewayPort}${WRITE_PATH}`, { headers: { cookie: writer.cookie } });
  const body = await r.text();
  if (r.status !== 200) problems.push(`visits route: ${r.status} ${body.slice(0, 200)}`);
  const stored = String((await redis.get(key)) ?? '');
  const nl = stored.indexOf('\n');
  const hits = nl < 0 ? undefined : JSON.parse(stored.slice(nl + 1)).visits?.hits;
  if (typeof hits !== 'number') problems.push(`visits route: the stored record holds no visits.hits after a request (${JSON.stringify(stored.slice(nl + 1))})`);
  if (problems.length) throw new Error(`session data does not work on the benchmark routes:\n  ${problems.join('\n  ')}`);
  log(`correctness: the cart route's X-Session carries ${SESSION_DATA_CLAIM}.cart as written, the orders route's none; a request on the visits route wrote visits.hits (${hits})`);
}
