import path from 'node:path';
import { SettingError, type CliIo } from '@sessiongate/service-kit';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Document } from 'yaml';
import {
  ApiKeyStore,
  KeyLayout,
  SessionStore,
  createRedisClient,
  describeConnection,
  redisConnectionFromEnv,
  sessionSettingsFromEnv,
  waitUntilReady,
} from 'sessiongate/session';
import { DEFAULT_USERS_FILE, scryptCostSetting } from '../config.js';
import { defaultParams, hashPassword, MAX_PASSWORD_BYTES, MIN_PASSWORD_LENGTH, passwordTooLong } from './password.js';
import { CliFailure, readNewPassword } from './password-input.js';
import {
  edit,
  formatProblems,
  newUsersDocument,
  parseUsersFile,
  profileProblem,
  profileSizeProblem,
  readUsersFile,
  roleProblem,
  userNameProblem,
  writeUsersFileAtomic,
  type LoadedUser,
  MAX_PROFILE_BYTES,
  MAX_PROFILE_FIELDS,
  MAX_PROFILE_VALUE_LENGTH,
  MAX_ROLES,
} from './users-file.js';


/** How long the CLI waits for Redis before it warns that live sessions were not updated. @default 3000 */
export const CLI_REDIS_WAIT_MS = 3000;

const FILE_OPTION = `  --file PATH          the users file (SESSIONGATE_USERS, default ${DEFAULT_USERS_FILE})
  -h, --help           show this help`;

const LIVE_SESSIONS = `Live sessions follow at once: the command updates them in Redis (REDIS_URL, or the
Sentinel/Cluster settings, and SESSIONGATE_REDIS_PREFIX, as for the service). If Redis
cannot be reached within ${CLI_REDIS_WAIT_MS / 1000} s, the file is still changed, a warning is printed and
the exit code is 1; running services apply the change when they reload the file.`;

export const USERS_HELP = `Usage: sessiongate users <command> [options]

Manages the auth service's users file (SESSIONGATE_USERS, default ${DEFAULT_USERS_FILE}).
Passwords are read from standard input, never from arguments: typed at a prompt (twice,
not echoed) on a terminal, or the first line of what is piped in.

Commands:
  add NAME [--roles a,b] [--disabled] [--profile key=value]...
                       add a user (creates the file if needed)
  set-roles NAME a,b   replace a user's roles; live sessions get them at once
  disable NAME         disable a user and end their live sessions
  enable NAME          enable a disabled user
  set-password NAME    change a user's password and end their live sessions
  list [--json]        list users, roles and status
  remove NAME          remove a user and end their live sessions

Run "sessiongate users <command> --help" for details.
Exit codes: 0 done, 1 failed (or Redis unreachable: see the command's help), 2 usage error.
`;

interface Subcommand {
  usage: string;
  help: string;
  options: ParseArgsConfig['options'];
  /** Exact number of positionals. */
  positionals: number;
  run(ctx: Context): Promise<number>;
}

interface Context {
  io: CliIo;
  env: NodeJS.ProcessEnv;
  file: string;
  args: string[];
  values: Record<string, string | boolean | string[] | undefined>;
}

