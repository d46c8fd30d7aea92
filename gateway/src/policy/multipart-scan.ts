import { Transform, type TransformCallback } from 'node:stream';
import { FormBodyUnreadable, MethodOverrideRefused } from '../errors.js';
import { partHeadNamesMethodOverride } from './method-override.js';

// Rack, Laravel and Symfony also read `_method` from a multipart part. Uploads may be large,
// so a multipart body is not read whole: it streams through this scan, which holds back only
// the head of the part being read (and a delimiter's length at the end of a chunk) until it
// has judged it. A part named `_method` fails the stream before that head goes on: the
// upstream request is aborted with its body incomplete, and the client gets a 400.

/**
 * Longest part head (its header lines) the scan holds back; a longer one is refused.
 * @default 16 KiB
 */
export const MAX_PART_HEAD_BYTES = 16 * 1024;

const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * Passes a multipart body through unchanged, failing with SG_ERR_METHOD_OVERRIDE_REFUSED at
 * a part named `_method`. Every `--boundary` starts a head, wherever it stands (parsers want
 * it at a line start: this finds theirs and more), and the head runs to the next blank line.
 */
export class MultipartMethodScan extends Transform {
  private readonly delimiter: Buffer;
  /** Bytes seen but not yet passed on. */
  private held: Buffer = Buffer.alloc(0);
  private inHead = false;

  constructor(boundary: string) {
    super();
    this.delimiter = Buffer.from(`--${boundary}`, 'latin1');
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const buf = this.held.length === 0 ? chunk : Buffer.concat([this.held, chunk]);
    let settled = 0; // bytes [0, settled) may go on
    let from = 0;
    for (;;) {
      if (this.inHead) {
        const end = buf.indexOf(HEAD_END, from);
        if ((end < 0 ? buf.length : end) - settled > MAX_PART_HEAD_BYTES) return cb(new FormBodyUnreadable(`A multipart part's header lines exceed ${MAX_PART_HEAD_BYTES} bytes`));
        if (end < 0) break;
        if (partHeadNamesMethodOverride(buf.toString('latin1', settled, end))) return cb(new MethodOverrideRefused('request body'));
        this.inHead = false;
        settled = from = end + HEAD_END.length;
      } else {
        const at = buf.indexOf(this.delimiter, from);
        if (at < 0) {
          // a delimiter may be cut at the chunk's end: keep what could be its start
          settled = Math.max(settled, buf.length - (this.delimiter.length - 1));
          break;
        }
        this.inHead = true;
        settled = from = at + this.delimiter.length;
      }
    }
    this.held = buf.subarray(settled);
    cb(null, settled > 0 ? buf.subarray(0, settled) : undefined);
  }

  override _flush(cb: TransformCallback): void {
    // a head the body ended in (no blank line): judged all the same
    if (this.inHead && partHeadNamesMethodOverride(this.held.toString('latin1'))) return cb(new MethodOverrideRefused('request body'));
    cb(null, this.held.length > 0 ? this.held : undefined);
  }
}
