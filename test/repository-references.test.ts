import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './support/process.js';

// Comments, messages and docs point only at files the repository holds: a reader who
// follows a reference finds it.

const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' })
  .split('\0')
  .filter((f) => f && /\.(ts|mjs|js|yaml|yml|md|json|py|sh|service)$/.test(f) && !f.startsWith('test/fixtures/'))
  .filter((f) => existsSync(path.join(ROOT, f)));

describe('references inside the repository', () => {
  it('no tracked file mentions a design document the repository does not have', () => {
    const missing = ['DESIGN', 'md'].join('.');
    const hits = tracked.filter((f) => readFileSync(path.join(ROOT, f), 'utf8').includes(missing));
    expect(tracked.length).toBeGreaterThan(50);
    expect(hits).toEqual([]);
  });

  it('every docs/*.md a file names exists', () => {
    const named = new Map<string, string>();
    for (const f of tracked) {
      for (const m of readFileSync(path.join(ROOT, f), 'utf8').matchAll(/\bdocs\/[a-z0-9-]+\.md\b/g)) named.set(m[0], f);
    }
    expect(named.has('docs/routes.md')).toBe(true);
    const absent = [...named].filter(([doc]) => !existsSync(path.join(ROOT, doc))).map(([doc, f]) => `${doc} (named in ${f})`);
    expect(absent).toEqual([]);
  });
});
