import path from 'node:path';
import { watchFile } from '@sessiongate/service-kit';
import { InvalidUsersFile } from '../errors.js';
import type { CurrentUser, User, UserChange, UserDirectory, Verification } from './directory.js';
import { defaultParams, formatHash, formatParams, verifyPassword, type ScryptParams } from './password.js';
import { UnknownUserCosts } from './unknown-user-cost.js';
import { formatProblems, readUsersFile, type LoadedUser } from './users-file.js';

/** How long to wait for a burst of file events to settle before reloading. @default 100 */
export const DEFAULT_RELOAD_DEBOUNCE_MS = 100;

interface Log {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const silent: Log = { info() {}, warn() {}, error() {} };

export interface FileUserDirectoryOptions {
  /** log2 N of new hashes: unknown names are checked at it when the file has no users. */
  scryptCost: number;
  /** Reload when the file changes. @default false */
  watch?: boolean;
  /** @default DEFAULT_RELOAD_DEBOUNCE_MS */
  debounceMs?: number;
  log?: Log;
  /** Told the result of every reload (for a metric). */
  onReload?: (ok: boolean) => void;
  /** Told the scrypt parameters of every password check, unknown names included (for a metric). */
  onCheck?: (cost: string) => void;
}

export type ReloadOutcome = { ok: true; users: number; changes: readonly UserChange[] } | { ok: false; problems: string };

/** Users from the YAML users file, reloaded when it changes. */
export class FileUserDirectory implements UserDirectory {
  readonly file: string;
  private users: ReadonlyMap<string, LoadedUser> = new Map();
  private loaded = false;
  private readonly log: Log;
  private readonly fallbackParams: ScryptParams;
  private unknown: UnknownUserCosts;
  private readonly listeners = new Set<(changes: readonly UserChange[]) => void>();
  private watcher: { close(): void } | undefined;
  private reloading: Promise<unknown> = Promise.resolve();

  private constructor(file: string, private readonly opts: FileUserDirectoryOptions) {
    this.file = path.resolve(file);
    this.log = opts.log ?? silent;
    this.fallbackParams = defaultParams(opts.scryptCost);
    this.unknown = new UnknownUserCosts([], this.fallbackParams);
  }

  /**
   * Loads the file. A file that does not exist yet gives an empty directory (not ready) that
   * fills once the file appears; an invalid file refuses to start.
   *
   * @throws InvalidUsersFile (`SA_ERR_INVALID_USERS_FILE`) with every problem and its line.
   */
  static async open(file: string, opts: FileUserDirectoryOptions): Promise<FileUserDirectory> {
    const dir = new FileUserDirectory(file, opts);
    const r = await readUsersFile(dir.file);
    if (r.ok) dir.swap(r.users);
    else if ('missing' in r) dir.log.warn({ file: dir.file }, 'users file does not exist yet: nobody can log in until it is created');
    else throw new InvalidUsersFile(`invalid users file:\n${formatProblems(dir.file, r.problems)}`);
    if (opts.watch) dir.startWatching();
    return dir;
  }

  ready(): boolean {
    return this.loaded;
  }

  get size(): number {
    return this.users.size;
  }

  async find(name: string): Promise<User | null> {
    return this.users.get(name) ?? null;
  }

  async verify(name: string, password: string): Promise<Verification> {
    const user = this.users.get(name);
    const hash = user?.hash ?? this.unknown.hashFor(name);
    this.opts.onCheck?.(formatParams(hash));
    const match = await verifyPassword(password, hash);
    if (!user) return { outcome: 'unknown_user' };
    if (!match) return { outcome: 'wrong_password' };
    return user.disabled ? { outcome: 'disabled', user } : { outcome: 'ok', user, credential: formatHash(user.hash) };
  }

  /**
   * Reads the file itself: the users in memory follow it only after a watch event and a
   * debounce (or SIGHUP), and `sessiongate users` ends sessions right after writing it. A
   * file that cannot be read now (vanished, invalid) leaves the users in force.
   */
  async current(name: string): Promise<CurrentUser | null> {
    const r = await readUsersFile(this.file);
    const user = r.ok ? r.users.get(name) : this.users.get(name);
    return user ? { user, credential: formatHash(user.hash) } : null;
  }

  onChange(listener: (changes: readonly UserChange[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Re-reads the file; an invalid or vanished file keeps the users in force. */
  reload(): Promise<ReloadOutcome> {
    const next = this.reloading.then(() => this.reloadNow());
    this.reloading = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    this.watcher?.close();
    this.watcher = undefined;
    await this.reloading;
  }

  private async reloadNow(): Promise<ReloadOutcome> {
    const r = await readUsersFile(this.file);
    if (!r.ok) {
      const problems = formatProblems(this.file, r.problems);
      if ('missing' in r) this.log.warn({ file: this.file, users: this.users.size }, 'users file vanished: keeping the users loaded');
      else this.log.error({ file: this.file, problems: problems.split('\n') }, 'users file reload failed: keeping the users loaded');
      this.opts.onReload?.(false);
      return { ok: false, problems };
    }
    const changes = this.loaded ? diff(this.users, r.users) : [];
    this.swap(r.users);
    this.log.info({ file: this.file, users: r.users.size, changed: changes.length }, 'users file reloaded');
    this.opts.onReload?.(true);
    if (changes.length) for (const l of this.listeners) l(changes);
    return { ok: true, users: r.users.size, changes };
  }

  private swap(users: ReadonlyMap<string, LoadedUser>): void {
    this.users = users;
    this.loaded = true;
    this.unknown = new UnknownUserCosts(users.values(), this.fallbackParams);
  }

  private startWatching(): void {
    this.watcher = watchFile(this.file, {
      what: 'users file',
      log: this.log,
      debounceMs: this.opts.debounceMs ?? DEFAULT_RELOAD_DEBOUNCE_MS,
      onChange: () => void this.reload(),
    });
  }
}

/** What changed between two loads that live sessions must follow. */
function diff(before: ReadonlyMap<string, User>, after: ReadonlyMap<string, User>): UserChange[] {
  const out: UserChange[] = [];
  for (const [name, old] of before) {
    const now = after.get(name);
    if (!now) out.push({ kind: 'removed', name });
    else if (now.disabled && !old.disabled) out.push({ kind: 'disabled', name });
    else if (!now.disabled && !sameRoles(old.roles, now.roles)) out.push({ kind: 'roles', name, roles: now.roles });
  }
  return out;
}

function sameRoles(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((r, i) => r === b[i]);
}
