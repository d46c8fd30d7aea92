import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { upstreamErrorCount, usePublicGateway } from '../../test/support/gateway.js';

// How answers stream from an upstream to the client, over real sockets: once and as sent
// (no retry of a 503), with backpressure from a client that stops reading back to the
// upstream, the upstream request abandoned when the client goes away, and a body cut short
// by the upstream cut short for the client too, counted.

const g = usePublicGateway();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const upstreamErrors = (kind: string) => upstreamErrorCount(g.t, 'public', kind);

/** A GET through the gateway on a socket of its own; the response is handed over unread. */
function get(path: string): Promise<{ res: http.IncomingMessage; req: http.ClientRequest }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: g.port, path, agent: false }, (res) => resolve({ res, req }));
    req.on('error', reject);
  });
}

describe('answers streamed from the upstream', () => {
  it("passes an upstream's 503 through as it came, asking the upstream once", async () => {
    g.up.clear();
    g.up.respond((_req, res) => {
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' });
      res.end('busy');
    });
    const res = await fetch(`http://127.0.0.1:${g.port}/public/busy`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(await res.text()).toBe('busy');
    // a retry could send a request twice to an upstream that did act on it
    await sleep(300);
    expect(g.up.received.map((r) => r.url)).toEqual(['/public/busy']);
  });

  it('holds the upstream back while the client does not read, and delivers every byte', async () => {
    const chunk = randomBytes(64 * 1024);
    const total = 64 * 1024 * 1024;
    let written = 0;
    let writtenWhenBlocked = -1;
    const sent = createHash('sha256');
    g.up.respond((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
      const pump = () => {
        while (written < total) {
          written += chunk.length;
          sent.update(chunk);
          if (!res.write(chunk)) {
            if (writtenWhenBlocked < 0) writtenWhenBlocked = written;
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const { res } = await get('/public/big');
    expect(res.statusCode).toBe(200);
    res.pause();
    // the client reads nothing for a while: the upstream must be made to wait
    await sleep(500);
    const beforeReading = written;
    expect(writtenWhenBlocked).toBeGreaterThan(0);
    expect(beforeReading).toBeLessThan(total / 2);
    const got = createHash('sha256');
    let bytes = 0;
    res.on('data', (c: Buffer) => {
      bytes += c.length;
      got.update(c);
    });
    res.resume();
    await new Promise((r) => res.on('end', r));
    expect(bytes).toBe(total);
    expect(got.digest('hex')).toBe(sent.digest('hex'));
  });

  it('lets go of the upstream request when the client goes away', async () => {
    let upstreamClosed = false;
    let writes = 0;
    g.up.respond((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const timer = setInterval(() => {
        writes++;
        res.write('tick\n');
      }, 20);
      res.on('close', () => {
        upstreamClosed = true;
        clearInterval(timer);
      });
    });
    const { res, req } = await get('/public/endless');
    await new Promise((r) => res.once('data', r));
    req.destroy();
    for (let i = 0; i < 100 && !upstreamClosed; i++) await sleep(20);
    expect(upstreamClosed).toBe(true);
    const after = writes;
    await sleep(200);
    expect(writes).toBe(after);
  });

  it('answers 502 for a status code no HTTP/1.1 client may be sent, and counts it', async () => {
    const before = await upstreamErrors('other');
    g.up.respond((_req, res) => {
      // the raw bytes of an answer Node's own server would refuse to write
      res.socket!.end('HTTP/1.1 600 Odd\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi');
    });
    const res = await fetch(`http://127.0.0.1:${g.port}/public/odd`);
    expect(res.status).toBe(502);
    expect(await res.json()).toEqual({ error: 'upstream_unavailable', message: expect.any(String) });
    expect(await upstreamErrors('other')).toBe(before + 1);
  });

  it('cuts the response short when the upstream breaks off after its head, and counts it', async () => {
    const before = (await upstreamErrors('reset')) + (await upstreamErrors('other'));
    g.up.respond((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
      res.write('only part of it');
      setTimeout(() => res.socket?.destroy(), 50);
    });
    // the raw bytes: the head and the part, then the gateway closes instead of finishing
    const raw = await new Promise<string>((resolve, reject) => {
      const s = net.connect(g.port, '127.0.0.1', () => s.write('GET /public/cut HTTP/1.1\r\nHost: gw\r\n\r\n'));
      let text = '';
      s.on('data', (d) => (text += d.toString('latin1')));
      s.on('close', () => resolve(text));
      s.on('error', reject);
      s.setTimeout(5000, () => reject(new Error('the gateway kept the connection open')));
    });
    expect(raw).toMatch(/^HTTP\/1\.1 200 /);
    expect(raw).toMatch(/\r\ncontent-length: 1000\r\n/i);
    expect(raw.endsWith('only part of it')).toBe(true);
    expect((await upstreamErrors('reset')) + (await upstreamErrors('other'))).toBe(before + 1);
  });
});
