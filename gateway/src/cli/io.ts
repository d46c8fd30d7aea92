/** Where a command writes; tests pass buffers. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin?: NodeJS.ReadableStream;
  env?: NodeJS.ProcessEnv;
}

/** A command: resolves its exit code (long-running ones resolve once serving). */
export type Command = (argv: string[], io: CliIo) => Promise<number>;

export function write(stream: NodeJS.WritableStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}
