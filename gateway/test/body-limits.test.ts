import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { rawRequest } from '../../test/support/raw-http.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// Per-route body limits, enforced before the body is read when its length is declared and
// on the stream when it is not (chunked); bodies within the limit pass byte for byte; an
// oversized request head is refused by the HTTP parser without harm to the process.

const LIMIT = 1024;

/** What a byte-counting upstream saw of one request. */
interface Seen {
  url: string;
  headers: http.IncomingHttpHeaders;
  /** Bytes received so far (also for requests that never completed). */
  bytes: Buffer[];
  complete: boolean;
}

let seen: Seen[];
let bytesUp: http.Server;
let bytesUrl: string;
let up: Upstream;
let t: TestGateway;
let port: number;

beforeAll(async () => {
  seen = [];
  // an upstream that keeps bodies as bytes, including what arrives of an aborted one
  bytesUp = http.createServer((req, res) => {
    const s: Seen = { url: req.url ?? '', headers: req.headers, bytes: [], complete: false };
    seen.push(s);
    req.on('data', (c: Buffer) => s.bytes.push(c));
    req.on('end', () => {
      s.complete = true;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ received: Buffer.concat(s.bytes).length }));
    });
    req.on('error', () => undefined);
  });
  await new Promise<void>((r) => bytesUp.listen(0, '127.0.0.1', r));
  bytesUrl = `http://127.0.0.1:${(bytesUp.address() as net.AddressInfo).port}`;
  up = await startUpstream('svc');
  const extra = `  - name: upload
    prefix: /upload
    upstream: ${bytesUrl}
    auth: none
    bodyLimit: ${LIMIT}
`;
  t = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }, extra) });
  port = await t.listen();
});

afterAll(async () => {
  await t?.close();
  await up?.close();
  bytesUp?.closeAllConnections();
  await new Promise<void>((r) => (bytesUp ? bytesUp.close(() => r()) : r()));
});

beforeEach(() => {
  seen.length = 0;
});

const bodyOf = (s: Seen) => Buffer.concat(s.bytes);

interface WireResponse {
  status: number;
  head: string;
  body: string;
  /** The gateway ended the connection (rather than the client giving up waiting). */
  closedByGateway: boolean;
}

/**
 * Writes a request head, then each chunk after `gapMs` (chunked encoding when
 * `chunked`), and reads the response until the gateway closes the connection or `idleMs`
 * pass without a byte. Writes after the gateway hung up are ignored.
 */
function wireRequest(o: { head: string; chunks?: Buffer[]; chunked?: boolean; gapMs?: number; idleMs?: number }): Promise<WireResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    let idle: NodeJS.Timeout | undefined;
    let closedByGateway = false;
    const finish = () => {
      clearTimeout(idle);
      socket.destroy();
      const text = Buffer.concat(got).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      if (split < 0) return reject(new Error(`no response: ${JSON.stringify(text.slice(0, 200))}`));
      resolve({ status: Number(text.slice(9, 12)), head: text.slice(0, split), body: text.slice(split + 4), closedByGateway });
    };
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(finish, o.idleMs ?? 2000);
    };
    socket.on('data', (c: Buffer) => {
      got.push(c);
      armIdle();
    });
    socket.on('error', () => undefined);
    socket.on('end', () => {
      closedByGateway = true;
      finish();
    });
    socket.on('close', () => {
      closedByGateway = true;
      finish();
    });
    socket.write(o.head);
    armIdle();
    void (async () => {
      for (const c of o.chunks ?? []) {
        await new Promise((r) => setTimeout(r, o.gapMs ?? 0));
        if (socket.destroyed || !socket.writable) return;
        socket.write(o.chunked ? Buffer.concat([Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')]) : c);
      }
      if (o.chunked && socket.writable) socket.write('0\r\n\r\n');
    })();
  });
}

