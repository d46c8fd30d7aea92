import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { LineCounter, isMap, isNode, isScalar, parseDocument, type Document, type Node } from 'yaml';
import { MAX_ROLES, MAX_VALUE_LENGTH, RESERVED_CLAIMS, UNSAFE_CHARS } from '@sessiongate/session';
import { parseHash, type PasswordHash } from './password.js';
import type { ProfileValue, User } from './directory.js';

// The users file (SESSIONGATE_USERS), version 1:
//
//   version: 1
//   users:
//     alice:
//       roles: [user, admin]
//       password: $scrypt$ln=17,r=8,p=1$…$…
//       disabled: false          # optional
//       profile:                 # optional: extra claims of every session of the user
//         name: Alice Example
//         email: alice@example.com

export const USERS_FILE_VERSION = 1;
/** User names: lower case, so a login matches whatever case is typed. */
export const USER_NAME_RE = /^[a-z0-9][a-z0-9._@+-]{0,63}$/;
export const ROLE_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
export const PROFILE_KEY_RE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
export const MAX_PROFILE_FIELDS = 32;
/** Longest profile string: what the session record accepts. */
export const MAX_PROFILE_VALUE_LENGTH = MAX_VALUE_LENGTH;
/**
 * Largest profile, as the UTF-8 bytes of its JSON: every field travels in each X-Session of
 * the user. With it full, 64 roles of 64 characters and a 64-character name, an EdDSA
 * X-Session is 7486 bytes, under the gateway's 8192-byte limit; 32 fields of 256 characters
 * could reach 26 KiB, and every request of that user would fail.
 */
export const MAX_PROFILE_BYTES = 1024;
// a surrogate without its partner (the `u` flag leaves proper pairs alone): no UTF-8 for it
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

const ProfileValueSchema = Type.Union([Type.String({ maxLength: MAX_PROFILE_VALUE_LENGTH }), Type.Number(), Type.Boolean()], {
  errorMessage: `must be a string (at most ${MAX_PROFILE_VALUE_LENGTH} characters), a number or true/false`,
});

const UserEntrySchema = Type.Object(
  {
    roles: Type.Array(Type.String({ pattern: ROLE_RE.source, errorMessage: 'is not a role name ([A-Za-z0-9._:-], at most 64)' }), {
      maxItems: MAX_ROLES,
      errorMessage: `must be a list of at most ${MAX_ROLES} role names`,
    }),
    password: Type.String({ minLength: 1, errorMessage: 'must be a scrypt hash (set it with `sessiongate users set-password`)' }),
    disabled: Type.Optional(Type.Boolean({ errorMessage: 'must be true or false' })),
    profile: Type.Optional(
      Type.Record(Type.String(), ProfileValueSchema, {
        maxProperties: MAX_PROFILE_FIELDS,
        errorMessage: `must be a map of at most ${MAX_PROFILE_FIELDS} fields`,
      }),
    ),
  },
  { additionalProperties: false, errorMessage: 'must be a map with roles, password and optionally disabled and profile' },
);

export const UsersFileSchema = Type.Object(
  {
    version: Type.Literal(USERS_FILE_VERSION, { errorMessage: `must be ${USERS_FILE_VERSION}` }),
    users: Type.Record(Type.String(), UserEntrySchema, { errorMessage: 'must be a map of user name to user' }),
  },
  { additionalProperties: false, errorMessage: 'must be a map with version and users' },
);

export type UserEntry = Static<typeof UserEntrySchema>;
export type UsersFile = Static<typeof UsersFileSchema>;

/** A user as loaded, with the hash already parsed. */
export interface LoadedUser extends User {
  readonly hash: PasswordHash;
}

