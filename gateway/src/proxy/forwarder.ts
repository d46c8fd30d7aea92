import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { Agent, errors, type Dispatcher } from 'undici';

/** One request to send upstream, already decided on and rewritten. */
export interface UpstreamRequest {
  /** The route's upstream URL (only its origin is used). */
  upstream: string;
  /** The path to ask for, with the client's query. */
  path: string;
  method: string;
  /** The headers the upstream receives (`upstreamRequestHeaders`); Host is set here. */
  headers: IncomingHttpHeaders;
  /** The request body as it is forwarded (`forwardedBody`), or null. */
  body: Readable | null;
  /**
   * Longest wait for the response head (from when the request, body included, was handed
   * over), and between two chunks of its body while the client reads.
   */
  timeoutMs: number;
  /** The headers the client receives, from the upstream's (`clientResponseHeaders`). */
  responseHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders;
  /** An upstream failure after the head was sent: the client's response is cut short. */
  onBrokenResponse(err: Error): void;
}

/** The scheme and authority of an upstream, as undici dispatches to it and as the Host header names it. */
interface Origin {
  origin: string;
  host: string;
}

/** An upstream answered with a status code no HTTP/1.1 client may be sent. */
class InvalidUpstreamStatus extends Error {
  override readonly name = 'InvalidUpstreamStatus';
  readonly code = 'SG_UPSTREAM_INVALID_STATUS';
}

/**
 * Sends requests upstream over pooled keep-alive connections and streams each answer
 * straight into the client's response: undici's dispatcher, driven with a handler of our
 * own, hands every chunk of the upstream's body to `res.write`, with backpressure both ways
 * and no stream objects in between.
 *
 * `forward` settles when the response head has been written to the client (or the client
 * went away first); it rejects, with nothing written, when the upstream failed before
 * answering, so the caller answers that failure itself.
 */
export class UpstreamForwarder {
  private readonly agent: Agent;
  private readonly origins = new Map<string, Origin>();

  /**
   * `closing`: while true, every answer closes its client connection (the server is
   * draining); asked when an answer's head is written, so requests already under way get it too.
   */
  constructor(
    opts: { connections: number; keepAliveTimeoutMs: number },
    private readonly closing: () => boolean = () => false,
  ) {
    this.agent = new Agent({ connections: opts.connections, pipelining: 1, keepAliveTimeout: opts.keepAliveTimeoutMs });
  }

  forward(req: IncomingMessage, res: ServerResponse, up: UpstreamRequest): Promise<void> {
    const { origin, host } = this.originOf(up.upstream);
    up.headers.host = host;
    return new Promise<void>((resolve, reject) => {
      const exchange = new Exchange(req, res, up, this.closing, resolve, reject);
      // the exchange keeps time itself (see Exchange): undici's own timers are off
      this.agent.dispatch({ origin, path: up.path, method: up.method as Dispatcher.HttpMethod, headers: up.headers, body: up.body, headersTimeout: 0, bodyTimeout: 0 }, exchange);
    });
  }

  /** Closes the pooled connections (requests under way finish first). */
  async close(): Promise<void> {
    await this.agent.close();
  }

  private originOf(upstream: string): Origin {
    let o = this.origins.get(upstream);
    if (o === undefined) {
      const url = new URL(upstream);
      o = { origin: url.origin, host: url.host };
      this.origins.set(upstream, o);
    }
    return o;
  }
}

/**
 * One request and its answer: undici's handler, writing into the client's response.
 *
 * It keeps the upstream timeout with one plain timer of its own, re-armed on every chunk,
 * which dies with the request. undici's timers, which it switches between on every request of
 * a kept-alive connection, sit in a shared list for up to a second after they are cleared:
 * long enough to be promoted to the old generation, about a hundred bytes a request, and the
 * mark-compacts that garbage called for were the gateway's slowest pauses.
 */
class Exchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private headSent = false;
  private settled = false;
  private paused = false;
  private timer: NodeJS.Timeout | null = null;
  /** The timeout ran out before undici handed over the request's controller. */
  private expired: Error | null = null;
  private readonly onClientClose = (): void => {
    // the client went away before the whole answer: stop asking the upstream for it
    if (!this.res.writableFinished) this.controller?.abort(new Error('client closed the connection'));
  };
  private readonly onDrain = (): void => {
    this.paused = false;
    this.arm();
    this.controller?.resume();
  };
  // the wait for the head starts once the request body, if any, is all handed over
  private readonly startWaiting = (): void => this.arm();

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly up: UpstreamRequest,
    private readonly closing: () => boolean,
    private readonly resolve: () => void,
    private readonly reject: (err: Error) => void,
  ) {
    res.once('close', this.onClientClose);
    if (up.body === null) this.arm();
    else up.body.once('end', this.startWaiting);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.expired) controller.abort(this.expired);
    else if (this.res.destroyed) controller.abort(new Error('client closed the connection'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    // informational answers (100 Continue, 103 Early Hints) are the upstream connection's
    if (statusCode < 200) return;
    if (statusCode > 599) {
      controller.abort(new InvalidUpstreamStatus(`upstream answered with status ${statusCode}`));
      return;
    }
    const out = this.up.responseHeaders(headers);
    // a body the client is still sending that nobody will read: the connection cannot carry another request
    if (this.closing() || !this.req.complete) out.connection = 'close';
    try {
      this.res.writeHead(statusCode, out);
    } catch (err) {
      // a header value Node will not write: nothing was sent, so it is answered as a failure
      controller.abort(err as Error);
      return;
    }
    this.headSent = true;
    // from here the timeout is the longest wait between two chunks of the body
    this.arm();
    this.settle();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.res.write(chunk)) {
      this.arm();
    } else {
      this.paused = true;
      controller.pause();
      this.res.once('drain', this.onDrain);
    }
  }

  onResponseEnd(): void {
    this.disarm();
    this.res.off('close', this.onClientClose);
    this.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.disarm();
    this.up.body?.off('end', this.startWaiting);
    this.res.off('close', this.onClientClose);
    this.res.off('drain', this.onDrain);
    if (this.headSent) {
      this.up.onBrokenResponse(err);
      this.res.destroy();
    } else if (this.res.destroyed) {
      // nobody to answer: not an upstream failure
      this.settle();
    } else if (!this.settled) {
      this.settled = true;
      this.reject(err);
    }
  }

  /** The route's timeout ran out (the timer's callback, shared by every exchange). */
  timedOut(): void {
    this.timer = null;
    // a client that does not read holds the upstream back: that is not the upstream's delay
    if (this.paused) return;
    const err = this.headSent ? new errors.BodyTimeoutError() : new errors.HeadersTimeoutError();
    if (this.controller) this.controller.abort(err);
    else this.expired = err;
  }

  /** Starts the timeout, or starts it over. */
  private arm(): void {
    if (this.timer === null) this.timer = setTimeout(onExchangeTimeout, this.up.timeoutMs, this);
    else this.timer.refresh();
  }

  private disarm(): void {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
  }

  private settle(): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve();
  }
}

// one function for every exchange's timer, which gets its exchange as the argument
function onExchangeTimeout(exchange: Exchange): void {
  exchange.timedOut();
}
