import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { DEFAULT_BODY_LIMIT } from '../defaults.js';
import { MethodOverrideRefused, PayloadTooLarge } from '../errors.js';
import { hasMethodOverrideParam, isFormBody } from '../policy/method-override.js';
import type { Route } from '../routes/types.js';

/** Counts body bytes and fails the stream past the route's limit (chunked bodies). */
class BodyLimit extends Transform {
  private seen = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) cb(new PayloadTooLarge(String(this.limit)));
    else cb(null, chunk);
  }
}

/** Whether a request announces a body (any Transfer-Encoding, or a Content-Length other than 0). */
export function hasBody(headers: IncomingHttpHeaders): boolean {
  const length = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** The whole of a (size-limited) stream. */
async function readWhole(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * A request body as it is forwarded: streamed through untouched, the route's limit enforced
 * on the way. A form body the route refuses `_method` in is read whole (up to the limit) and
 * scanned before anything is sent, so an upstream never sees a `_method` it would obey.
 */
export function forwardedBody(
  route: Route | undefined,
  method: string,
  headers: IncomingHttpHeaders,
  payload: IncomingMessage,
  done: (err: Error | null, body?: Readable) => void,
): void {
  const limit = route?.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const counted = payload.pipe(new BodyLimit(limit));
  payload.on('error', (err) => counted.destroy(err));
  if (route?.methodOverride === 'allow' || !isFormBody(method, headers)) return done(null, counted);
  readWhole(counted).then((body) => {
    if (hasMethodOverrideParam(body.toString('latin1'))) done(new MethodOverrideRefused('request body'));
    else done(null, Readable.from([body]));
  }, (err: Error) => done(err));
}