export interface Problem {
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

export type ParseResult =
  | { ok: true; doc: Document; users: ReadonlyMap<string, LoadedUser> }
  | { ok: false; problems: Problem[] };

export function formatProblems(file: string, problems: readonly Problem[]): string {
  return problems.map((p) => `${file}:${p.line}:${p.col}: ${p.message}`).join('\n');
}

/** Why a user name is unusable, or null. */
export function userNameProblem(name: string): string | null {
  return USER_NAME_RE.test(name) ? null : `"${name.slice(0, 80)}" is not a user name (lower case a-z, 0-9 and . _ @ + -, at most 64, starting with a letter or digit)`;
}

export function roleProblem(role: string): string | null {
  return ROLE_RE.test(role) ? null : `"${role.slice(0, 80)}" is not a role name (A-Z, a-z, 0-9 and . _ : -, at most 64)`;
}

export function profileProblem(key: string, value: unknown): string | null {
  if (!PROFILE_KEY_RE.test(key)) return `"${key.slice(0, 80)}" is not a profile field name (a letter, then letters, digits or _)`;
  if (RESERVED_CLAIMS.has(key)) return `"${key}" is a reserved claim and cannot be a profile field`;
  if (typeof value === 'string' && UNSAFE_CHARS.test(value)) return `"${key}" holds a control character`;
  if (typeof value === 'string' && LONE_SURROGATE.test(value)) return `"${key}" holds a lone UTF-16 surrogate (not valid Unicode text)`;
  if (typeof value === 'number' && !Number.isFinite(value)) return `"${key}" is not a finite number`;
  return null;
}

/** Why a whole profile is unusable (too large to travel in X-Session), or null. */
export function profileSizeProblem(profile: Readonly<Record<string, unknown>>): string | null {
  const bytes = Buffer.byteLength(JSON.stringify(profile), 'utf8');
  if (bytes <= MAX_PROFILE_BYTES) return null;
  return `the profile takes ${bytes} bytes as JSON, over the limit of ${MAX_PROFILE_BYTES} (it travels in the X-Session of every request): shorten or drop fields`;
}

/** Parses and validates the text of a users file; every problem comes with its line and column. */
export function parseUsersFile(text: string): ParseResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number | undefined, message: string): Problem => {
    const pos = lineCounter.linePos(offset ?? 0);
    return { line: pos.line, col: pos.col, message };
  };
  if (doc.errors.length) return { ok: false, problems: doc.errors.map((e) => at(e.pos[0], e.message.split('\n')[0]!)) };

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, problems: [at(0, (err as Error).message)] };
  }
  // `users:` with nothing under it is an empty map, not an error
  if (isRecord(data) && data.users === null) data.users = {};

  // the node at a JSON-pointer-like path, or its nearest existing parent
  const nodeAt = (segments: string[]): Node | null => {
    for (let n = segments.length; n >= 0; n--) {
      const node = doc.getIn(segments.slice(0, n), true);
      if (isNode(node)) return node;
    }
    return isNode(doc.contents) ? doc.contents : null;
  };
  const problemAt = (segments: string[], message: string): Problem => {
    const where = segments.length ? `${segments.join('.')}: ` : '';
    return at(nodeAt(segments)?.range?.[0], `${where}${message}`);
  };

  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const e of Value.Errors(UsersFileSchema, data)) {
    const segments = e.path.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const key = segments.join('/');
    // one message per place: a union or a missing member reports several
    if (seen.has(key)) continue;
    seen.add(key);
    const custom = (e.schema as TSchema & { errorMessage?: string }).errorMessage;
    const message = e.message === 'Unexpected property' ? 'is not a known setting' : e.message === 'Expected required property' ? 'is required' : (custom ?? e.message);
    problems.push(problemAt(segments, message));
  }
  // what the schema cannot say, checked even when it already found something, so one run
  // shows every problem
  const users = new Map<string, LoadedUser>();
  const entries = isRecord(data) && isRecord(data.users) ? Object.entries(data.users) : [];
  const usersNode = doc.get('users', true);
  for (const [name, entry] of entries) {
    const nameProblem = userNameProblem(name);
    if (nameProblem) {
      const pair = isMap(usersNode) ? usersNode.items.find((i) => isScalar(i.key) && i.key.value === name) : undefined;
      problems.push(at((pair?.key as Node | undefined)?.range?.[0], `users: ${nameProblem}`));
    }
    if (!isRecord(entry)) continue;
    const hash = typeof entry.password === 'string' ? parseHash(entry.password) : null;
    if (typeof hash === 'string') problems.push(problemAt(['users', name, 'password'], `password ${hash}`));
    if (isRecord(entry.profile)) {
      for (const [k, v] of Object.entries(entry.profile)) {
        const p = profileProblem(k, v);
        if (p) problems.push(problemAt(['users', name, 'profile', k], p));
      }
      const tooLarge = profileSizeProblem(entry.profile);
      if (tooLarge) problems.push(problemAt(['users', name, 'profile'], tooLarge));
    }
    if (problems.length || hash === null || typeof hash === 'string') continue;
    const e = entry as UserEntry;
    users.set(
      name,
      Object.freeze({
        name,
        roles: Object.freeze([...new Set(e.roles)]),
        disabled: e.disabled === true,
        profile: Object.freeze({ ...(e.profile ?? {}) }) as Readonly<Record<string, ProfileValue>>,
        hash,
      }),
    );
  }
  if (problems.length) return { ok: false, problems: problems.sort((a, b) => a.line - b.line || a.col - b.col) };
  return { ok: true, doc, users };
}

