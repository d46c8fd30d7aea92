// The benchmark's trace collector: accepts OTLP/HTTP exports on /v1/traces and drops them,
// so the tracing-on gateway pays for making and sending spans, not for a collector's work.
import http from 'node:http';

let spans = 0;
const server = http.createServer((req, res) => {
  let n = 0;
  req.on('data', (c) => (n += c.length));
  req.on('end', () => {
    if (n) spans++;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' });
    res.end('{}');
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
