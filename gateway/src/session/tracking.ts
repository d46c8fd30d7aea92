import type { RedisClient } from '@sessiongate/session';
import { Cluster, type Redis } from 'ioredis';

/** Where Redis sends the invalidations of a RESP2 connection that tracks keys for another. */
export const INVALIDATE_CHANNEL = '__redis__:invalidate';

export interface TrackedNodeEvents {
  /** These keys changed (written, deleted, expired, evicted) on this node. */
  onKeys(keys: readonly string[]): void;
  /** Everything on this node may have changed (FLUSHDB, FLUSHALL), or messages may have been lost. */
  onFlush(): void;
  /** The connection now tracks and is subscribed: from here on no change goes unseen. */
  onTracking(): void;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster;
}

/**
 * One connection that has Redis tell this gateway of every change to a session or API-key
 * key on one node: `CLIENT TRACKING ON REDIRECT <its own id> BCAST PREFIX <sessions> PREFIX
 * <API keys>`, then
 * SUBSCRIBE to the invalidation channel. It is trusted only while subscribed and while a
 * ping on it is answered: a paused Redis or a path that drops packets never closes it.
 */
export class TrackedNode {
  private subscribed = false;
  private stopped = false;
  /** When the unanswered ping was sent (monotonic ms), or null. */
  private pingSentAt: number | null = null;
  private silent = false;

  constructor(
    readonly name: string,
    private readonly conn: Redis,
    private readonly prefixes: readonly string[],
    private readonly heartbeatTimeoutMs: number,
    private readonly events: TrackedNodeEvents,
  ) {
    conn.on('messageBuffer', (channel: Buffer, payload: Buffer[] | Buffer | null) => {
      if (channel.toString() !== INVALIDATE_CHANNEL) return;
      // a null payload: the node was flushed (FLUSHDB/FLUSHALL), every key is gone
      if (payload === null) this.events.onFlush();
      else this.events.onKeys(Array.isArray(payload) ? payload.map(String) : [String(payload)]);
    });
    const down = () => {
      if (this.subscribed) this.events.log.warn({ node: name }, 'session invalidations lost: cache bypassed until tracking is back');
      this.subscribed = false;
      // changes while down went unseen: nothing read before may be trusted afterwards
      this.events.onFlush();
    };
    conn.on('close', down);
    conn.on('end', down);
    conn.on('error', () => undefined);
    conn.on('ready', () => void this.track());
  }

  /** Tracking and subscribed, answering pings, not stopped. */
  get trusted(): boolean {
    return this.subscribed && !this.silent && !this.stopped;
  }

  async start(): Promise<void> {
    if (this.conn.status === 'wait') await this.conn.connect().catch(() => undefined);
  }

  /** On every (re)connect: tracking does not survive one. */
  private async track(): Promise<void> {
    try {
      const id = await this.conn.client('ID');
      const prefixes = this.prefixes.flatMap((p) => ['PREFIX', p]);
      await this.conn.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', String(id), 'BCAST', ...prefixes);
      await this.conn.subscribe(INVALIDATE_CHANNEL);
      if (this.stopped) return;
      this.events.onFlush();
      this.pingSentAt = null;
      this.silent = false;
      this.subscribed = true;
      this.events.log.info({ node: this.name }, 'session key tracking on: cache on');
      this.events.onTracking();
    } catch (err) {
      this.events.log.warn({ err, node: this.name }, 'session key tracking could not be turned on');
      // try again on a fresh connection rather than serve from a cache nothing keeps right
      if (!this.stopped) this.conn.disconnect(true);
    }
  }

  /** One ping at a time; an answer proves invalidations still flow. */
  heartbeat(): void {
    if (!this.subscribed) return;
    if (this.pingSentAt !== null) {
      if (!this.silent && performance.now() - this.pingSentAt >= this.heartbeatTimeoutMs) {
        this.silent = true;
        this.events.log.warn({ node: this.name }, 'session invalidation connection not answering: cache bypassed until it does');
        this.events.onFlush();
      }
      return;
    }
    const sentAt = performance.now();
    this.pingSentAt = sentAt;
    this.conn.ping().then(
      () => {
        if (this.pingSentAt !== sentAt) return;
        this.pingSentAt = null;
        if (this.silent) this.events.log.info({ node: this.name }, 'session invalidation connection answering again: cache on');
        this.silent = false;
      },
      () => undefined,
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.subscribed = false;
    this.conn.removeAllListeners('close');
    this.conn.removeAllListeners('end');
    this.conn.removeAllListeners('ready');
    await this.conn.quit().catch(() => this.conn.disconnect());
  }
}
