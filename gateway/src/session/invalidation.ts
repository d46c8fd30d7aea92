import { decodeInvalidation, subscriberFor, type RedisClient, type SessionStore } from '@sessiongate/session';

export interface InvalidationChannelOptions {
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  /** An invalidation message named these sessions. */
  onInvalidate(sids: readonly string[]): void;
  /** Messages may have been lost (the subscription dropped, or stands anew): nothing read before may be trusted. */
  onForget(): void;
  /** The subscription stands (again): what was published while it was down must be asked of Redis. */
  onSubscribed(): void;
}

/**
 * The pub/sub subscription that brings revocations to this gateway, on a connection of its
 * own, and the heartbeat that proves it still does: a silent Redis (paused, or a network
 * path that drops packets without closing the connection) never closes the subscription, so
 * it is trusted only while a ping on that connection is answered.
 */
export class InvalidationChannel {
  private subscriber: RedisClient | null = null;
  private subscribed = false;
  private stopped = false;
  private heartbeat: NodeJS.Timeout | null = null;
  /** When the unanswered ping on the invalidation connection was sent (monotonic ms), or null. */
  private pingSentAt: number | null = null;
  /** That ping went unanswered past the heartbeat timeout. */
  private channelSilent = false;

  constructor(
    private readonly store: SessionStore,
    private readonly opts: InvalidationChannelOptions,
  ) {}

  /** True while every revocation reaches this gateway: subscribed, answering, not stopped. */
  get trusted(): boolean {
    return this.subscribed && !this.channelSilent && !this.stopped;
  }

  /** Subscribes; until that subscription stands (and whenever it drops), `trusted` is false. */
  async start(): Promise<void> {
    if (this.subscriber) return;
    const sub = subscriberFor(this.store.redis);
    this.subscriber = sub;
    const channel = this.store.keys.invalidationChannel;
    sub.on('message', (ch: string, raw: string) => {
      if (ch !== channel) return;
      const msg = decodeInvalidation(raw);
      if (msg) this.opts.onInvalidate(msg.sids);
    });
    const down = () => {
      if (this.subscribed) this.opts.log.warn({ channel }, 'session invalidation channel lost: cache bypassed until it is back');
      this.subscribed = false;
      // messages may be lost while down: nothing cached before may be trusted afterwards
      this.opts.onForget();
    };
    sub.on('close', down);
    sub.on('end', down);
    sub.on('error', () => undefined);
    sub.on('ready', () => {
      void this.subscribe(sub, channel);
    });
    this.heartbeat = setInterval(() => this.ping(sub, channel), this.opts.heartbeatIntervalMs);
    this.heartbeat.unref();
    if (sub.status === 'wait') sub.connect().catch(() => undefined);
    else if (sub.status === 'ready') await this.subscribe(sub, channel);
  }

  /** One ping at a time on the subscribed connection; its answer proves messages still flow. */
  private ping(sub: RedisClient, channel: string): void {
    if (!this.subscribed) return;
    if (this.pingSentAt !== null) {
      if (!this.channelSilent && performance.now() - this.pingSentAt >= this.opts.heartbeatTimeoutMs) {
        this.channelSilent = true;
        this.opts.log.warn({ channel }, 'session invalidation channel not answering: cache bypassed until it does');
      }
      return;
    }
    const sentAt = performance.now();
    this.pingSentAt = sentAt;
    sub.ping().then(
      () => {
        if (this.pingSentAt !== sentAt) return;
        this.pingSentAt = null;
        if (this.channelSilent) this.opts.log.info({ channel }, 'session invalidation channel answering again: cache on');
        this.channelSilent = false;
      },
      // a dropped connection is handled by 'close'; subscribe() starts pinging afresh
      () => undefined,
    );
  }

  private async subscribe(sub: RedisClient, channel: string): Promise<void> {
    try {
      await sub.subscribe(channel);
      if (this.stopped) return;
      this.opts.onForget();
      this.pingSentAt = null;
      this.channelSilent = false;
      this.subscribed = true;
      this.opts.log.info({ channel }, 'session invalidation channel subscribed: cache on');
      // revocations published while the channel was down were lost: ask Redis instead
      this.opts.onSubscribed();
    } catch (err) {
      this.opts.log.warn({ err }, 'session invalidation subscribe failed');
    }
  }

  /** Stops trusting the channel at once, then closes its connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.subscribed = false;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    const sub = this.subscriber;
    this.subscriber = null;
    if (sub) {
      sub.removeAllListeners('close');
      sub.removeAllListeners('end');
      await sub.quit().catch(() => sub.disconnect());
    }
  }
}
