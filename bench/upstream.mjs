// The benchmark's upstream: a plain node:http server with a tiny fixed answer, in its own
// process so it never competes inside a server under test. `/_echo` answers with the request
// headers it received, for the run's correctness check (cookie stripped, X-Session signed).
//
// With SESSION_DATA_URL set (the gateway's session data endpoint) it is the upstream of the
// writing route: before answering each request it PATCHes that endpoint with the X-Session
// the gateway sent, changing one key of the session's data, as a service that counts visits
// or stamps "last seen" would. A write the gateway refuses turns into a 502, so the bench
// sees it as a non-2xx answer.
import http from 'node:http';

const BODY = Buffer.from('{"ok":true}');
const HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) };
const DATA_URL = process.env.SESSION_DATA_URL?.trim() ? new URL(process.env.SESSION_DATA_URL.trim()) : null;
// one keep-alive connection per request in flight, reused: no connection set-up per write
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
let hits = 0;

function fail(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** PATCHes one key of the session's data; calls back with the endpoint's status (0: no answer). */
function writeData(xSession, done) {
  const body = JSON.stringify({ hits: ++hits });
  const req = http.request(
    {
      agent,
      host: DATA_URL.hostname,
      port: DATA_URL.port,
      path: DATA_URL.pathname,
      method: 'PATCH',
      headers: { 'x-session': xSession, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    },
    (r) => {
      r.resume();
      r.on('end', () => done(r.statusCode));
    },
  );
  req.on('error', () => done(0));
  req.end(body);
}

const server = http.createServer((req, res) => {
  if (req.url?.endsWith('/_echo')) {
    const body = JSON.stringify({ url: req.url, headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  if (DATA_URL) {
    const xSession = req.headers['x-session'];
    if (typeof xSession !== 'string') return fail(res, 400, '{"error":"no X-Session"}');
    // the request's own body, if any, is not needed: drain it so the connection stays usable
    req.resume();
    writeData(xSession, (status) => {
      if (status !== 200) return fail(res, 502, JSON.stringify({ error: 'session data write failed', status }));
      res.writeHead(200, HEADERS);
      res.end(BODY);
    });
    return;
  }
  res.writeHead(200, HEADERS);
  res.end(BODY);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