export type ReadResult = ParseResult | { ok: false; missing: true; problems: Problem[] };

/** Reads and parses a users file; a file that does not exist is reported as `missing`. */
export async function readUsersFile(file: string): Promise<ReadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ok: false, missing: true, problems: [{ line: 0, col: 0, message: 'does not exist' }] };
    return { ok: false, problems: [{ line: 0, col: 0, message: `cannot be read (${code ?? (err as Error).message})` }] };
  }
  return parseUsersFile(text.replace(/^\uFEFF/, ''));
}

const NEW_FILE = `# sessiongate users: change it with \`sessiongate users …\` (see \`sessiongate users --help\`).
# Passwords are scrypt hashes; the service reloads this file when it changes.
version: 1
users: {}
`;

/** A document for a file that does not exist yet. */
export function newUsersDocument(): Document {
  return parseDocument(NEW_FILE);
}

/** Edits of a users document for the CLI; comments and layout of the rest are kept. */
export const edit = {
  addUser(doc: Document, name: string, entry: UserEntry): void {
    const users = doc.get('users', true);
    if (!isMap(users)) doc.set('users', doc.createNode({}));
    // `users: {}` is a flow map: the first user turns it into a block one
    else users.flow = false;
    const node = doc.createNode(entry);
    const roles = (node as unknown as { get(k: string, keep: true): { flow?: boolean } }).get('roles', true);
    roles.flow = true;
    doc.setIn(['users', name], node);
  },
  setRoles(doc: Document, name: string, roles: readonly string[]): void {
    const node = doc.createNode([...roles]);
    (node as { flow?: boolean }).flow = true;
    doc.setIn(['users', name, 'roles'], node);
  },
  setDisabled(doc: Document, name: string, disabled: boolean): void {
    if (disabled) doc.setIn(['users', name, 'disabled'], true);
    else doc.deleteIn(['users', name, 'disabled']);
  },
  setPassword(doc: Document, name: string, hash: string): void {
    doc.setIn(['users', name, 'password'], hash);
  },
  removeUser(doc: Document, name: string): void {
    doc.deleteIn(['users', name]);
  },
};

/**
 * Writes the file atomically: a temporary file beside it (mode 0600), flushed to disk, then
 * renamed over it. A reader sees the old file or the new one, never half of one.
 */
export async function writeUsersFileAtomic(file: string, text: string): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(text, 'utf8');
    await fh.sync();
    await fh.close();
    await rename(tmp, file);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
