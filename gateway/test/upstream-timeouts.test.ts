import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { routesYaml, startTestGateway, upstreamErrorCount, type TestGateway } from '../../test/support/gateway.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// A route's timeout, over real sockets: the longest wait for the upstream's head, counted
// from when the request body is all sent, and the longest silence between two chunks of its
// body. A body that keeps coming may take longer than that in all, a client that stops
// reading never makes the upstream time out, and an upstream that goes quiet mid-body is
// cut off and counted.

const TIMEOUT_MS = 400;

let up: Upstream;
let t: TestGateway;
let port: number;

beforeAll(async () => {
  up = await startUpstream('timed');
  const extra = `  - name: timed
    prefix: /timed
    upstream: ${up.url}
    auth: none
    timeout: ${TIMEOUT_MS}ms
`;
  t = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }, extra) });
  port = await t.listen();
});

afterAll(async () => {
  await t?.close();
  await up?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const timeouts = () => upstreamErrorCount(t, 'timed', 'timeout');

/** Sends raw request bytes on a socket of its own; resolves with every byte the gateway sent back, once it closed or answered `complete`. */
function exchange(write: (s: net.Socket) => void | Promise<void>, complete: (text: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => void Promise.resolve(write(s)).catch(reject));
    let text = '';
    s.on('data', (d) => {
      text += d.toString('latin1');
      if (complete(text)) {
        s.destroy();
        resolve(text);
      }
    });
    s.on('close', () => resolve(text));
    s.on('error', reject);
    s.setTimeout(10_000, () => reject(new Error('the gateway kept the connection open')));
  });
}

describe('route timeout', () => {
  it('lets a body run longer than the timeout in all while each chunk comes within it', async () => {
    const before = await timeouts();
    up.respond((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      let n = 0;
      const next = () => {
        res.write(`chunk ${n}\n`);
        if (++n < 6) setTimeout(next, TIMEOUT_MS / 2);
        else res.end('done\n');
      };
      next();
    });
    const started = Date.now();
    const res = await fetch(`http://127.0.0.1:${port}/timed/trickle`);
    const body = await res.text();
    expect(res.status).toBe(200);
    expect(body).toBe('chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\nchunk 5\ndone\n');
    // the whole body took more than twice the timeout
    expect(Date.now() - started).toBeGreaterThan(2 * TIMEOUT_MS);
    expect(await timeouts()).toBe(before);
  });

  it('cuts the body short when the upstream goes quiet for longer than the timeout, and counts it', async () => {
    const before = await timeouts();
    let upstreamClosed = false;
    up.respond((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
      res.write('the start');
      // then nothing, on a connection left open
      res.on('close', () => (upstreamClosed = true));
    });
    const raw = await exchange(
      (s) => void s.write('GET /timed/stall HTTP/1.1\r\nHost: gw\r\n\r\n'),
      () => false,
    );
    expect(raw).toMatch(/^HTTP\/1\.1 200 /);
    expect(raw.endsWith('the start')).toBe(true);
    expect(await timeouts()).toBe(before + 1);
    for (let i = 0; i < 50 && !upstreamClosed; i++) await sleep(20);
    expect(upstreamClosed).toBe(true);
  });

  it('waits for the head from when the request body is all sent, however long the upload took', async () => {
    const before = await timeouts();
    up.clear();
    up.respond((_req, res, rec) => {
      const body = `got ${rec.body.length}`;
      res.writeHead(201, { 'content-type': 'text/plain', 'content-length': String(body.length) });
      res.end(body);
    });
    const part = 'x'.repeat(100);
    const raw = await exchange(
      async (s) => {
        s.write(`POST /timed/upload HTTP/1.1\r\nHost: gw\r\nContent-Type: text/plain\r\nContent-Length: ${part.length * 5}\r\n\r\n`);
        // the upload alone takes twice the timeout
        for (let i = 0; i < 5; i++) {
          s.write(part);
          await sleep((2 * TIMEOUT_MS) / 5);
        }
      },
      (text) => text.endsWith('got 500'),
    );
    expect(raw).toMatch(/^HTTP\/1\.1 201 /);
    expect(raw.endsWith('got 500')).toBe(true);
    expect(up.last().body).toBe(part.repeat(5));
    expect(await timeouts()).toBe(before);
  });

  it('never times out the upstream while the client is the one not reading', async () => {
    const before = await timeouts();
    const chunk = Buffer.alloc(64 * 1024, 'y');
    const total = 16 * 1024 * 1024;
    up.respond((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
      let written = 0;
      const pump = () => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/timed/big', agent: false }, resolve).on('error', reject);
    });
    expect(res.statusCode).toBe(200);
    res.pause();
    // more than twice the timeout without reading a byte
    await sleep(2.5 * TIMEOUT_MS);
    let bytes = 0;
    res.on('data', (c: Buffer) => (bytes += c.length));
    res.resume();
    await new Promise((resolve, reject) => {
      res.on('end', resolve);
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('the response was cut short')));
    });
    expect(bytes).toBe(total);
    expect(await timeouts()).toBe(before);
  });
});
