// The benchmark's upstream: a plain node:http server with a tiny fixed answer, in its own
// process so it never competes inside a server under test. `/_echo` answers with the request
// headers it received, for the run's correctness check (cookie stripped, X-Session signed).
import http from 'node:http';

const BODY = Buffer.from('{"ok":true}');
const HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) };

const server = http.createServer((req, res) => {
  if (req.url?.endsWith('/_echo')) {
    const body = JSON.stringify({ url: req.url, headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
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
