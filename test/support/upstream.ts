import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request an upstream received, as it arrived on the wire. */
export interface Received {
  method: string;
  url: string;
  /** Header pairs in arrival order, names as sent. */
  rawHeaders: [string, string][];
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface Upstream {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly received: Received[];
  /** The last request received (throws when none). */
  last(): Received;
  clear(): void;
  /** Replaces the response for the next requests. */
  respond(handler: (req: http.IncomingMessage, res: http.ServerResponse, rec: Received) => void): void;
  close(): Promise<void>;
}

function pairs(raw: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}

/**
 * A real HTTP server on port 0 that records every request and answers 200 with a JSON echo
 * (`{ upstream, method, url }`) unless told otherwise.
 */
export async function startUpstream(name: string): Promise<Upstream> {
  const received: Received[] = [];
  let handler: ((req: http.IncomingMessage, res: http.ServerResponse, rec: Received) => void) | null = null;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rec: Received = {
        method: req.method ?? '',
        url: req.url ?? '',
        rawHeaders: pairs(req.rawHeaders),
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      received.push(rec);
      if (handler) return handler(req, res, rec);
      res.setHeader('content-type', 'application/json');
      res.setHeader('x-upstream', name);
      res.end(JSON.stringify({ upstream: name, method: rec.method, url: rec.url }));
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    received,
    last() {
      const r = received.at(-1);
      if (!r) throw new Error(`upstream ${name} received nothing`);
      return r;
    },
    clear() {
      received.length = 0;
    },
    respond(h) {
      handler = h;
    },
    close() {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Values of one header (any case) in a recorded request. */
export function headerValues(rec: Received, name: string): string[] {
  const n = name.toLowerCase();
  return rec.rawHeaders.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
}
