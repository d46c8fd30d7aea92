// A reference point, not sessiongate: the forward-auth endpoint a team writes first for
// nginx auth_request. node:http, the `sid` cookie looked up with one Redis GET per request,
// 200 with an HMAC-signed identity header or 401; no cache, no route policy, no expiry
// refresh. It reads the sessions the benchmark writes for sessiongate (same key layout).
import { createHash, createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import { Redis } from 'ioredis';

const keyPrefix = process.env.KEY_PREFIX ?? 'sg:';
if (!process.env.REDIS_URL) {
  process.stderr.write('reference-authz: REDIS_URL is required\n');
  process.exit(2);
}

const redis = new Redis(process.env.REDIS_URL);
const secret = randomBytes(32);
const SID = /(?:^|;\s*)sid=([A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{4})(?:;|$)/;

// the session key of a token: `<prefix>s:{<user tag>}<sid>`, sid = SHA-256(token), 22 chars
function keyOf(token) {
  const sid = createHash('sha256').update(token).digest('base64url').slice(0, 22);
  return `${keyPrefix}s:{${token.slice(44)}}${sid}`;
}

const server = http.createServer(async (req, res) => {
  try {
    const token = SID.exec(req.headers.cookie ?? '')?.[1];
    const raw = token ? await redis.get(keyOf(token)) : null;
    // the record format, version 2: `{"sub":…,"2":["role role", createdAt ms, absolute timeout s, …]}`
    const stored = raw === null ? null : JSON.parse(raw);
    const record = stored && { sub: stored.sub, roles: stored[2][0].split(' '), absoluteExpiresAt: stored[2][1] + stored[2][2] * 1000 };
    if (!record || record.absoluteExpiresAt <= Date.now()) {
      res.writeHead(401, { 'cache-control': 'no-store', 'content-length': '0' });
      res.end();
      return;
    }
    const payload = Buffer.from(JSON.stringify({ sub: record.sub, roles: record.roles, exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url');
    const cookies = (req.headers.cookie ?? '').split(/;\s*/).filter((c) => c && !c.startsWith('sid=')).join('; ');
    res.writeHead(200, {
      'cache-control': 'no-store',
      'x-session': `${payload}.${createHmac('sha256', secret).update(payload).digest('base64url')}`,
      'x-sessiongate-cookie': cookies,
      'content-length': '0',
    });
    res.end();
  } catch {
    res.writeHead(503, { 'content-length': '0' });
    res.end();
  }
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => server.close(() => void redis.quit().then(() => process.exit(0))));