const SUBCOMMANDS: Record<string, Subcommand> = {
  add: {
    usage: 'sessiongate users add NAME [--roles a,b] [--disabled] [--profile key=value]...',
    help: `Adds a user. The password is read from standard input (prompted twice on a terminal,
else the first line), at least ${MIN_PASSWORD_LENGTH} characters and at most ${MAX_PASSWORD_BYTES} bytes; it is
stored as a scrypt hash (N=2^SESSIONGATE_SCRYPT_COST, default 2^17, r=8, p=1).

NAME: lower case a-z, 0-9 and . _ @ + -, at most 64 characters; it is the user id (sub).

Options:
  --roles a,b          the user's roles (default: none)
  --disabled           add the user disabled (cannot log in until enabled)
  --profile key=value  a profile field, put into every session of the user as a claim
                       (repeatable; e.g. --profile name="Ada L." --profile email=ada@example.com;
                       at most ${MAX_PROFILE_FIELDS} fields, ${MAX_PROFILE_BYTES} bytes in all as JSON)
${FILE_OPTION}

Example:
  printf '%s\\n' "$PASSWORD" | sessiongate users add ada --roles user,admin --profile email=ada@example.com`,
    options: { roles: { type: 'string' }, disabled: { type: 'boolean' }, profile: { type: 'string', multiple: true } },
    positionals: 1,
    run: add,
  },
  'set-roles': {
    usage: 'sessiongate users set-roles NAME a,b',
    help: `Replaces a user's roles ("" for none). Sessions keep their expiry; a role change takes
effect on the user's next request, without a new login.

${LIVE_SESSIONS}

Options:
${FILE_OPTION}`,
    options: {},
    positionals: 2,
    run: setRoles,
  },
  disable: {
    usage: 'sessiongate users disable NAME',
    help: `Disables a user: they cannot log in, and their live sessions end now.

${LIVE_SESSIONS}

Options:
${FILE_OPTION}`,
    options: {},
    positionals: 1,
    run: (ctx) => setDisabled(ctx, true),
  },
  enable: {
    usage: 'sessiongate users enable NAME',
    help: `Enables a disabled user.

Options:
${FILE_OPTION}`,
    options: {},
    positionals: 1,
    run: (ctx) => setDisabled(ctx, false),
  },
  'set-password': {
    usage: 'sessiongate users set-password NAME [--keep-sessions]',
    help: `Sets a new password, read from standard input (prompted twice on a terminal, else the
first line), and ends the user's live sessions (a reset usually means the old password was
at risk).

${LIVE_SESSIONS}

Options:
  --keep-sessions      leave the user's live sessions alone
${FILE_OPTION}`,
    options: { 'keep-sessions': { type: 'boolean' } },
    positionals: 1,
    run: setPassword,
  },
  list: {
    usage: 'sessiongate users list [--json]',
    help: `Lists users with their roles and status. Never shows password hashes.

Options:
  --json               one JSON document instead of a table
${FILE_OPTION}`,
    options: { json: { type: 'boolean' } },
    positionals: 0,
    run: list,
  },
  remove: {
    usage: 'sessiongate users remove NAME',
    help: `Removes a user from the file and ends their live sessions.

${LIVE_SESSIONS}

Options:
${FILE_OPTION}`,
    options: {},
    positionals: 1,
    run: remove,
  },
};

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

// --- the subcommands -------------------------------------------------------------------

async function add(ctx: Context): Promise<number> {
  const name = ctx.args[0]!;
  const problem = userNameProblem(name);
  if (problem) throw new CliFailure(problem, 2);
  const roles = parseRoles((ctx.values.roles as string | undefined) ?? '');
  const profile = parseProfile((ctx.values.profile as string[] | undefined) ?? []);
  const cost = scryptCostSetting(ctx.env);

  const { doc, users } = await load(ctx.file, { create: true });
  if (users.has(name)) throw new CliFailure(`user "${name}" already exists (use set-password, set-roles, enable or disable)`);
  const password = await newPassword(ctx);
  const hash = await hashPassword(password, defaultParams(cost));
  edit.addUser(doc, name, {
    roles,
    password: hash,
    ...(ctx.values.disabled ? { disabled: true } : {}),
    ...(Object.keys(profile).length ? { profile } : {}),
  });
  await save(ctx.file, doc);
  ctx.io.stdout.write(`added user ${name} (roles: ${roles.join(', ') || 'none'}${ctx.values.disabled ? ', disabled' : ''}) to ${ctx.file}\n`);
  return 0;
}

async function setRoles(ctx: Context): Promise<number> {
  const [name, rolesArg] = ctx.args as [string, string];
  const roles = parseRoles(rolesArg);
  const { doc } = await load(ctx.file, { user: name });
  edit.setRoles(doc, name, roles);
  await save(ctx.file, doc);
  ctx.io.stdout.write(`set roles of ${name} to ${roles.join(', ') || 'none'} in ${ctx.file}\n`);
  const n = await liveSessions(ctx, name, 'still carry their old roles', async (store) => {
    const ended = await store.setRoles(name, roles);
    // a key never carries more than its owner holds
    await new ApiKeyStore(store).setOwnerRoles(name, roles);
    return ended;
  });
  if (n === null) return 1;
  ctx.io.stdout.write(`updated roles of ${count(n)}\n`);
  return 0;
}

