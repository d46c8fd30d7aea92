import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration, type CliIo } from '@sessiongate/service-kit';
import { ApiKeyStore, apiKeyNameProblem, isApiKeyId, parseApiKeyRecord, type ApiKeySummary } from '@sessiongate/session';
import { DEFAULT_USERS_FILE } from '../config.js';
import { CliFailure } from './password-input.js';
import { load } from './cli/file.js';
import { liveSessions } from './cli/live-sessions.js';
import { roleProblem } from './users-file.js';

export const API_KEYS_HELP = `Usage: sessiongate api-keys <command> [options]

API keys for machine clients (Authorization: Bearer sgk_…). A key belongs to a user of the
users file: a service account is a user like any other (give it a random password nobody
keeps). The key carries the roles asked for, never more than its owner holds now.

Commands:
  create NAME [--user OWNER] [--roles a,b] [--expires 90d]
                       mint a key named NAME for OWNER (default: the user named NAME);
                       the key is printed once, on standard output, and stored only as a hash
  list [--user OWNER] [--json]
                       list keys (all users of the file without --user); never the secrets
  revoke ID            revoke a key now, on every gateway

Options:
  --file PATH          the users file (SESSIONGATE_USERS, default ${DEFAULT_USERS_FILE})
  -h, --help           show this help

Keys live in Redis (REDIS_URL, or the Sentinel/Cluster settings, and SESSIONGATE_REDIS_PREFIX).
Exit codes: 0 done, 1 failed (or Redis unreachable), 2 usage error.
`;

