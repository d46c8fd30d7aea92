import { parseArgs } from 'node:util';
import { SettingError } from './settings.js';

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
function withOverrides(
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

/** A long-running service command: `sessiongate gateway`, `sessiongate auth`. */
export interface ServiceCommand<C> {
  /** The subcommand, for messages. */
  name: string;
  help: string;
  /** String options and the variable each overrides, e.g. { port: 'PORT' }. */
  flags: Readonly<Record<string, string>>;
  /** Reads the settings (throws SettingError naming the variable). */
  loadConfig(env: NodeJS.ProcessEnv): Promise<C>;
  /** Starts serving; resolves once it listens. */
  start(config: C, io: CliIo): Promise<unknown>;
  /** Codes of start failures that are the operator's to fix: printed, exit 1. */
  startErrors: readonly string[];
}

const LISTEN_ERRORS = ['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL'];

/**
 * Parses the options, applies them over the environment, reads the settings and starts the
 * service. Resolves 0 for --help, 2 for a usage error, 1 for a bad setting or a failed
 * start, and -1 once it serves (the process then lives until a signal).
 */
export async function runServiceCommand<C>(argv: string[], io: CliIo, cmd: ServiceCommand<C>): Promise<number> {
  const options: Record<string, { type: 'string' } | { type: 'boolean'; short: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const flag of Object.keys(cmd.flags)) options[flag] = { type: 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options }) as { values: Record<string, string | boolean | undefined> });
  } catch (err) {
    write(io.stderr, `sessiongate ${cmd.name}: ${(err as Error).message}\n\n${cmd.help}`);
    return 2;
  }
  if (values.help) {
    write(io.stdout, cmd.help);
    return 0;
  }
  const env = withOverrides(io.env ?? process.env, values, cmd.flags);
  let config: C;
  try {
    config = await cmd.loadConfig(env);
  } catch (err) {
    if (err instanceof SettingError) {
      write(io.stderr, `sessiongate ${cmd.name}: invalid setting ${err.message}`);
      return 1;
    }
    throw err;
  }
  try {
    await cmd.start(config, io);
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code && LISTEN_ERRORS.includes(e.code)) {
      write(io.stderr, `sessiongate ${cmd.name}: cannot listen: ${e.message}`);
      return 1;
    }
    if (e.code && cmd.startErrors.includes(e.code)) {
      write(io.stderr, `sessiongate ${cmd.name}: ${e.message}`);
      return 1;
    }
    throw err;
  }
  return -1;
}
