import { ApiKeyLayout, trackingConnectionFor, trackingConnectionToNode, type SessionStore } from '@sessiongate/session';
import type { Cluster, Redis } from 'ioredis';
import { TrackedNode, isCluster } from './tracking.js';

export interface InvalidationChannelOptions {
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  /** These sessions (by sid) or API keys (by key id) changed in Redis (by anyone, in any way). */
  onInvalidate(sids: readonly string[]): void;
  /** Changes may have gone unseen, or everything changed: nothing read before may be trusted. */
  onForget(): void;
  /** Every node is tracked (again): what changed while it was not must be asked of Redis. */
  onSubscribed(): void;
}

/**
 * Server-assisted invalidation: Redis itself tells this gateway of every change to a session
 * or API-key record (client-side caching, `CLIENT TRACKING` in broadcast mode over both key
 * prefixes),
 * whoever made it: the auth service, `redis-cli DEL`, an expiry, a maxmemory eviction, a
 * FLUSHDB, a restore. One connection per node carries it (on Cluster, per master: tracking
 * is per node). The cache is trusted only while every node's connection tracks and answers.
 *
 * Broadcast rather than redirect mode: redirect tracks what the reading connection read, so it
 * would have to be turned on for each of the request path's connections (ioredis makes and
 * remakes them, per node on Cluster) and re-armed on each reconnect; broadcast needs nothing
 * of the request path and one self-redirected connection per node. It costs messages for
 * sessions this gateway never read (logins, other gateways' refreshes): measured by
 * `npm run bench`, see docs/sizing.md.
 */
export class InvalidationChannel {
  private readonly nodes = new Map<string, TrackedNode>();
  private heartbeat: NodeJS.Timeout | null = null;
  private stopped = false;
  private started = false;
  private slotMap = '';
  /** Session keys, then API-key records: `<prefix>{<tag>}<id>` both. */
  private readonly keyPrefixes: readonly string[];
  private readonly onClientReady = () => this.opts.onForget();
  private readonly onRefresh = () => this.syncCluster();

  constructor(
    private readonly store: SessionStore,
    private readonly opts: InvalidationChannelOptions,
  ) {
    this.keyPrefixes = [`${store.keys.prefix}s:`, new ApiKeyLayout(store.keys).recordPrefix];
  }

  /** True while every change to a session or API-key record reaches this gateway. */
  get trusted(): boolean {
    if (this.stopped || !this.started || this.nodes.size === 0) return false;
    for (const n of this.nodes.values()) if (!n.trusted) return false;
    return true;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const client = this.store.redis;
    // a reconnect of the reading client may be a failover: what it read before is not trusted
    client.on('ready', this.onClientReady);
    if (isCluster(client)) {
      client.on('refresh', this.onRefresh);
      client.on('+node', this.onRefresh);
      client.on('-node', this.onRefresh);
      this.syncCluster();
    } else {
      this.addNode('redis', trackingConnectionFor(client as Redis));
    }
    this.heartbeat = setInterval(() => {
      for (const n of this.nodes.values()) n.heartbeat();
    }, this.opts.heartbeatIntervalMs);
    this.heartbeat.unref();
    await Promise.all([...this.nodes.values()].map((n) => n.start()));
  }

  private addNode(name: string, conn: Redis): TrackedNode {
    const node = new TrackedNode(name, conn, this.keyPrefixes, this.opts.heartbeatTimeoutMs, {
      log: this.opts.log,
      onKeys: (keys) => this.opts.onInvalidate(this.sidsOf(keys)),
      onFlush: () => this.opts.onForget(),
      onTracking: () => {
        if (this.trusted) this.opts.onSubscribed();
      },
    });
    this.nodes.set(name, node);
    return node;
  }

  /**
   * What the cache names an entry by follows the hash tag: the sid of a session key
   * (`<prefix>s:{<tag>}<sid>`), the key id of an API-key record (`<prefix>k:{<tag>}<id>`).
   */
  private sidsOf(keys: readonly string[]): string[] {
    const sids: string[] = [];
    for (const key of keys) {
      const prefix = this.keyPrefixes.find((p) => key.startsWith(p));
      if (prefix === undefined) continue;
      const close = key.indexOf('}', prefix.length);
      if (close > 0) sids.push(key.slice(close + 1));
    }
    return sids;
  }

  /**
   * Keeps one tracked connection per Cluster master. Any change of the slot map (a MOVED,
   * a node lost or added, a failover) flushes the cache, which is bypassed until every
   * current master's connection tracks.
   */
  private syncCluster(): void {
    if (this.stopped) return;
    const cluster = this.store.redis as Cluster;
    // the owners of the slots, not the connections ioredis holds: a master that died stays an
    // owner (its connection gone) until a failover, and must keep the cache bypassed meanwhile
    const slots = (cluster as unknown as { slots: (string[] | undefined)[] }).slots ?? [];
    const slotMap = slots.map((owners) => owners?.[0] ?? '').join(',');
    const wanted = new Map<string, { host: string; port: number }>();
    for (const owners of slots) {
      const key = owners?.[0];
      if (!key || wanted.has(key)) continue;
      const at = key.lastIndexOf(':');
      wanted.set(key, { host: key.slice(0, at), port: Number(key.slice(at + 1)) });
    }
    let changed = slotMap !== this.slotMap;
    this.slotMap = slotMap;
    for (const [name, node] of this.nodes) {
      if (!wanted.has(name)) {
        this.nodes.delete(name);
        void node.stop();
        changed = true;
      }
    }
    for (const [name, addr] of wanted) {
      if (this.nodes.has(name)) continue;
      void this.addNode(name, trackingConnectionToNode(cluster, addr.host, addr.port)).start();
      changed = true;
    }
    if (!changed) return;
    this.opts.onForget();
    if (this.trusted) this.opts.onSubscribed();
  }

  /** Stops trusting at once, then closes every tracking connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    const client = this.store.redis;
    client.off('ready', this.onClientReady);
    client.off('refresh', this.onRefresh);
    client.off('+node', this.onRefresh);
    client.off('-node', this.onRefresh);
    const nodes = [...this.nodes.values()];
    this.nodes.clear();
    await Promise.all(nodes.map((n) => n.stop()));
  }
}
