// The baseline every ratio is measured against: fastify + @fastify/http-proxy to the
// upstream, nothing else (no auth, no logging), exactly what "a plain proxy" means.
import Fastify from 'fastify';
import httpProxy from '@fastify/http-proxy';

const upstream = process.env.UPSTREAM;
const prefix = process.env.PREFIX ?? '/api/orders';
if (!upstream) {
  process.stderr.write('baseline: UPSTREAM is required\n');
  process.exit(2);
}

const app = Fastify({ logger: false });
await app.register(httpProxy, { upstream, prefix, rewritePrefix: prefix });
const address = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) });
process.stdout.write(`${JSON.stringify({ port: Number(new URL(address).port) })}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
