import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { HOP_BY_HOP_HEADERS, rawErrorResponse } from '@sessiongate/service-kit';
import type { SessionRef } from '@sessiongate/session';
import { DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS } from '../defaults.js';
import { BadRequest, MethodNotAllowed, UpstreamTimeout, UpstreamUnavailable, type ErrorBody } from '../errors.js';
import type { GateState } from '../policy/admission.js';
import { upstreamRequestHeaders, type ForwardContext } from './headers.js';

export interface UpgradeProxyOptions {
  admit(raw: IncomingMessage): Promise<GateState>;
  forward(g: GateState, raw: IncomingMessage): { url: string; query: string; headers: ForwardContext };
  /** Calls `cb` once when the session `ref` is revoked; returns the unsubscribe. */
  onRevoked(ref: SessionRef, cb: () => void): () => void;
  /** @default DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS */
  idleTimeoutMs?: number;
  log: FastifyBaseLogger;
  onRejected(err: { code?: string; statusCode?: number; message?: string }): { statusCode: number; body: ErrorBody };
}

function writeError(socket: Duplex, statusCode: number, body: ErrorBody): void {
  socket.end(rawErrorResponse(statusCode, body));
}

/** Response headers of a declined upgrade that are the gateway's to set, or never relayed. */
const NOT_RELAYED = new Set([...HOP_BY_HOP_HEADERS, 'set-cookie']);

/**
 * Request headers never forwarded on an upgrade: an upgrade carries no body (what follows
 * its head belongs to the new protocol), so framing headers could only make the upstream
 * wait for bytes that the next user of the connection would supply; the rest describe the
 * client's connection, not ours.
 */
const UPGRADE_NOT_FORWARDED = ['content-length', 'transfer-encoding', 'expect', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'http2-settings'];

function hopByHopListed(headers: http.IncomingHttpHeaders): string[] {
  const c = headers.connection;
  return c ? c.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean) : [];
}

/** Whether a request announces a body (Content-Length above 0, or any Transfer-Encoding). */
function announcesBody(headers: http.IncomingHttpHeaders): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && Number(length) !== 0;
}

/**
 * Proxies upgrade requests (WebSocket) after the same gate as plain requests: the session
 * cookie is stripped and X-Session added on the upgrade request; after the upstream's 101
 * the two sockets are joined. Each upgrade has an upstream connection of its own, closed
 * unless it switched protocols; a joined pair is closed when its session is revoked or
 * when it stays idle for the idle timeout.
 */
export class UpgradeProxy {
  private readonly sockets = new Set<Duplex>();
  private readonly idleTimeoutMs: number;

  constructor(private readonly opts: UpgradeProxyOptions) {
    this.idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS;
  }

  readonly handle = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    void this.run(req, socket, head);
  };

  private async run(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    let g: GateState;
    try {
      if (req.method !== 'GET') throw new MethodNotAllowed(req.method ?? '');
      if (announcesBody(req.headers)) throw new BadRequest('An upgrade request must not have a body');
      g = await this.opts.admit(req);
    } catch (err) {
      const { statusCode, body } = this.opts.onRejected(err as { code?: string; statusCode?: number });
      writeError(socket, statusCode, body);
      return;
    }
    // watched from the moment the session was resolved, so a revocation during the
    // handshake is not missed
    let revoked = false;
    let onRevoked = () => {
      revoked = true;
    };
    const unwatch = g.session ? this.opts.onRevoked(g.session.ref, () => onRevoked()) : () => undefined;
    socket.once('close', unwatch);

    const fwd = this.opts.forward(g, req);
    // a client's Connection list may name hop-by-hop headers, never the gateway's own
    const dropped = new Set(UPGRADE_NOT_FORWARDED);
    for (const name of hopByHopListed(req.headers)) if (name !== 'upgrade') dropped.add(name);
    const headers = upstreamRequestHeaders(req.headers, fwd.headers, dropped);
    headers.connection = 'Upgrade';
    headers.upgrade = req.headers.upgrade;
    const target = new URL(fwd.url);
    const pathWithQuery = target.pathname + fwd.query;
    headers.host = target.host;
    const client = target.protocol === 'https:' ? https : http;
    // agent: false: a connection of its own, never pooled, so nothing left on it by this
    // request (or expected by the upstream) can reach another request
    const upReq = client.request({
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      path: pathWithQuery,
      method: 'GET',
      headers,
      agent: false,
      timeout: g.route.timeout,
    });
    // the client left before the upstream answered: nobody waits for this connection
    const abandon = () => upReq.destroy();
    socket.once('close', abandon);
    upReq.on('timeout', () => upReq.destroy(Object.assign(new Error('upstream timeout'), { code: 'ETIMEDOUT' })));
    upReq.on('error', (err: Error & { code?: string }) => {
      if (socket.destroyed) return;
      this.opts.log.warn({ route: g.route.name, code: err.code }, 'upstream upgrade failed');
      const timeout = err.code === 'ETIMEDOUT';
      const { statusCode, body } = this.opts.onRejected(timeout ? new UpstreamTimeout() : new UpstreamUnavailable());
      writeError(socket, statusCode, body);
    });
    upReq.on('response', (res) => {
      // the upstream declined to switch protocols: relay its answer, delimited by the end of
      // the connection, without its hop-by-hop headers and, as after a 101, without cookies
      // (an upgrade never reaches the auth route's login); then close the upstream connection
      const listed = new Set(hopByHopListed(res.headers));
      let headText = `HTTP/1.1 ${res.statusCode} ${res.statusMessage}\r\n`;
      for (let i = 0; i < res.rawHeaders.length; i += 2) {
        const k = res.rawHeaders[i]!;
        if (NOT_RELAYED.has(k.toLowerCase()) || listed.has(k.toLowerCase())) continue;
        headText += `${k}: ${res.rawHeaders[i + 1]}\r\n`;
      }
      socket.write(`${headText}Connection: close\r\n\r\n`);
      res.on('end', () => upReq.destroy());
      res.on('error', () => socket.destroy());
      res.pipe(socket);
    });
    upReq.on('upgrade', (res, upSocket, upHead) => {
      socket.off('close', abandon);
      upSocket.on('error', () => socket.destroy());
      socket.on('error', () => upSocket.destroy());
      const close = () => {
        socket.destroy();
        upSocket.destroy();
      };
      socket.on('close', () => {
        this.sockets.delete(socket);
        upSocket.destroy();
      });
      upSocket.on('close', () => socket.destroy());
      if (revoked || socket.destroyed) {
        close();
        return;
      }
      onRevoked = () => {
        this.opts.log.info({ route: g.route.name }, 'tunnel closed: its session was revoked');
        close();
      };
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
      // any byte either way goes through the client socket: its timeout is the pair's
      const clientSocket = socket as Partial<Socket>;
      clientSocket.setTimeout?.(this.idleTimeoutMs);
      socket.once('timeout', close);
      // the upstream connection's handshake timeout no longer applies
      upSocket.setTimeout(0);
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
