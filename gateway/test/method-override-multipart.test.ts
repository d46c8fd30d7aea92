import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { rawRequest } from '../../test/support/raw-http.js';

// A multipart part named `_method` is a method override to Rack, Laravel and Symfony just
// like a urlencoded one. The scan streams: the upstream here records every request it saw
// begin, how many body bytes reached it, and whether the body ever completed (the point at
// which a framework would parse it and run the handler).

interface Seen {
  url: string;
  contentLength: number;
  bytes: Buffer;
  complete: boolean;
  handled: boolean;
}

let seen: Seen[];
let upstream: http.Server;
let upUrl: string;
let t: TestGateway;
let port: number;
let alice: string;

const EXTRA = `  - name: uploads
    prefix: /uploads
    upstream: UP
    roles: [user]
    bodyLimit: 16777216
    methods:
      DELETE: { roles: [admin] }
  - name: legacy
    prefix: /legacy
    upstream: UP
    roles: [user]
    methodOverride: allow
    methods:
      DELETE: { roles: [admin] }
`;

beforeAll(async () => {
  seen = [];
  upstream = http.createServer((req, res) => {
    const s: Seen = { url: req.url ?? '', contentLength: Number(req.headers['content-length'] ?? -1), bytes: Buffer.alloc(0), complete: false, handled: false };
    seen.push(s);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      chunks.push(c);
      s.bytes = Buffer.concat(chunks);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      // Node emits 'end' only for a body that arrived whole (Content-Length or the last chunk)
      s.complete = true;
      s.handled = true;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ method: req.method, sha256: createHash('sha256').update(s.bytes).digest('hex') }));
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  t = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: upUrl }, EXTRA.replaceAll('UP', upUrl)) });
  port = await t.listen();
  alice = await t.login('alice', ['user']);
});

afterAll(async () => {
  await t?.close();
  upstream?.closeAllConnections();
  await new Promise<void>((resolve) => upstream?.close(() => resolve()));
});

beforeEach(() => {
  seen.length = 0;
});

const B = 'xYz-Boundary-42';
const CT: [string, string] = ['Content-Type', `multipart/form-data; boundary=${B}`];

function part(head: string, value: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from(`--${B}\r\n${head}\r\n\r\n`, 'latin1'), Buffer.from(value), Buffer.from('\r\n')]);
}
const field = (name: string, value: string) => part(`Content-Disposition: form-data; name="${name}"`, value);
const close = Buffer.from(`--${B}--\r\n`);

function send(method: string, target: string, o: { headers?: [string, string][]; body?: string } = {}) {
  const headers: [string, string][] = [['Sec-Fetch-Site', 'same-origin'], ['Cookie', `sid=${alice}`], ...(o.headers ?? [])];
  return rawRequest(port, { method, target, headers, body: o.body });
}

/** A POST whose body is written piece by piece, each after the gateway has had time to pass the last one on. */
function streamed(target: string, pieces: Buffer[], headers: Record<string, string>, pauseMs = 60): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`http://127.0.0.1:${port}${target}`, { method: 'POST', headers: { 'sec-fetch-site': 'same-origin', cookie: `sid=${alice}`, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    void (async () => {
      for (const p of pieces) {
        if (req.destroyed) return;
        req.write(p);
        await new Promise((r) => setTimeout(r, pauseMs));
      }
      req.end();
    })();
  });
}

