import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';

// Just enough RFC 6455 for tests: the opening handshake and unfragmented text frames of
// up to 64 KiB, both ways. No extensions, no fragmentation, no ping/pong.

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP_TEXT = 0x1;
const OP_CLOSE = 0x8;

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2). */
export function acceptKey(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}

/** One frame; clients mask (§5.3), servers do not. */
export function encodeFrame(text: string, masked: boolean, opcode = OP_TEXT): Buffer {
  const payload = Buffer.from(text, 'utf8');
  if (payload.length > 0xffff) throw new Error('frame too large for this helper');
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, (masked ? 0x80 : 0) | len]) : Buffer.from([0x80 | opcode, (masked ? 0x80 : 0) | 126, len >> 8, len & 0xff]);
  if (!masked) return Buffer.concat([head, payload]);
  const mask = randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([head, mask, body]);
}

interface Frame {
  opcode: number;
  masked: boolean;
  text: string;
}

/** Takes every complete frame off the front of `buf`; returns them and the rest. */
export function decodeFrames(buf: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  let off = 0;
  for (;;) {
    if (buf.length - off < 2) break;
    const b0 = buf[off]!;
    const b1 = buf[off + 1]!;
    const masked = (b1 & 0x80) !== 0;
    let len = b1 & 0x7f;
    let p = off + 2;
    if (len === 126) {
      if (buf.length - p < 2) break;
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      throw new Error('64-bit frame lengths are not supported by this helper');
    }
    const maskLen = masked ? 4 : 0;
    if (buf.length - p < maskLen + len) break;
    const mask = buf.subarray(p, p + maskLen);
    const payload = Buffer.from(buf.subarray(p + maskLen, p + maskLen + len));
    if (masked) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i % 4]!;
    frames.push({ opcode: b0 & 0x0f, masked, text: payload.toString('utf8') });
    off = p + maskLen + len;
  }
  return { frames, rest: buf.subarray(off) };
}

/** Receives frames from a socket, one at a time, in order. */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly queue: Frame[] = [];
  private readonly waiting: ((f: Frame | null) => void)[] = [];
  private ended = false;

  constructor(socket: Duplex, initial: Buffer) {
    socket.on('data', (c: Buffer) => this.push(c));
    socket.on('close', () => {
      this.ended = true;
      for (const w of this.waiting.splice(0)) w(null);
    });
    if (initial.length) this.push(initial);
  }

  private push(c: Buffer): void {
    const { frames, rest } = decodeFrames(Buffer.concat([this.buf, c]));
    this.buf = rest;
    for (const f of frames) {
      const w = this.waiting.shift();
      if (w) w(f);
      else this.queue.push(f);
    }
  }

  /** The next frame, or null once the connection closed. */
  next(timeoutMs = 3000): Promise<Frame | null> {
    const f = this.queue.shift();
    if (f) return Promise.resolve(f);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no WebSocket frame in time')), timeoutMs);
      this.waiting.push((fr) => {
        clearTimeout(timer);
        resolve(fr);
      });
    });
  }
}

/** An upgrade request as the WebSocket upstream received it. */
export interface ReceivedUpgrade {
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: [string, string][];
}

export interface WsUpstream {
  readonly url: string;
  readonly upgrades: ReceivedUpgrade[];
  /** Text frames the upstream received, in order. */
  readonly messages: string[];
  close(): Promise<void>;
}

/**
 * A WebSocket server on port 0: it greets every connection with the text frame `hello`
 * and answers each text frame `x` with `echo:x`. Plain HTTP requests get 426.
 */
export async function startWsUpstream(): Promise<WsUpstream> {
  const upgrades: ReceivedUpgrade[] = [];
  const messages: string[] = [];
  const sockets = new Set<Duplex>();
  const server = http.createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('upgrade required');
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const raw: [string, string][] = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) raw.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
    upgrades.push({ url: req.url ?? '', headers: req.headers, rawHeaders: raw });
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`,
    );
    socket.write(encodeFrame('hello', false));
    let buf = head;
    const onData = (c: Buffer) => {
      const { frames, rest } = decodeFrames(Buffer.concat([buf, c]));
      buf = rest;
      for (const f of frames) {
        if (f.opcode === OP_CLOSE) {
          socket.end(encodeFrame('', false, OP_CLOSE));
          return;
        }
        if (f.opcode === OP_TEXT) {
          messages.push(f.text);
          socket.write(encodeFrame(`echo:${f.text}`, false));
        }
      }
    };
    socket.on('data', onData);
    if (head.length) onData(Buffer.alloc(0));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    upgrades,
    messages,
    close() {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface WsClientResult {
  status: number;
  /** Response head lines after the status line, names lower-cased. */
  headers: Record<string, string[]>;
  /** The response body (refusals) — empty after a 101. */
  body: string;
  /** The key sent, to check Sec-WebSocket-Accept. */
  key: string;
  /** After a 101: send a text frame (masked, as a client must). */
  send(text: string): void;
  /** After a 101: the next frame from the server. */
  next(timeoutMs?: number): Promise<Frame | null>;
  close(): void;
}

/**
 * Opens a WebSocket through `port` with a raw socket, sending exactly the headers given
 * (besides the handshake's own), and resolves once the response head arrived (and, for a
 * refusal, its body).
 */
export function wsConnect(port: number, target: string, headers: [string, string][] = []): Promise<WsClientResult> {
  const key = randomBytes(16).toString('base64');
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let settled = false;
    const fail = (err: Error) => {
      if (!settled) {
        settled = true;
        reject(err);
      }
    };
    socket.on('error', fail);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const split = buf.indexOf('\r\n\r\n');
      if (split < 0) return;
      const [statusLine, ...lines] = buf.subarray(0, split).toString('latin1').split('\r\n');
      const h: Record<string, string[]> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        (h[l.slice(0, i).trim().toLowerCase()] ??= []).push(l.slice(i + 1).trim());
      }
      const status = Number(statusLine!.split(' ')[1]);
      const rest = buf.subarray(split + 4);
      if (status === 101) {
        socket.off('data', onData);
        settled = true;
        const reader = new FrameReader(socket, rest);
        resolve({
          status,
          headers: h,
          body: '',
          key,
          send: (text) => socket.write(encodeFrame(text, true)),
          next: (ms) => reader.next(ms),
          close: () => socket.destroy(),
        });
        return;
      }
      const length = Number(h['content-length']?.[0] ?? NaN);
      if (Number.isFinite(length) && rest.length < length) return;
      socket.off('data', onData);
      settled = true;
      socket.destroy();
      resolve({
        status,
        headers: h,
        body: rest.toString('utf8'),
        key,
        send: () => {
          throw new Error(`not upgraded (${status})`);
        },
        next: async () => null,
        close: () => undefined,
      });
    };
    socket.on('data', onData);
    socket.on('close', () => fail(new Error(`connection closed before a response: ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`)));
    const all: [string, string][] = [
      ['Host', `127.0.0.1:${port}`],
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
      ['Sec-WebSocket-Key', key],
      ['Sec-WebSocket-Version', '13'],
      ...headers,
    ];
    socket.write(`GET ${target} HTTP/1.1\r\n${all.map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`);
  });
}
