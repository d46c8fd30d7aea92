import type { ParseArgsConfig } from 'node:util';
import type { CliIo } from '@sessiongate/service-kit';
import { scryptCostSetting } from '../../config.js';
import { defaultParams, hashPassword, MAX_PASSWORD_BYTES, MIN_PASSWORD_LENGTH, passwordTooLong } from '../password.js';
import { CliFailure, readNewPassword } from '../password-input.js';
import { edit, userNameProblem } from '../users-file.js';
import { parseProfile, parseRoles } from './args.js';
import { load, save } from './file.js';
import { SUBCOMMAND_HELP, type SubcommandName } from './help.js';
import { ApiKeyStore, type SessionStore } from '@sessiongate/session';
import { liveSessions } from './live-sessions.js';

// What each `sessiongate users` command does: edit the file, then apply the change to the
// user's live sessions.

/** One command run: its streams, environment, users file and arguments. */
export interface Context {
  io: CliIo;
  env: NodeJS.ProcessEnv;
  file: string;
  args: string[];
  values: Record<string, string | boolean | string[] | undefined>;
}

export interface Subcommand {
  usage: string;
  help: string;
  options: ParseArgsConfig['options'];
  /** Exact number of positionals. */
  positionals: number;
  run(ctx: Context): Promise<number>;
}

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
  const n = await liveSessions(ctx.io, ctx.env, { user: name, stale: 'still carry their old roles' }, async (store) => {
    const updated = await store.setRoles(name, roles);
    // a key never carries more than its owner holds
    await new ApiKeyStore(store).setOwnerRoles(name, roles);
    return updated;
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
  const n = await liveSessions(ctx.io, ctx.env, { user: name, stale: 'are still valid' }, (store) => endAll(store, name));
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
  const n = await liveSessions(ctx.io, ctx.env, { user: name, stale: 'are still valid' }, (store) => store.destroyAll(name));
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

/** Ends a user's sessions and revokes their API keys; resolves how many sessions ended. */
async function endAll(store: SessionStore, name: string): Promise<number> {
  const n = await store.destroyAll(name);
  await new ApiKeyStore(store).revokeAll(name);
  return n;
}

async function remove(ctx: Context): Promise<number> {
  const name = ctx.args[0]!;
  const { doc } = await load(ctx.file, { user: name });
  edit.removeUser(doc, name);
  await save(ctx.file, doc);
  ctx.io.stdout.write(`removed user ${name}\n`);
  const n = await liveSessions(ctx.io, ctx.env, { user: name, stale: 'are still valid' }, (store) => endAll(store, name));
  if (n === null) return 1;
  ctx.io.stdout.write(`ended ${count(n)}\n`);
  return 0;
}

function count(n: number): string {
  return `${n} live session${n === 1 ? '' : 's'}`;
}

async function newPassword(ctx: Context): Promise<string> {
  const password = await readNewPassword(ctx.io.stdin, ctx.io.stderr);
  if (password === '') throw new CliFailure('no password given on standard input');
  if ([...password].length < MIN_PASSWORD_LENGTH) throw new CliFailure(`the password is shorter than ${MIN_PASSWORD_LENGTH} characters`);
  if (passwordTooLong(password)) throw new CliFailure(`the password is longer than ${MAX_PASSWORD_BYTES} bytes`);
  return password;
}

function command(name: SubcommandName, rest: Omit<Subcommand, 'usage' | 'help'>): Subcommand {
  return { ...SUBCOMMAND_HELP[name], ...rest };
}

export const SUBCOMMANDS: Readonly<Record<string, Subcommand>> = {
  add: command('add', {
    options: { roles: { type: 'string' }, disabled: { type: 'boolean' }, profile: { type: 'string', multiple: true } },
    positionals: 1,
    run: add,
  }),
  'set-roles': command('set-roles', { options: {}, positionals: 2, run: setRoles }),
  disable: command('disable', { options: {}, positionals: 1, run: (ctx) => setDisabled(ctx, true) }),
  enable: command('enable', { options: {}, positionals: 1, run: (ctx) => setDisabled(ctx, false) }),
  'set-password': command('set-password', { options: { 'keep-sessions': { type: 'boolean' } }, positionals: 1, run: setPassword }),
  list: command('list', { options: { json: { type: 'boolean' } }, positionals: 0, run: list }),
  remove: command('remove', { options: {}, positionals: 1, run: remove }),
};
