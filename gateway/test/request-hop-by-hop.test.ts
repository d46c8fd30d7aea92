import net from 'node:net';
import { beforeEach, describe, expect, it } from 'vitest';
import { usePublicGateway } from '../../test/support/gateway.js';
import { rawRequest } from '../../test/support/raw-http.js';
import { headerValues } from '../../test/support/upstream.js';

// Request headers about the client's own connection (Expect, Keep-Alive, Proxy-Connection,
// TE, and an Upgrade without Connection: upgrade) are the gateway's to handle, not the
// upstream's: the request goes through without them, never as a 502.

const g = usePublicGateway();

beforeEach(() => g.up.clear());

/**
 * An upload the way curl sends one: the head with `Expect: 100-continue`, the body only
 * after the interim `100 Continue`. Resolves the interim and final responses as text.
 */
function uploadWithContinue(target: string, body: string): Promise<{ interim: string; final: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(g.port, '127.0.0.1');
    let got = '';
    let interim = '';
    socket.on('error', reject);
    socket.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      if (!interim && got.startsWith('HTTP/1.1 100') && got.includes('\r\n\r\n')) {
        const end = got.indexOf('\r\n\r\n') + 4;
        interim = got.slice(0, end);
        got = got.slice(end);
        socket.write(body);
      }
    });
    socket.on('end', () => resolve({ interim, final: got }));
    socket.write(
      `POST ${target} HTTP/1.1\r\nHost: 127.0.0.1:${g.port}\r\nContent-Type: text/plain\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
    );
  });
}

describe('connection-level request headers on plain requests', () => {
  it('answers Expect: 100-continue itself and forwards the upload without it', async () => {
    const body = 'x'.repeat(100_000);
    const { interim, final } = await uploadWithContinue('/public/upload', body);
    expect(interim).toMatch(/^HTTP\/1\.1 100 Continue\r\n/);
    expect(final).toMatch(/^HTTP\/1\.1 200 /);
    expect(JSON.parse(final.slice(final.indexOf('\r\n\r\n') + 4))).toEqual({ upstream: 'svc', method: 'POST', url: '/public/upload' });
    expect(g.up.last().body).toBe(body);
    expect(headerValues(g.up.last(), 'expect')).toEqual([]);
  });

  it('forwards a request with a stray Keep-Alive, Proxy-Connection or TE header without them', async () => {
    for (const header of [['Keep-Alive', 'timeout=5, max=100'], ['Proxy-Connection', 'keep-alive'], ['TE', 'trailers']] as [string, string][]) {
      g.up.clear();
      const res = await rawRequest(g.port, { target: '/public/x', headers: [header] });
      expect(res.status, `${header[0]}: ${res.body}`).toBe(200);
      expect(res.json()).toEqual({ upstream: 'svc', method: 'GET', url: '/public/x' });
      expect(headerValues(g.up.last(), header[0])).toEqual([]);
    }
  });

  it('forwards a request with Upgrade but no Connection: upgrade as a plain request, without Upgrade', async () => {
    const res = await rawRequest(g.port, { method: 'POST', target: '/public/x', headers: [['Upgrade', 'websocket'], ['Content-Type', 'text/plain']], body: 'hi' });
    expect(res.status, res.body).toBe(200);
    expect(res.json()).toEqual({ upstream: 'svc', method: 'POST', url: '/public/x' });
    expect(g.up.last().body).toBe('hi');
    expect(headerValues(g.up.last(), 'upgrade')).toEqual([]);
  });
});