const until = async (check: () => boolean, ms = 3000) => {
  for (const end = Date.now() + ms; !check() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
};

describe('_method in multipart bodies', () => {
  it('refuses a part named _method in any spelling a framework reads, and no upstream handler runs', async () => {
    const heads = [
      'Content-Disposition: form-data; name="_method"',
      'Content-Disposition: form-data; name=_method',
      'content-disposition: FORM-DATA; NAME="_METHOD"',
      `Content-Disposition: form-data; name*=UTF-8''%5Fmethod`,
      'Content-Disposition: form-data; name="[_method]"',
      'Content-Disposition: form-data; name="_method[]"',
      "Content-Disposition: form-data; name='_method'",
      'Content-Disposition: form-data; name="_meth\\od"',
      'Content-Disposition: form-data; name=" _method"',
      'Content-Disposition: form-data; filename="a; name=_method"; name="x"',
      'Content-Disposition: form-data;\r\n name="_method"',
      'Content-Type: text/plain\r\nContent-ID: _method',
    ];
    for (const head of heads) {
      const body = Buffer.concat([field('title', 'x'), part(head, 'DELETE'), close]).toString('latin1');
      const res = await send('POST', '/uploads/1', { headers: [CT], body });
      expect(res.status, head).toBe(400);
      expect(res.json().error, head).toBe('method_override_refused');
      expect(res.json().message).toMatch(/_method parameter \(in the request body\) is refused/);
    }
    await until(() => false, 200);
    expect(seen.filter((s) => s.handled)).toEqual([]);
  });

  it('finds a _method part split across chunks, mid-upload, and aborts the upstream request before its body completes', async () => {
    const file = randomBytes(3 * 1024 * 1024);
    const body = Buffer.concat([part('Content-Disposition: form-data; name="file"; filename="a.bin"\r\nContent-Type: application/octet-stream', file), field('_method', 'DELETE'), close]);
    // cut inside the delimiter and inside the name, after most of the file went on
    const delim = body.indexOf(`--${B}`, 100);
    const name = body.indexOf('_method');
    const cuts = [0, 1024 * 1024, 2 * 1024 * 1024, delim + 5, name + 3, name + 6, body.length];
    const pieces = cuts.slice(1).map((end, i) => body.subarray(cuts[i]!, end));
    const res = await streamed('/uploads/1', pieces, { 'content-type': `multipart/form-data; boundary=${B}`, 'content-length': String(body.length) });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error).toBe('method_override_refused');
    await until(() => seen.length > 0 && seen[0]!.bytes.length > 0);
    // the upload streamed to the upstream, which never got a whole body nor ran its handler
    expect(seen).toHaveLength(1);
    expect(seen[0]!.bytes.length).toBeGreaterThan(1024 * 1024);
    expect(seen[0]!.bytes.length).toBeLessThan(name);
    expect(seen[0]!.complete).toBe(false);
    expect(seen[0]!.handled).toBe(false);
  });

  it('does the same for a chunked body with no Content-Length', async () => {
    const body = Buffer.concat([field('a', 'b'.repeat(100_000)), field('_method', 'DELETE'), close]);
    const name = body.indexOf('_method');
    const pieces = [body.subarray(0, name + 2), body.subarray(name + 2)];
    const res = await streamed('/uploads/1', pieces, { 'content-type': `multipart/form-data; boundary="${B}"` });
    expect(res.status).toBe(400);
    await until(() => false, 200);
    expect(seen.filter((s) => s.complete)).toEqual([]);
  });

  it('passes a several-MB upload through unchanged, byte for byte, even with _method in file names and contents', async () => {
    const file = randomBytes(6 * 1024 * 1024);
    // a Rails view uploaded as a file is content, not a part head
    const view = '<form><input type="hidden" name="_method" value="delete"></form>\r\n\r\n--not-the-boundary\r\nname="_method"';
    const body = Buffer.concat([
      field('title', 'x_method _methodical'),
      part('Content-Disposition: form-data; name="view"; filename="_method.html.erb"\r\nContent-Type: text/html', view),
      part('Content-Disposition: form-data; name="file"; filename="method.bin"\r\nContent-Type: application/octet-stream', file),
      field('my_method', 'DELETE'),
      close,
    ]);
    const pieces: Buffer[] = [];
    for (let i = 0; i < body.length; i += 256 * 1024 + 7) pieces.push(body.subarray(i, i + 256 * 1024 + 7));
    const res = await streamed('/uploads/1', pieces, { 'content-type': `multipart/form-data; boundary=${B}`, 'content-length': String(body.length) }, 5);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ method: 'POST', sha256: createHash('sha256').update(body).digest('hex') });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.bytes.equals(body)).toBe(true);
  });

  it('passes multipart _method through on a route with methodOverride: allow', async () => {
    const body = Buffer.concat([field('_method', 'DELETE'), close]).toString('latin1');
    const res = await send('POST', '/legacy/x', { headers: [CT], body });
    expect(res.status).toBe(200);
    expect(seen.at(-1)!.bytes.toString('latin1')).toBe(body);
  });

  it('refuses a multipart body without one clear boundary, and part heads past the limit', async () => {
    const body = Buffer.concat([field('_method', 'DELETE'), close]).toString('latin1');
    for (const type of ['multipart/form-data', `multipart/form-data; boundary=${B}; boundary=other`, `multipart/form-data; x="boundary=${B}"; boundary=other`, 'multipart/form-data; boundary=', `multipart/mixed; boundary= ${B}`]) {
      const res = await send('POST', '/uploads/1', { headers: [['Content-Type', type]], body });
      expect(res.status, type).toBe(400);
      expect(res.json().error, type).toBe('form_body_unreadable');
      expect(res.json().message).toMatch(/exactly one boundary/);
    }
    const long = Buffer.concat([part(`Content-Disposition: form-data; name="a"\r\nX-Pad: ${'p'.repeat(20_000)}`, 'v'), close]).toString('latin1');
    const res = await send('POST', '/uploads/1', { headers: [CT], body: long });
    expect(res.status).toBe(400);
    expect(res.json().message).toMatch(/header lines exceed 16384 bytes/);
    expect(seen.filter((s) => s.complete)).toEqual([]);
  });
});