async function setDisabled(ctx: Context, disabled: boolean): Promise<number> {
  const name = ctx.args[0]!;
  const { doc, users } = await load(ctx.file, { user: name });
  const was = users.get(name)!.disabled;
  if (was !== disabled) {
    edit.setDisabled(doc, name, disabled);
    await save(ctx.file, doc);
  }
  ctx.io.stdout.write(`${disabled ? 'disabled' : 'enabled'} user ${name}${was === disabled ? ' (it already was)' : ''}\n`);
  if (!disabled) return 0;
  // ended even when the file already said so: a disabled user must have no sessions, nor keys
  const n = await liveSessions(ctx, name, 'are still valid', (store) => endAll(store, name));
  if (n === null) return 1;
  ctx.io.stdout.write(`ended ${count(n)}\n`);
  return 0;
}

async function setPassword(ctx: Context): Promise<number> {
  const name = ctx.args[0]!;
  const cost = scryptCostSetting(ctx.env);
  const { doc } = await load(ctx.file, { user: name });
  const password = await newPassword(ctx);
  edit.setPassword(doc, name, await hashPassword(password, defaultParams(cost)));
  await save(ctx.file, doc);
  ctx.io.stdout.write(`set a new password for ${name}\n`);
  if (ctx.values['keep-sessions']) return 0;
  const n = await liveSessions(ctx, name, 'are still valid', (store) => store.destroyAll(name));
  if (n === null) return 1;
  ctx.io.stdout.write(`ended ${count(n)}\n`);
  return 0;
}

async function list(ctx: Context): Promise<number> {
  const { users } = await load(ctx.file, { create: true });
  const rows = [...users.values()].sort((a, b) => a.name.localeCompare(b.name));
  if (ctx.values.json) {
    const out = rows.map((u) => ({ name: u.name, roles: u.roles, disabled: u.disabled, profile: u.profile }));
    ctx.io.stdout.write(`${JSON.stringify({ users: out }, null, 2)}\n`);
    return 0;
  }
  if (!rows.length) {
    ctx.io.stdout.write(`no users in ${ctx.file}\n`);
    return 0;
  }
  const table = [['NAME', 'ROLES', 'STATUS'], ...rows.map((u) => [u.name, u.roles.join(',') || '-', u.disabled ? 'disabled' : 'active'])];
  const widths = [0, 1].map((i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const r of table) ctx.io.stdout.write(`${r[0]!.padEnd(widths[0]!)}  ${r[1]!.padEnd(widths[1]!)}  ${r[2]}\n`);
  return 0;
}

async function remove(ctx: Context): Promise<number> {
  const name = ctx.args[0]!;
  const { doc } = await load(ctx.file, { user: name });
  edit.removeUser(doc, name);
  await save(ctx.file, doc);
  ctx.io.stdout.write(`removed user ${name}\n`);
  const n = await liveSessions(ctx, name, 'are still valid', (store) => endAll(store, name));
  if (n === null) return 1;
  ctx.io.stdout.write(`ended ${count(n)}\n`);
  return 0;
}

// --- helpers ---------------------------------------------------------------------------

/** Ends a user's sessions and revokes their API keys; resolves how many sessions ended. */
async function endAll(store: SessionStore, name: string): Promise<number> {
  const n = await store.destroyAll(name);
  await new ApiKeyStore(store).revokeAll(name);
  return n;
}

function count(n: number): string {
  return `${n} live session${n === 1 ? '' : 's'}`;
}

function parseRoles(arg: string): string[] {
  const roles = [...new Set(arg.split(',').map((r) => r.trim()).filter(Boolean))];
  for (const r of roles) {
    const p = roleProblem(r);
    if (p) throw new CliFailure(p, 2);
  }
  if (roles.length > MAX_ROLES) throw new CliFailure(`at most ${MAX_ROLES} roles`, 2);
  return roles;
}

function parseProfile(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CliFailure(`--profile ${JSON.stringify(pair)}: expected key=value`, 2);
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    const p = profileProblem(key, value);
    if (p) throw new CliFailure(`--profile: ${p}`, 2);
    if (value.length > MAX_PROFILE_VALUE_LENGTH) throw new CliFailure(`--profile ${key}: at most ${MAX_PROFILE_VALUE_LENGTH} characters`, 2);
    out[key] = value;
  }
  if (Object.keys(out).length > MAX_PROFILE_FIELDS) throw new CliFailure(`at most ${MAX_PROFILE_FIELDS} profile fields`, 2);
  const tooLarge = profileSizeProblem(out);
  if (tooLarge) throw new CliFailure(`--profile: ${tooLarge}`, 2);
  return out;
}

