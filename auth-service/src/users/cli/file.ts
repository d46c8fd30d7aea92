import path from 'node:path';
import type { Document } from 'yaml';
import { CliFailure } from '../password-input.js';
import { formatProblems, newUsersDocument, parseUsersFile, readUsersFile, writeUsersFileAtomic, type LoadedUser } from '../users-file.js';

// Reading and writing the users file for a command: its problems become messages for the
// operator, and a file the service would refuse is never written.

/** The users file, or a new one when `create`; fails when `user` is not in it. */
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

/** Writes the file through a temporary file, after checking it parses. */
export async function save(file: string, doc: Document): Promise<void> {
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
