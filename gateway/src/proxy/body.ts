import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { DEFAULT_BODY_LIMIT } from '../defaults.js';
import { MethodOverrideRefused, PayloadTooLarge } from '../errors.js';
import { hasMethodOverrideParam, isFormBody, multipartBoundary } from '../policy/method-override.js';
import { MultipartMethodScan } from '../policy/multipart-scan.js';
import type { Route } from '../routes/types.js';

/** Codes a request body stream fails with on purpose: answered as they are, not as upstream failures. */
export const BODY_ERRORS: ReadonlySet<string> = new Set(['SG_ERR_PAYLOAD_TOO_LARGE', 'SG_ERR_METHOD_OVERRIDE_REFUSED', 'SG_ERR_FORM_BODY_UNREADABLE']);

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
 * on the way. On a route that refuses `_method`, a multipart body streams through a scan
 * that fails it at a part named `_method`, and a urlencoded form body is read whole (up to
 * the limit) and scanned before anything is sent, so an upstream never sees a `_method` it
 * would obey.
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
  if (route?.methodOverride === 'allow') return done(null, counted);
  let boundary: string | null;
  try {
    boundary = multipartBoundary(headers);
  } catch (err) {
    return done(err as Error);
  }
  if (boundary !== null) {
    const scanned = counted.pipe(new MultipartMethodScan(boundary));
    counted.on('error', (err) => scanned.destroy(err));
    return done(null, scanned);
  }
  if (!isFormBody(method, headers)) return done(null, counted);
  readWhole(counted).then((body) => {
    if (hasMethodOverrideParam(body.toString('latin1'))) done(new MethodOverrideRefused('request body'));
    else done(null, Readable.from([body]));
  }, (err: Error) => done(err));
}
