// What the auth service needs from wherever users live. The file-backed directory is one
// implementation; an LDAP or database one would implement the same members.

export type ProfileValue = string | number | boolean;

/** A user as the service sees it; `name` is the user id (`sub`). */
export interface User {
  readonly name: string;
  readonly roles: readonly string[];
  readonly disabled: boolean;
  /** Extra claims put into every session of the user (and shown by GET /auth/me). */
  readonly profile: Readonly<Record<string, ProfileValue>>;
}

/** The outcome of checking a name and a password. Only `ok` may log in. */
export type Verification =
  | { readonly outcome: 'ok'; readonly user: User; readonly credential: string }
  | { readonly outcome: 'disabled'; readonly user: User }
  | { readonly outcome: 'wrong_password' }
  | { readonly outcome: 'unknown_user' };

export interface CurrentUser {
  readonly user: User;
  readonly credential: string;
}

/** A change to a user that live sessions must follow. */
export type UserChange =
  | { readonly kind: 'roles'; readonly name: string; readonly roles: readonly string[] }
  | { readonly kind: 'disabled'; readonly name: string }
  | { readonly kind: 'removed'; readonly name: string };

export interface UserDirectory {
  /**
   * Checks a name and a password. An unknown name must cost the same time as a wrong
   * password, and a disabled user's password is still checked.
   */
  verify(name: string, password: string): Promise<Verification>;
  /** The user of this name, or null. */
  find(name: string): Promise<User | null>;
  /**
   * The user as the source of truth holds it now (not as cached), with its `credential`: a
   * value that differs whenever the password does, as `verify` returns it. Login reads it
   * after creating a session: a change made since the password was checked (by a command
   * that ended the user's sessions before this one existed) must end that session too.
   */
  current(name: string): Promise<CurrentUser | null>;
  /** True once the users are loaded (for /readyz). */
  ready(): boolean;
  /** Tells about changes made outside the service (an edited file), so sessions can follow. */
  onChange?(listener: (changes: readonly UserChange[]) => void): () => void;
}

// a UTF-16 surrogate without its partner (the `u` flag leaves proper pairs alone)
const LONE_SURROGATE = /[\uD800-\uDFFF]/gu;

/**
 * Replaces lone UTF-16 surrogates with U+FFFD: JSON can carry them, but UTF-8 and
 * `encodeURIComponent` (Redis keys) cannot.
 */
export function wellFormed(input: string): string {
  return input.replace(LONE_SURROGATE, '\uFFFD');
}

/**
 * User names are lower case; logins are matched case-insensitively through this. The result
 * is always well-formed text (no user name can hold a lone surrogate anyway).
 */
export function normalizeUserName(input: string): string {
  return wellFormed(input.trim().toLowerCase());
}
