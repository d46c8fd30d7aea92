/** Where a command writes and what it reads; tests pass their own streams and environment. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin?: NodeJS.ReadableStream;
  env?: NodeJS.ProcessEnv;
}

/** A command: resolves its exit code, or -1 for a server that keeps running. */
export type Command = (argv: string[], io: CliIo) => Promise<number>;

export function write(stream: NodeJS.WritableStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** A copy of the environment with command-line options applied (`--port` → PORT, …). */
export function withOverrides(
  env: NodeJS.ProcessEnv,
  values: Record<string, string | boolean | string[] | boolean[] | undefined>,
  map: Readonly<Record<string, string>>,
): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const [flag, variable] of Object.entries(map)) {
    const v = values[flag];
    if (typeof v === 'string') out[variable] = v;
  }
  return out;
}
