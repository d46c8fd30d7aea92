import net from 'node:net';
import { acceptKey, decodeFrames, encodeFrame } from './websocket.js';

// An upstream written on raw sockets, to see exactly which bytes arrive on which connection.
// It frames requests correctly (Content-Length bodies are skipped as they arrive), but like
// many real handlers it answers a plain request as soon as its head is in, before reading
// the body: a proxy that announces a body and never sends it leaves the connection waiting.

/** What one upstream connection received. */
export interface RawConnection {
  /** Every byte received, in order (latin1). */
  bytes: string;
  /** The request line of every request parsed on this connection. */
  requestLines: string[];
}

export interface RawUpstream {
  readonly url: string;
  readonly connections: RawConnection[];
  /** Paths of every request parsed, on any connection. */
  readonly paths: string[];
  clear(): void;
  close(): Promise<void>;
}

/**
 * Answers: an upgrade to a path containing `/ws` with 101 (then greets with the text frame
 * `hello` and answers each text frame `x` with `echo:x`); `/internal/secret` with 200 `the
 * secret`; anything else with 404 at once, keep-alive, before its body.
 */
export async function startRawUpstream(): Promise<RawUpstream> {
  const connections: RawConnection[] = [];
  const paths: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const conn: RawConnection = { bytes: '', requestLines: [] };
    connections.push(conn);
    let buf: Buffer = Buffer.alloc(0);
    let bodyLeft = 0;
    let tunnel = false;
    socket.on('data', (chunk: Buffer) => {
      conn.bytes += chunk.toString('latin1');
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (tunnel) {
          const { frames, rest } = decodeFrames(buf);
          buf = rest;
          for (const f of frames) if (f.opcode === 1) socket.write(encodeFrame(`echo:${f.text}`, false));
          return;
        }
        if (bodyLeft > 0) {
          const n = Math.min(bodyLeft, buf.length);
          bodyLeft -= n;
          buf = buf.subarray(n);
          if (bodyLeft > 0) return;
        }
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const [line, ...headerLines] = buf.subarray(0, end).toString('latin1').split('\r\n');
        buf = buf.subarray(end + 4);
        conn.requestLines.push(line!);
        const headers: Record<string, string> = {};
        for (const h of headerLines) {
          const i = h.indexOf(':');
          headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
        }
        const path = line!.split(' ')[1] ?? '';
        paths.push(path);
        bodyLeft = Number(headers['content-length'] ?? 0) || 0;
        if (headers.upgrade?.toLowerCase() === 'websocket' && path.includes('/ws')) {
          socket.write(
            'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
              `Sec-WebSocket-Accept: ${acceptKey(headers['sec-websocket-key'] ?? '')}\r\n\r\n`,
          );
          socket.write(encodeFrame('hello', false));
          tunnel = true;
          continue;
        }
        const [status, body] = path === '/internal/secret' ? ['200 OK', 'the secret'] : ['404 Not Found', 'not found'];
        socket.write(`HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    connections,
    paths,
    clear() {
      connections.length = 0;
      paths.length = 0;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
