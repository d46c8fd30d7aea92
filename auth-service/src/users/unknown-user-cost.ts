import { createHash, createHmac } from 'node:crypto';
import { dummyHash, formatParams, type PasswordHash, type ScryptParams } from './password.js';

// A name that is no user must cost what a user costs. Checking every unknown name at the
// cost most users have leaves users with another cost (older or newer hashes) answering
// measurably slower or faster than unknown names: a way to tell which names exist. So each
// unknown name is given the cost of one of the users, picked by a keyed hash of the name:
// across names, costs come in the same mix as the users' own, and a given name always gets
// the same one (retries cannot average it out), on every instance that loads the same file.

/** Which parameters an unknown user name is checked at, for one load of the users. */
export class UnknownUserCosts {
  // one entry per user, in a fixed order: picking an index picks a cost in its proportion
  private readonly costs: readonly ScryptParams[];
  private readonly key: Buffer;
  // one per distinct cost of the file: bounded by the users
  private readonly dummies = new Map<string, PasswordHash>();

  /** `fallback` applies when there are no users. */
  constructor(users: Iterable<{ readonly name: string; readonly hash: PasswordHash }>, fallback: ScryptParams) {
    const list = [...users];
    this.costs = list.length
      ? list.map((u) => ({ ln: u.hash.ln, r: u.hash.r, p: u.hash.p })).sort((a, b) => work(a) - work(b) || formatParams(a).localeCompare(formatParams(b)))
      : [fallback];
    // the salts are as secret as the file and the same wherever it is loaded: the pick is
    // unpredictable from outside and agrees between instances
    const digest = createHash('sha256');
    for (const u of list.sort((a, b) => (a.name < b.name ? -1 : 1))) digest.update(`${u.name}\n`).update(u.hash.salt);
    this.key = digest.digest();
    for (const c of this.costs) this.dummyFor(c);
  }

  /** The parameters `name` is checked at when it is no user. */
  paramsFor(name: string): ScryptParams {
    const u = createHmac('sha256', this.key).update(name, 'utf8').digest().readUIntBE(0, 6) / 2 ** 48;
    return this.costs[Math.floor(u * this.costs.length)]!;
  }

  /** The hash `name` is checked against when it is no user. */
  hashFor(name: string): PasswordHash {
    return this.dummyFor(this.paramsFor(name));
  }

  private dummyFor(params: ScryptParams): PasswordHash {
    const k = formatParams(params);
    let d = this.dummies.get(k);
    if (!d) {
      d = dummyHash(params);
      this.dummies.set(k, d);
    }
    return d;
  }
}

// scrypt's time and memory grow with N·r·p
function work(p: ScryptParams): number {
  return 2 ** p.ln * p.r * p.p;
}
