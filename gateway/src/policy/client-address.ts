import { isIP, type BlockList } from 'node:net';
import { parseCidrs } from '@sessiongate/service-kit';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

/** Who sent a request, as far as the gateway can tell. */
export interface ClientAddress {
  /** The client's IP: the peer, or the nearest untrusted hop named by trusted proxies. */
  readonly ip: string;
  /** The X-Forwarded-For the upstream receives: believed hops plus the peer. */
  readonly forwardedFor: string;
  readonly proto: 'http' | 'https';
  /**
   * The host the client asked for, in canonical form (see {@link canonicalHost}); undefined
   * when none was named, null when the one named is not a valid host.
   */
  readonly host: string | null | undefined;
}

/** Longest host name accepted in Host or X-Forwarded-Host, port excluded (DNS names stop at 253). */
export const MAX_HOST_LENGTH = 255;

// the part of RFC 3986 reg-name that DNS names and IPv4 addresses use: sub-delims (",;=…")
// and percent-encoding name no real host and would split or smuggle in list-valued headers
const REG_NAME = /^[a-z0-9._-]+$/;
const PORT = /^[0-9]{0,5}$/;

/**
 * A Host header value (`host[:port]`, RFC 9110 §7.2) in canonical form: lower case, the port
 * without leading zeros or an empty one dropped. The host is a name or IPv4 address of
 * letters, digits, ".", "-", "_", or an IPv6 address in brackets (no zone). Null for
 * anything else: userinfo (`a@b`), a path, spaces, an oversized name, a port above 65535.
 */
export function canonicalHost(value: string): string | null {
  let host: string;
  let rest: string;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0) return null;
    const inner = value.slice(1, close);
    if (inner.includes('%') || isIP(inner) !== 6) return null;
    host = `[${inner.toLowerCase()}]`;
    rest = value.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) return null;
  } else {
    const colon = value.indexOf(':');
    host = (colon < 0 ? value : value.slice(0, colon)).toLowerCase();
    rest = colon < 0 ? '' : value.slice(colon);
    if (host.length > MAX_HOST_LENGTH || !REG_NAME.test(host)) return null;
  }
  if (rest === '' || rest === ':') return host;
  const port = rest.slice(1);
  if (!PORT.test(port) || Number(port) > 65_535) return null;
  return `${host}:${Number(port)}`;
}

function hostOf(value: string | undefined): string | null | undefined {
  return value === undefined || value === '' ? undefined : canonicalHost(value);
}

function normalizeIp(ip: string | undefined): string {
  if (!ip) return '';
  const v = ip.trim().replace(/^\[|\]$/g, '');
  return v.startsWith('::ffff:') && isIP(v.slice(7)) === 4 ? v.slice(7) : v;
}

/** An address from a Forwarded `for=` value: quotes, brackets and ports removed. */
function forwardedForValue(v: string): string {
  let s = v.trim().replace(/^"|"$/g, '');
  if (s.startsWith('[')) s = s.slice(1, s.indexOf(']'));
  else if (isIP(s) === 0 && s.includes(':') && s.split(':').length === 2) s = s.split(':')[0]!;
  return normalizeIp(s);
}

// addresses remembered per set: a few proxies and clients recur on every request, and
// BlockList.check builds a SocketAddress each time
const MEMO_MAX = 1024;

/** A set of CIDRs that answers membership of an address, remembering recent answers. */
export class AddressSet {
  readonly #list: BlockList;
  readonly #empty: boolean;
  readonly #memo = new Map<string, boolean>();

  constructor(cidrs: readonly string[]) {
    const listed = cidrs.filter((s) => s.trim() !== '');
    this.#list = parseCidrs(listed).blockList;
    this.#empty = listed.length === 0;
  }

  get empty(): boolean {
    return this.#empty;
  }

  has(ip: string): boolean {
    if (this.#empty) return false;
    const known = this.#memo.get(ip);
    if (known !== undefined) return known;
    const type = isIP(ip);
    const found = type !== 0 && this.#list.check(ip, type === 4 ? 'ipv4' : 'ipv6');
    if (this.#memo.size >= MEMO_MAX) this.#memo.clear();
    this.#memo.set(ip, found);
    return found;
  }
}

/** The peer's address, an IPv4-mapped IPv6 address as IPv4. */
export function peerAddress(req: IncomingMessage): string {
  return normalizeIp(req.socket.remoteAddress);
}

/**
 * Resolves the client behind a request. `X-Forwarded-*` and `Forwarded` are believed only
 * when the peer is a trusted proxy; from anyone else they are ignored and replaced.
 */
export class ClientAddressResolver {
  private readonly trusted: AddressSet;

  constructor(trustedProxies: readonly string[]) {
    this.trusted = new AddressSet(trustedProxies);
  }

  isTrusted(ip: string): boolean {
    return this.trusted.has(ip);
  }

  resolve(req: IncomingMessage): ClientAddress {
    const peer = normalizeIp(req.socket.remoteAddress);
    const ownProto = (req.socket as TLSSocket).encrypted ? 'https' : 'http';
    const host = req.headers.host;
    if (!this.isTrusted(peer)) return { ip: peer, forwardedFor: peer, proto: ownProto, host: hostOf(host) };

    const h = req.headers;
    let hops: string[] = [];
    const xff = h['x-forwarded-for'];
    let proto: string | undefined;
    let fwdHost: string | undefined;
    if (xff !== undefined) {
      hops = (Array.isArray(xff) ? xff.join(',') : xff).split(',').map(normalizeIp).filter(Boolean);
      proto = firstValue(h['x-forwarded-proto']);
      fwdHost = firstValue(h['x-forwarded-host']);
    } else if (typeof h.forwarded === 'string') {
      for (const element of h.forwarded.split(',')) {
        for (const pair of element.split(';')) {
          const eq = pair.indexOf('=');
          if (eq < 0) continue;
          const k = pair.slice(0, eq).trim().toLowerCase();
          const v = pair.slice(eq + 1).trim();
          if (k === 'for') hops.push(forwardedForValue(v));
          else if (k === 'proto') proto = v.replace(/"/g, '');
          else if (k === 'host') fwdHost = v.replace(/"/g, '');
        }
      }
    }
    hops = hops.filter((ip) => isIP(ip) !== 0);
    // walk from the nearest hop outwards; the first address not ours is the client
    let ip = peer;
    for (let i = hops.length - 1; i >= 0; i--) {
      ip = hops[i]!;
      if (!this.isTrusted(ip)) break;
    }
    const p = proto?.toLowerCase();
    return {
      ip,
      forwardedFor: [...hops, peer].join(', '),
      proto: p === 'https' || p === 'http' ? p : ownProto,
      host: hostOf(fwdHost || host),
    };
  }
}

function firstValue(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s?.split(',')[0]?.trim() || undefined;
}
