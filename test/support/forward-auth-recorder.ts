import http from 'node:http';
import type { AddressInfo } from 'node:net';

// One node:http server standing in for both sides of a forward-auth proxy: requests under
// /_sessiongate/authz are the authorization subrequests, anything else is what the
// protected app receives. Each request is recorded with its raw target and raw headers, so
// a test can compare what a proxy reported to the endpoint with what it forwarded.

export const AUTHZ_PATH = '/_sessiongate/authz';
/** Test requests carry this header so their subrequest and upstream request can be paired. */
export const PROBE_HEADER = 'x-probe-id';
/** The authorization side answers with this status when the request carries it (else 200; a 3xx carries LOGIN_LOCATION). */
export const ANSWER_HEADER = 'x-probe-answer';
/** The X-Session value the authorization side grants. */
export const GRANTED_SESSION = 'granted.x-session.jws';
/** Where a 3xx answer of the authorization side points. */
export const LOGIN_LOCATION = '/auth/login?next=%2Fprobe';
/** The cookie the authorization side treats as the session cookie (and strips). */
export const SESSION_COOKIE = 'sid';

export interface Recorded {
  readonly side: 'authz' | 'app';
  readonly method: string;
  /** The request-target exactly as it arrived. */
  readonly target: string;
  /** Header values by lower-case name (repeated fields joined with ', '). */
  readonly headers: Readonly<Record<string, string>>;
}

export interface Recorder {
  /** host:port */
  readonly address: string;
  readonly requests: Recorded[];
  /** The requests of one probe id, by side. */
  probe(id: string): { authz: Recorded[]; app: Recorded[] };
  close(): Promise<void>;
}

function headersOf(req: http.IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const k = req.rawHeaders[i]!.toLowerCase();
    const v = req.rawHeaders[i + 1]!;
    out[k] = k in out ? `${out[k]}, ${v}` : v;
  }
  return out;
}

/** The cookie header without the session cookie, as the endpoint would compute it. */
export function cookiesWithoutSession(cookie: string | undefined): string {
  return (cookie ?? '')
    .split(';')
    .map((c) => c.trim())
    .filter((c) => c && !c.startsWith(`${SESSION_COOKIE}=`))
    .join('; ');
}

export async function startRecorder(): Promise<Recorder> {
  const requests: Recorded[] = [];
  const server = http.createServer((req, res) => {
    const target = req.url ?? '';
    const headers = headersOf(req);
    const side = target === AUTHZ_PATH || target.startsWith(`${AUTHZ_PATH}/`) || target.startsWith(`${AUTHZ_PATH}?`) ? 'authz' : 'app';
    requests.push({ side, method: req.method ?? '', target, headers });
    req.resume();
    if (side === 'app') {
      const body = JSON.stringify({ app: true, target });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const status = Number(headers[ANSWER_HEADER] ?? 200);
    res.setHeader('cache-control', 'no-store');
    if (status === 200) {
      res.writeHead(200, { 'x-session': GRANTED_SESSION, 'x-sessiongate-cookie': cookiesWithoutSession(headers.cookie), 'content-length': '0' });
      res.end();
      return;
    }
    const body = JSON.stringify({ error: `status_${status}`, message: 'refused by the recorder' });
    if (status >= 300 && status < 400) res.setHeader('location', LOGIN_LOCATION);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    requests,
    probe(id) {
      const mine = requests.filter((r) => r.headers[PROBE_HEADER] === id);
      return { authz: mine.filter((r) => r.side === 'authz'), app: mine.filter((r) => r.side === 'app') };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
