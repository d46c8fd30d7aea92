import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import { infoEnabled, prefersHtml } from '@sessiongate/service-kit';
import { BadRequest, errorResponse, NotFound } from '../errors.js';
import type { IdentityReuse } from '../identity/reuse.js';
import type { Admission } from '../policy/admission.js';
import { AddressSet, canonicalHost, ClientAddressResolver, peerAddress, type ClientAddress } from '../policy/client-address.js';
import { canonicalize } from '../routes/canonical-path.js';
import { isEndpointTarget, readReport, type ProxyStyle } from './report.js';

// The forward-auth endpoint: a proxy in front of the site asks "may this request pass, and
// as whom?" and gets the answer the gateway's own request path would give, from the same
// admission (routes, session, policy) and the same X-Session minting. It runs on the raw
// request, ahead of Fastify's router: the endpoint is matched on the exact target, and its
// answers are not proxied requests.

/** What the endpoint answered, as counted. */
export type ForwardAuthDecision = 'allow' | 'unauthenticated' | 'forbidden' | 'refused' | 'unavailable';

/** What the endpoint reports as it answers (the gateway's metrics). */
export interface ForwardAuthObserver {
  forwardAuth(route: string, decision: ForwardAuthDecision): void;
}

export interface ForwardAuthOptions {
  admission: Admission;
  identities: IdentityReuse;
  /** CIDRs of the proxies that may ask on the gateway's main listener; empty: none. */
  proxies: readonly string[];
  /** The endpoint has a listener of its own: the main listener never serves it. */
  ownListener: boolean;
  /** CIDRs whose X-Forwarded-* the gateway believes (the proxies are added). */
  trustedProxies: readonly string[];
  /** Where browsers sign in (Caddy, Traefik and Envoy pass the endpoint's redirect on); null: a 401. */
  loginPath: string | null;
  metrics?: ForwardAuthObserver;
  log: FastifyBaseLogger;
}

const NO_ROUTE = '(none)';
// styles whose proxy hands the endpoint's answer to the client as it is; nginx and
// ingress-nginx accept only 2xx, 401 and 403 and redirect by their own config
const PASSES_ANSWER_ON: ReadonlySet<ProxyStyle> = new Set(['forwarded', 'envoy']);
const ANY_ADDRESS = ['0.0.0.0/0', '::/0'];

export class ForwardAuth {
  readonly #o: ForwardAuthOptions;
  readonly #proxies: AddressSet | null;
  // the proxies' X-Forwarded-For and X-Forwarded-Proto are believed on top of the gateway's own list
  readonly #mainClients: ClientAddressResolver;
  readonly #ownClients: ClientAddressResolver;

  constructor(o: ForwardAuthOptions) {
    this.#o = o;
    const proxies = o.proxies.filter((s) => s.trim() !== '');
    this.#proxies = proxies.length ? new AddressSet(proxies) : null;
    this.#mainClients = new ClientAddressResolver([...o.trustedProxies, ...proxies]);
    this.#ownClients = new ClientAddressResolver(ANY_ADDRESS);
  }

  /** Whether the request is for the endpoint (the main listener hands it here, whoever asks). */
  claims(req: IncomingMessage): boolean {
    return isEndpointTarget(req.url);
  }