describe('compressed form bodies', () => {
  it('refuses a urlencoded or multipart body with a Content-Encoding on a refuse route', async () => {
    const form = gzipSync('_method=DELETE').toString('latin1');
    for (const [type, enc] of [['application/x-www-form-urlencoded', 'gzip'], [`multipart/form-data; boundary=${B}`, 'deflate'], [`multipart/form-data; boundary=${B}`, 'BR'], [undefined, 'gzip']] as const) {
      const headers: [string, string][] = [['Content-Encoding', enc]];
      if (type) headers.push(['Content-Type', type]);
      const res = await send('POST', '/uploads/1', { headers, body: form });
      expect(res.status, `${type} ${enc}`).toBe(400);
      expect(res.json().error).toBe('form_body_unreadable');
      expect(res.json().message).toMatch(/Content-Encoding .* cannot be checked for a _method parameter/);
    }
    expect(seen).toEqual([]);
    // other bodies, identity, and routes that allow overrides are not concerned
    expect((await send('POST', '/uploads/1', { headers: [['Content-Type', 'application/json'], ['Content-Encoding', 'gzip']], body: form })).status).toBe(200);
    expect((await send('POST', '/uploads/1', { headers: [['Content-Type', 'application/x-www-form-urlencoded'], ['Content-Encoding', 'identity']], body: 'a=1' })).status).toBe(200);
    expect((await send('POST', '/legacy/x', { headers: [['Content-Type', 'application/x-www-form-urlencoded'], ['Content-Encoding', 'gzip']], body: form })).status).toBe(200);
  });
});

describe('bracketed names', () => {
  it('refuses [_method], which Rack 2 reads as _method, in the query and a form body', async () => {
    expect((await send('POST', '/uploads/1?%5B_method%5D=DELETE')).json().error).toBe('method_override_refused');
    expect((await send('POST', '/uploads/1', { headers: [['Content-Type', 'application/x-www-form-urlencoded']], body: '[_method]=DELETE' })).json().error).toBe('method_override_refused');
    expect(seen).toEqual([]);
  });
});
