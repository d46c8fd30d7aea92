import path from 'node:path';
import { parseArgs } from 'node:util';
import { SettingError, type CliIo } from '@sessiongate/service-kit';
import { DEFAULT_USERS_FILE } from '../config.js';
import { SUBCOMMANDS, type Context } from './cli/commands.js';
import { USERS_HELP } from './cli/help.js';
import { CliFailure } from './password-input.js';

export { USERS_HELP };

/**
 * `sessiongate users …`; `argv` holds the arguments after `users`. Resolves the exit code:
 * 0 done, 1 failed, 2 usage error.
 */
export async function usersCommand(argv: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    if (name === 'help' && rest[0] && SUBCOMMANDS[rest[0]]) return usersCommand([rest[0], '--help'], io);
    io.stdout.write(USERS_HELP);
    return 0;
  }
  if (name === undefined) {
    io.stderr.write(USERS_HELP);
    return 2;
  }
  const sub = SUBCOMMANDS[name];
  if (!sub) {
    io.stderr.write(`sessiongate users: unknown command "${name}"\n\n${USERS_HELP}`);
    return 2;
  }
  const usage = (message: string): number => {
    io.stderr.write(`sessiongate users ${name}: ${message}\nUsage: ${sub.usage}\nRun "sessiongate users ${name} --help" for details.\n`);
    return 2;
  };

  // a password must never be an argument: it would end up in shell history and `ps`
  if (rest.some((a) => /^--?(password|pass|passwd|pw)(=|$)/i.test(a))) {
    return usage('passwords are never taken as arguments (they would end up in shell history and process lists); pipe the password on standard input or type it at the prompt');
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...sub.options, file: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    return usage((err as Error).message);
  }
  if (parsed.values.help) {
    io.stdout.write(`Usage: ${sub.usage}\n\n${sub.help}\n`);
    return 0;
  }
  if (parsed.positionals.length !== sub.positionals) {
    const extra = parsed.positionals.length > sub.positionals;
    const n = parsed.positionals.length - sub.positionals;
    // never echoed: a stray argument is all too often a password
    return usage(
      extra
        ? `${n} unexpected argument${n > 1 ? 's' : ''}${name === 'add' || name === 'set-password' ? ' (passwords are read from standard input, never from arguments)' : ''}`
        : `missing ${sub.positionals === 1 || parsed.positionals.length === 0 ? 'NAME' : 'roles'}`,
    );
  }
  const env = io.env ?? process.env;
  const ctx: Context = {
    io,
    env,
    file: path.resolve((parsed.values.file as string | undefined) ?? (env.SESSIONGATE_USERS?.trim() || DEFAULT_USERS_FILE)),
    args: parsed.positionals,
    values: parsed.values,
  };
  if (sub.positionals > 0 && name !== 'add') {
    // an existing user is looked up as typed in lower case
    ctx.args[0] = ctx.args[0]!.toLowerCase();
  }
  try {
    return await sub.run(ctx);
  } catch (err) {
    if (err instanceof CliFailure) {
      if (err.exitCode === 2) return usage(err.message);
      io.stderr.write(`sessiongate users ${name}: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof SettingError) {
      io.stderr.write(`sessiongate users ${name}: invalid setting ${err.message}\n`);
      return 1;
    }
    io.stderr.write(`sessiongate users ${name}: ${(err as Error).message}\n`);
    return 1;
  }
}
