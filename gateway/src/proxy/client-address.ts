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
  /** The host the client asked for. */
  readonly host: string | undefined;
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

/**
 * Resolves the client behind a request. `X-Forwarded-*` and `Forwarded` are believed only
 * when the peer is a trusted proxy; from anyone else they are ignored and replaced.
 */
export class ClientAddressResolver {
  private readonly trusted: BlockList;
  private readonly any: boolean;

  constructor(trustedProxies: readonly string[]) {
    this.trusted = parseCidrs(trustedProxies.filter((s) => s.trim() !== '')).blockList;
    this.any = trustedProxies.some((s) => s.trim() !== '');
  }

  isTrusted(ip: string): boolean {
    if (!this.any) return false;
    const type = isIP(ip);
    return type !== 0 && this.trusted.check(ip, type === 4 ? 'ipv4' : 'ipv6');
  }

  resolve(req: IncomingMessage): ClientAddress {
    const peer = normalizeIp(req.socket.remoteAddress);
    const ownProto = (req.socket as TLSSocket).encrypted ? 'https' : 'http';
    const host = req.headers.host;
    if (!this.isTrusted(peer)) return { ip: peer, forwardedFor: peer, proto: ownProto, host };

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
      host: fwdHost || host,
    };
  }
}

function firstValue(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s?.split(',')[0]?.trim() || undefined;
}
