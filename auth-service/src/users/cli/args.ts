import { MAX_ROLES } from '@sessiongate/session';
import { CliFailure } from '../password-input.js';
import { MAX_PROFILE_FIELDS, MAX_PROFILE_VALUE_LENGTH, profileProblem, profileSizeProblem, roleProblem } from '../users-file.js';

// The values of the command line: roles and profile fields, checked as the users file
// checks them. A bad value is a usage error (exit 2).

/** `a,b` → the roles, without blanks or repeats. */
export function parseRoles(arg: string): string[] {
  const roles = [...new Set(arg.split(',').map((r) => r.trim()).filter(Boolean))];
  for (const r of roles) {
    const p = roleProblem(r);
    if (p) throw new CliFailure(p, 2);
  }
  if (roles.length > MAX_ROLES) throw new CliFailure(`at most ${MAX_ROLES} roles`, 2);
  return roles;
}

/** `--profile key=value`, repeated → the profile. */
export function parseProfile(pairs: readonly string[]): Record<string, string> {
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