  /** A request for the endpoint on the gateway's main listener. */
  handleMain(req: IncomingMessage, res: ServerResponse): void {
    // not a listed proxy (or the endpoint lives on its own listener): as if there were no endpoint
    if (this.#o.ownListener || !this.#mayAsk(req)) return notFound(req, res);
    void this.#answer(req, res, this.#mainClients);
  }

  /** Every request on the endpoint's own listener: nothing else is served there. */
  handleOwn(req: IncomingMessage, res: ServerResponse): void {
    if (!isEndpointTarget(req.url) || (this.#proxies !== null && !this.#mayAsk(req))) return notFound(req, res);
    void this.#answer(req, res, this.#ownClients);
  }

  #mayAsk(req: IncomingMessage): boolean {
    return this.#proxies !== null && this.#proxies.has(peerAddress(req));
  }

  async #answer(req: IncomingMessage, res: ServerResponse, clients: ClientAddressResolver): Promise<void> {
    // the question has no body; one that comes anyway is read and dropped
    req.resume();
    const { admission, identities, metrics, log } = this.#o;
    let route = NO_ROUTE;
    const report = readReport(req.url ?? '', req.method ?? 'GET', req.headers);
    try {
      if (!report.ok) throw new BadRequest(report.reason);
      // the proxy forwards exactly the path it reported: anything the canonicalizer would
      // rewrite could reach the app as another path than the one decided on
      const c = canonicalize(report.target);
      if (!c.ok || c.path !== report.target.slice(0, report.target.length - c.query.length)) {
        throw new BadRequest(c.ok ? 'The original path is not in canonical form' : c.reason);
      }
      const host = report.host === undefined ? undefined : canonicalHost(report.host);
      // field by field, not with a spread: see SessionResolver.resolveApiKey
      const peer = clients.resolve(req);
      const client: ClientAddress = { ip: peer.ip, forwardedFor: peer.forwardedFor, proto: peer.proto, host };
      const state = await admission.check({ method: report.method, path: c.path, query: c.query, headers: req.headers, client }, log, (r) => {
        route = r.name;
      });
      const xSession = state.session ? identities.headerFor(state.session, state.route.name, Date.now(), state.route.reads) : null;
      // X-Sessiongate-Cookie and X-Sessiongate-Authorization always present, so a proxy that
      // copies them replaces the client's Cookie and Authorization even when empty; a bearer
      // credential the gateway judged (or any API key) is never handed on, as on the proxy path
      const authorization = state.dropAuthorization ? '' : (req.headers.authorization ?? '');
      const headers: OutgoingHttpHeaders = {
        'cache-control': 'no-store',
        'x-sessiongate-cookie': state.cookie ?? '',
        'x-sessiongate-authorization': authorization,
        'content-length': '0',
      };
      if (xSession !== null) headers['x-session'] = xSession;
      res.writeHead(200, headers);
      res.end();
      metrics?.forwardAuth(route, 'allow');
      logAnswer(log, req, report.method, route, 200, state.session?.record.sub);
    } catch (err) {
      const e = err as Error & { code?: string; statusCode?: number };
      if (res.headersSent) {
        log.error({ err: e }, 'forward auth failed after answering');
        return;
      }
      const { statusCode, body } = errorResponse(e);
      let status = statusCode;
      let decision: ForwardAuthDecision;
      // a refused bearer credential stays a 401, as on the gateway's own path
      if (e.code === 'SG_ERR_UNAUTHENTICATED' || e.code === 'SG_ERR_INVALID_CREDENTIALS') decision = 'unauthenticated';
      else if (e.code === 'SG_ERR_FORBIDDEN' || e.code === 'SG_ERR_CSRF_REJECTED') decision = 'forbidden';
      else if (statusCode >= 500) decision = 'unavailable';
      else {
        // nginx's auth_request turns any status but 2xx, 401 and 403 into a 500: every other
        // refusal (no route, a method the route refuses, a bad description) is a 403
        decision = 'refused';
        status = 403;
      }
      if (statusCode >= 500 && e.code !== 'SG_ERR_SESSION_STORE_UNAVAILABLE') log.error({ err: e }, 'forward auth failed');
      res.setHeader('cache-control', 'no-store');
      const login = this.#o.loginPath;
      // API clients are not sent to the login page: only a request without credentials is
      if (e.code === 'SG_ERR_UNAUTHENTICATED' && login !== null && report.ok && PASSES_ANSWER_ON.has(report.style) && prefersHtml(req.headers.accept)) {
        res.statusCode = 302;
        res.setHeader('location', `${login}?next=${encodeURIComponent(report.target)}`);
        res.setHeader('content-length', '0');
        res.end();
      } else {
        sendJson(res, status, body);
      }
      metrics?.forwardAuth(route, decision);
      logAnswer(log, req, report.ok ? report.method : '-', route, res.statusCode, undefined, report.ok ? undefined : report.reason);
    }
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  res.end(text);
}

function notFound(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  const { statusCode, body } = errorResponse(new NotFound());
  sendJson(res, statusCode, body);
}

function logAnswer(log: FastifyBaseLogger, req: IncomingMessage, method: string, route: string, status: number, sub?: string, reason?: string): void {
  if (!infoEnabled(log)) return;
  // the reported URI is the client's: it is not logged, as the proxy logs it already
  log.info({ route, method, status, forwardAuth: true, ...(sub ? { sub } : {}), ...(reason ? { reason } : {}), peer: req.socket.remoteAddress }, 'forward auth');
}