async function newPassword(ctx: Context): Promise<string> {
  const password = await readNewPassword(ctx.io.stdin, ctx.io.stderr);
  if (password === '') throw new CliFailure('no password given on standard input');
  if ([...password].length < MIN_PASSWORD_LENGTH) throw new CliFailure(`the password is shorter than ${MIN_PASSWORD_LENGTH} characters`);
  if (passwordTooLong(password)) throw new CliFailure(`the password is longer than ${MAX_PASSWORD_BYTES} bytes`);
  return password;
}

export async function load(file: string, want: { create?: boolean; user?: string }): Promise<{ doc: Document; users: ReadonlyMap<string, LoadedUser> }> {
  const r = await readUsersFile(file);
  if (!r.ok) {
    if ('missing' in r) {
      if (want.create) return { doc: newUsersDocument(), users: new Map() };
      throw new CliFailure(`${file} does not exist (create it with "sessiongate users add")`);
    }
    throw new CliFailure(`the users file is invalid; fix it first:\n${formatProblems(file, r.problems)}`);
  }
  if (want.user !== undefined && !r.users.has(want.user)) throw new CliFailure(`no user "${want.user}" in ${file}`);
  return { doc: r.doc, users: r.users };
}

async function save(file: string, doc: Document): Promise<void> {
  // one line per hash: folded scalars are hard to read and to grep
  const text = doc.toString({ lineWidth: 0, flowCollectionPadding: false });
  // never write a file the service would refuse
  const check = parseUsersFile(text);
  if (!check.ok) throw new Error(`refusing to write an invalid users file:\n${formatProblems(file, check.problems)}`);
  try {
    await writeUsersFileAtomic(file, text);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CliFailure(`cannot write ${file}: the directory ${path.dirname(file)} does not exist`);
    if (code === 'EACCES' || code === 'EPERM') throw new CliFailure(`cannot write ${file}: permission denied (the file is replaced through a temporary file in ${path.dirname(file)})`);
    throw err;
  }
}

/**
 * Applies a change to the user's live sessions in Redis. Resolves null (after a warning)
 * when Redis cannot be reached: the file is changed either way.
 */
export async function liveSessions(
  ctx: Pick<Context, 'env' | 'io'>,
  name: string,
  stale: string,
  run: (store: SessionStore) => Promise<number>,
  /** What failed, said instead of the users file warning (for commands that change no file). */
  failed?: (why: string) => string,
): Promise<number | null> {
  const settings = sessionSettingsFromEnv(ctx.env);
  let connection;
  try {
    connection = redisConnectionFromEnv(ctx.env);
  } catch (err) {
    throw new SettingError('REDIS_URL', (err as Error).message.replace(/^REDIS_URL:\s*/, ''));
  }
  const where = describeConnection(connection);
  const client = createRedisClient({ connection, commandTimeoutMs: 2000, connectionName: 'sessiongate-users-cli' });
  let lastError: string | undefined;
  client.on('error', (err: Error) => {
    lastError = err.message;
  });
  const warn = (why: string): null => {
    if (failed) {
      ctx.io.stderr.write(`${failed(why)}\n`);
      return null;
    }
    ctx.io.stderr.write(
      `warning: the users file is changed, but ${why}: live sessions of ${name} ${stale}.\n` +
        `Run the command again once Redis is reachable (running auth services also apply it when they reload the file).\n`,
    );
    return null;
  };
  try {
    if (!(await waitUntilReady(client, CLI_REDIS_WAIT_MS))) {
      return warn(`Redis (${where}) did not answer within ${CLI_REDIS_WAIT_MS / 1000} s${lastError ? ` (${lastError})` : ''}`);
    }
    return await run(new SessionStore(client, new KeyLayout(settings.keyPrefix)));
  } catch (err) {
    if (err instanceof CliFailure) throw err;
    return warn(`updating live sessions in Redis (${where}) failed (${(err as Error).message})`);
  } finally {
    // quit() politely when connected; a client still trying to connect just stops
    if (client.status === 'ready') await client.quit().catch(() => client.disconnect());
    else client.disconnect();
  }
}