describe('body limits', () => {
  it('refuses a declared Content-Length over the limit with 413, forwarding nothing', async () => {
    const res = await t.gw.app.inject({ method: 'POST', url: '/upload/a', headers: { 'content-type': 'application/octet-stream' }, payload: randomBytes(2 * LIMIT) });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toEqual({ error: 'payload_too_large', message: expect.any(String) });
    // and on a real socket, where the client sends its body anyway
    const wire = await wireRequest({
      head: `POST /upload/b HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${2 * LIMIT}\r\n\r\n`,
      chunks: [randomBytes(2 * LIMIT)],
    });
    expect(wire.status).toBe(413);
    expect(JSON.parse(wire.body)).toMatchObject({ error: 'payload_too_large' });
    // the unread body makes the connection useless for another request: it is closed
    expect(wire.head).toMatch(/^connection: close$/im);
    expect(wire.closedByGateway).toBe(true);
    expect(seen).toEqual([]);
  });

  it('refuses a chunked body that grows past the limit with 413; the upstream never gets more than the limit nor a complete request', async () => {
    const chunks = Array.from({ length: 6 }, () => randomBytes(400));
    const res = await wireRequest({
      head: 'POST /upload/c HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n',
      chunks,
      chunked: true,
      gapMs: 30,
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toEqual({ error: 'payload_too_large', message: expect.any(String) });
    expect(res.head).toMatch(/^connection: close$/im);
    expect(res.closedByGateway).toBe(true);
    // the body streams (nothing is buffered), so the upstream saw the start of it, cut off
    // before the limit, and never a complete request to act on
    expect(seen).toHaveLength(1);
    expect(seen[0]!.complete).toBe(false);
    expect(bodyOf(seen[0]!).length).toBeLessThanOrEqual(LIMIT);
    expect(bodyOf(seen[0]!).equals(Buffer.concat(chunks).subarray(0, bodyOf(seen[0]!).length))).toBe(true);
  });

  it('passes a chunked body within the limit, byte for byte', async () => {
    const chunks = [randomBytes(300), randomBytes(300), randomBytes(LIMIT - 600)];
    const res = await wireRequest({
      head: 'POST /upload/d HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n',
      chunks,
      chunked: true,
      gapMs: 10,
    });
    expect(res.status).toBe(200);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.complete).toBe(true);
    expect(bodyOf(seen[0]!).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('forwards JSON and binary bodies under the limit byte-exact, with their content type', async () => {
    const json = JSON.stringify({ name: 'Zoë', emoji: '🔐', n: [1, 2, 3], pad: 'x'.repeat(200) });
    const a = await t.gw.app.inject({ method: 'POST', url: '/upload/json', headers: { 'content-type': 'application/json; charset=utf-8' }, payload: json });
    expect(a.statusCode).toBe(200);
    const binary = randomBytes(LIMIT);
    const b = await t.gw.app.inject({ method: 'PUT', url: '/upload/bin', headers: { 'content-type': 'application/octet-stream' }, payload: binary });
    expect(b.statusCode).toBe(200);
    expect(seen.map((s) => s.url)).toEqual(['/upload/json', '/upload/bin']);
    const [j, bin] = seen as [Seen, Seen];
    expect(j.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(bodyOf(j).equals(Buffer.from(json, 'utf8'))).toBe(true);
    expect(j.headers['content-length']).toBe(String(Buffer.byteLength(json)));
    expect(bin.headers['content-type']).toBe('application/octet-stream');
    expect(bodyOf(bin).equals(binary)).toBe(true);
    // a content type the gateway has never heard of passes as well: it parses no body
    const c = await t.gw.app.inject({ method: 'POST', url: '/upload/odd', headers: { 'content-type': 'application/x-made-up' }, payload: 'odd' });
    expect(c.statusCode).toBe(200);
    expect(seen[2]!.headers['content-type']).toBe('application/x-made-up');
    expect(bodyOf(seen[2]!).toString()).toBe('odd');
  });

  it('answers 431 to a request head over 16 KiB and keeps serving', async () => {
    const res = await rawRequest(port, { target: '/public/x', headers: [['X-Big', 'a'.repeat(17 * 1024)]] });
    expect(res.status).toBe(431);
    expect(res.json()).toEqual({ error: 'request_header_fields_too_large', message: expect.any(String) });
    expect(res.body).not.toContain('aaaa');
    // the process is fine and so is the next client
    const ok = await rawRequest(port, { target: '/public/x' });
    expect(ok.status).toBe(200);
    expect(up.last().url).toBe('/public/x');
  });
});
