import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import type { GateState } from '../gateway.js';
import { upstreamRequestHeaders, type ForwardContext } from './headers.js';

export interface UpgradeProxyOptions {
  admit(raw: IncomingMessage): Promise<GateState>;
  forward(g: GateState, raw: IncomingMessage): { url: string; query: string; headers: ForwardContext };
  log: FastifyBaseLogger;
  onRejected(err: { code?: string; statusCode?: number; message?: string }): { statusCode: number; body: object };
}

function writeError(socket: Duplex, statusCode: number, body: object): void {
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${statusCode} ${http.STATUS_CODES[statusCode] ?? 'Error'}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\nConnection: close\r\n' +
      `Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
  );
}

/** Response headers of a declined upgrade that are the gateway's to set, or never relayed. */
const NOT_RELAYED = /^(connection|keep-alive|proxy-connection|transfer-encoding|te|trailer|upgrade|set-cookie)$/i;

function hopByHopListed(headers: http.IncomingHttpHeaders): string[] {
  const c = headers.connection;
  return c ? c.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean) : [];
}

/**
 * Proxies upgrade requests (WebSocket) after the same gate as plain requests: the session
 * cookie is stripped and X-Session added on the upgrade request; after the upstream's 101
 * the two sockets are joined.
 */
export class UpgradeProxy {
  private readonly sockets = new Set<Duplex>();

  constructor(private readonly opts: UpgradeProxyOptions) {}

  readonly handle = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    void this.run(req, socket, head);
  };

  private async run(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    let g: GateState;
    try {
      if (req.method !== 'GET') throw Object.assign(new Error('Upgrades must use GET'), { statusCode: 405, code: 'SG_ERR_METHOD_NOT_ALLOWED' });
      g = await this.opts.admit(req);
    } catch (err) {
      const { statusCode, body } = this.opts.onRejected(err as { code?: string; statusCode?: number });
      writeError(socket, statusCode, body);
      return;
    }
    const fwd = this.opts.forward(g, req);
    const headers: http.IncomingHttpHeaders = { ...req.headers };
    // a client's Connection list may name hop-by-hop headers, never the gateway's own
    for (const name of hopByHopListed(headers)) if (name !== 'upgrade') delete headers[name];
    upstreamRequestHeaders(headers, fwd.headers);
    headers.connection = 'Upgrade';
    headers.upgrade = req.headers.upgrade;
    const target = new URL(fwd.url);
    const pathWithQuery = target.pathname + fwd.query;
    headers.host = target.host;
    const client = target.protocol === 'https:' ? https : http;
    const upReq = client.request({ protocol: target.protocol, hostname: target.hostname, port: target.port, path: pathWithQuery, method: 'GET', headers, timeout: g.route.timeout });
    upReq.on('timeout', () => upReq.destroy(Object.assign(new Error('upstream timeout'), { code: 'ETIMEDOUT' })));
    upReq.on('error', (err: Error & { code?: string }) => {
      this.opts.log.warn({ route: g.route.name, code: err.code }, 'upstream upgrade failed');
      const timeout = err.code === 'ETIMEDOUT';
      writeError(socket, timeout ? 504 : 502, {
        error: timeout ? 'upstream_timeout' : 'upstream_unavailable',
        message: timeout ? 'The upstream service did not answer in time' : 'The upstream service is unavailable',
      });
    });
    upReq.on('response', (res) => {
      // the upstream declined to switch protocols: relay its answer, delimited by the end of
      // the connection, without its hop-by-hop headers and, as after a 101, without cookies
      // (an upgrade never reaches the auth route's login)
      const listed = new Set(hopByHopListed(res.headers));
      let headText = `HTTP/1.1 ${res.statusCode} ${res.statusMessage}\r\n`;
      for (let i = 0; i < res.rawHeaders.length; i += 2) {
        const k = res.rawHeaders[i]!;
        if (NOT_RELAYED.test(k) || listed.has(k.toLowerCase())) continue;
        headText += `${k}: ${res.rawHeaders[i + 1]}\r\n`;
      }
      socket.write(`${headText}Connection: close\r\n\r\n`);
      res.pipe(socket);
    });
    upReq.on('upgrade', (res, upSocket, upHead) => {
      upSocket.on('error', () => socket.destroy());
      socket.on('error', () => upSocket.destroy());
      let headText = 'HTTP/1.1 101 Switching Protocols\r\n';
      for (let i = 0; i < res.rawHeaders.length; i += 2) {
        const k = res.rawHeaders[i]!;
        if (/^set-cookie$/i.test(k)) continue;
        headText += `${k}: ${res.rawHeaders[i + 1]}\r\n`;
      }
      socket.write(`${headText}\r\n`);
      if (upHead.length) socket.write(upHead);
      if (head.length) upSocket.write(head);
      this.sockets.add(socket);
      socket.on('close', () => {
        this.sockets.delete(socket);
        upSocket.destroy();
      });
      upSocket.on('close', () => socket.destroy());
      upSocket.pipe(socket);
      socket.pipe(upSocket);
    });
    upReq.end();
  }

  /** Ends every joined connection (at shutdown). */
  closeAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}
