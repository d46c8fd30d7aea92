import net from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string[]>;
  body: string;
  json(): any;
}

/**
 * Sends one request exactly as written (the target is not parsed or normalized by any
 * client library) and reads the response. `Connection: close` is added.
 */
export function rawRequest(
  port: number,
  o: { method?: string; target: string; headers?: [string, string][]; body?: string },
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const head = split < 0 ? text : text.slice(0, split);
      let body = split < 0 ? '' : text.slice(split + 4);
      const [statusLine, ...lines] = head.split('\r\n');
      const headers: Record<string, string[]> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        const k = l.slice(0, i).trim().toLowerCase();
        (headers[k] ??= []).push(l.slice(i + 1).trim());
      }
      if (headers['transfer-encoding']?.[0] === 'chunked') {
        let out = '';
        let rest = body;
        for (;;) {
          const nl = rest.indexOf('\r\n');
          const size = parseInt(rest.slice(0, nl), 16);
          if (!size) break;
          out += rest.slice(nl + 2, nl + 2 + size);
          rest = rest.slice(nl + 2 + size + 2);
        }
        body = out;
      }
      const status = Number(statusLine?.split(' ')[1] ?? 0);
      resolve({ status, headers, body, json: () => JSON.parse(body) });
    });
    const hs = [...(o.headers ?? [])];
    if (!hs.some(([k]) => k.toLowerCase() === 'host')) hs.unshift(['Host', `127.0.0.1:${port}`]);
    if (o.body !== undefined) hs.push(['Content-Length', String(Buffer.byteLength(o.body))]);
    hs.push(['Connection', 'close']);
    socket.write(`${o.method ?? 'GET'} ${o.target} HTTP/1.1\r\n${hs.map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${o.body ?? ''}`);
  });
}

/**
 * Writes `bytes` exactly as given on a fresh connection and resolves with everything read
 * back (latin1) once the server closes it, or after `idleMs` without data.
 */
export function rawExchange(port: number, bytes: string, idleMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    const done = () => {
      socket.destroy();
      resolve(got);
    };
    let timer = setTimeout(done, idleMs);
    socket.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      clearTimeout(timer);
      timer = setTimeout(done, idleMs);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    socket.on('error', reject);
    socket.write(bytes, 'latin1');
  });
}
