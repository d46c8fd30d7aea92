import { PassThrough, Readable, Writable } from 'node:stream';
import type { CliIo } from '@sessiongate/service-kit';

export interface CapturedIo extends CliIo {
  out(): string;
  err(): string;
}

function sink(into: string[]): Writable {
  return new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      into.push(chunk.toString());
      cb();
    },
  });
}

/** CLI streams that record what a command writes; `stdin` is piped text (or none). */
export function captureIo(env: Record<string, string>, stdin?: string | NodeJS.ReadableStream): CapturedIo {
  const out: string[] = [];
  const err: string[] = [];
  return {
    stdout: sink(out),
    stderr: sink(err),
    ...(stdin === undefined ? {} : { stdin: typeof stdin === 'string' ? Readable.from([stdin]) : stdin }),
    env,
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

/** A stand-in for a terminal on stdin: raw mode is recorded, keystrokes are pushed by the test. */
export function fakeTty(): PassThrough & { isTTY: true; rawModes: boolean[]; setRawMode(mode: boolean): void } {
  const s = new PassThrough() as PassThrough & { isTTY: true; rawModes: boolean[]; setRawMode(mode: boolean): void };
  s.isTTY = true;
  s.rawModes = [];
  s.setRawMode = (mode: boolean) => void s.rawModes.push(mode);
  return s;
}