const OPTIONS = {
  user: { type: 'string' },
  roles: { type: 'string' },
  expires: { type: 'string' },
  json: { type: 'boolean' },
  file: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `sessiongate api-keys …`; resolves the exit code: 0 done, 1 failed, 2 usage error. */
export async function apiKeysCommand(argv: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  const usage = (message: string): number => {
    io.stderr.write(`sessiongate api-keys: ${message}\n\n${API_KEYS_HELP}`);
    return 2;
  };
  if (name === undefined) return usage('missing command');
  if (name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(API_KEYS_HELP);
    return 0;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    return usage((err as Error).message);
  }
  if (parsed.values.help) {
    io.stdout.write(API_KEYS_HELP);
    return 0;
  }
  const env = io.env ?? process.env;
  const file = path.resolve(parsed.values.file ?? (env.SESSIONGATE_USERS?.trim() || DEFAULT_USERS_FILE));
  const ctx = { io, env };
  try {
    if (name === 'create') {
      if (parsed.positionals.length !== 1) return usage('create takes one NAME');
      return await create(ctx, file, parsed.positionals[0]!, parsed.values);
    }
    if (name === 'list') {
      if (parsed.positionals.length !== 0) return usage('list takes no arguments');
      return await list(ctx, file, parsed.values);
    }
    if (name === 'revoke') {
      if (parsed.positionals.length !== 1) return usage('revoke takes one key ID');
      return await revoke(ctx, parsed.positionals[0]!);
    }
    return usage(`unknown command "${name}"`);
  } catch (err) {
    if (err instanceof CliFailure) {
      if (err.exitCode === 2) return usage(err.message);
      io.stderr.write(`sessiongate api-keys ${name}: ${err.message}\n`);
      return err.exitCode;
    }
    io.stderr.write(`sessiongate api-keys ${name}: ${(err as Error).message}\n`);
    return 1;
  }
}

type Ctx = { io: CliIo; env: NodeJS.ProcessEnv };
type Values = { user?: string; roles?: string; expires?: string; json?: boolean };

async function create(ctx: Ctx, file: string, keyName: string, values: Values): Promise<number> {
  const problem = apiKeyNameProblem(keyName);
  if (problem) throw new CliFailure(problem, 2);
  const ownerName = (values.user ?? keyName).toLowerCase();
  let scope: string[] | null = null;
  if (values.roles !== undefined) {
    scope = [...new Set(values.roles.split(',').map((r) => r.trim()).filter(Boolean))];
    for (const r of scope) {
      const p = roleProblem(r);
      if (p) throw new CliFailure(p, 2);
    }
  }
  let expiresAt: number | null = null;
  if (values.expires !== undefined) {
    const ms = parseDuration(values.expires);
    if (ms === null || ms <= 0) throw new CliFailure('--expires takes a duration such as 90d, 12h or 30m', 2);
    expiresAt = Date.now() + ms;
  }
  const { users } = await load(file, { user: ownerName });
  const owner = users.get(ownerName)!;
  if (owner.disabled) throw new CliFailure(`user "${ownerName}" is disabled`);
  const missing = (scope ?? []).filter((r) => !owner.roles.includes(r));
  if (missing.length) throw new CliFailure(`user "${ownerName}" does not hold the role(s) ${missing.join(', ')}`);
  let key = '';
  const made = await liveSessions(ctx.io, ctx.env, { user: ownerName, stale: 'were not touched', failed: (why) => `error: no key was created: ${why}` }, async (store) => {
    const created = await new ApiKeyStore(store).create({ sub: ownerName, name: keyName, scope, ownerRoles: owner.roles, expiresAt });
    key = created.key;
    ctx.io.stderr.write(
      `created API key ${created.record.id} ("${keyName}") for ${ownerName}, roles: ${created.record.roles.join(', ') || 'none'}, ` +
        `${expiresAt === null ? 'no expiry' : `expires ${new Date(expiresAt).toISOString()}`}.\nStore it now: it is not shown again.\n`,
    );
    return 1;
  });
  if (made === null) return 1;
  ctx.io.stdout.write(`${key}\n`);
  return 0;
}

async function list(ctx: Ctx, file: string, values: Values): Promise<number> {
  const owners = values.user !== undefined ? [values.user.toLowerCase()] : [...(await load(file, { create: true })).users.keys()].sort();
  const rows: (ApiKeySummary & { user: string })[] = [];
  const ok = await liveSessions(ctx.io, ctx.env, { user: owners.join(', '), stale: 'could not be listed', failed: (why) => `error: ${why}` }, async (store) => {
    const keys = new ApiKeyStore(store);
    for (const user of owners) for (const k of await keys.list(user)) rows.push({ ...k, user });
    return rows.length;
  });
  if (ok === null) return 1;
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  if (values.json) {
    const out = rows.map((k) => ({ id: k.id, user: k.user, name: k.name, prefix: k.prefix, roles: k.roles, createdAt: iso(k.createdAt), lastUsedAt: iso(k.lastUsedAt), expiresAt: iso(k.expiresAt) }));
    ctx.io.stdout.write(`${JSON.stringify({ keys: out }, null, 2)}\n`);
    return 0;
  }
  if (!rows.length) {
    ctx.io.stdout.write('no API keys\n');
    return 0;
  }
  const table = [
    ['ID', 'USER', 'NAME', 'ROLES', 'CREATED', 'LAST USED', 'EXPIRES'],
    ...rows.map((k) => [k.id, k.user, k.name, k.roles.join(',') || '-', iso(k.createdAt)!, iso(k.lastUsedAt) ?? '-', iso(k.expiresAt) ?? 'never']),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const r of table) ctx.io.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`);
  return 0;
}

async function revoke(ctx: Ctx, id: string): Promise<number> {
  if (!isApiKeyId(id)) throw new CliFailure(`"${id.slice(0, 40)}" is not a key id (16 characters, as "api-keys list" shows)`, 2);
  let owner: string | null = null;
  const n = await liveSessions(ctx.io, ctx.env, { user: id, stale: 'is still valid', failed: (why) => `error: the key was not revoked: ${why}` }, async (store) => {
    const keys = new ApiKeyStore(store);
    // the id starts with its owner's slot tag: the record names the owner
    const raw = await keys.readRaw({ tag: id.slice(0, 4), sid: id });
    if (raw === null) return 0;
    owner = parseApiKeyRecord(raw).sub;
    return (await keys.revoke(owner, id)) ? 1 : 0;
  });
  if (n === null) return 1;
  if (n === 0) throw new CliFailure(`no API key ${id}`);
  ctx.io.stdout.write(`revoked API key ${id} of ${owner}\n`);
  return 0;
}
