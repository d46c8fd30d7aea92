import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './support/process.js';

// What may import what (docs/architecture.md). Every `import … from`, `export … from` and
// `import('…')` with a literal specifier in the four packages' sources is read with a
// regular expression and checked against the rules below; a failure lists each forbidden
// edge.

/**
 * The stages of the gateway's request path, in order: a stage imports only earlier ones.
 * `forward-auth` answers a proxy's question with the same routes, policy and identity,
 * instead of proxying; `session-data` takes upstreams' writes to the session.
 */
const STAGES = ['routes', 'session', 'policy', 'identity', 'proxy', 'forward-auth', 'session-data'] as const;
/** Folders of gateway/src around the request path: they may import the stages, no stage imports them. */
const AROUND = new Set(['ops', 'cli', 'pages', 'cluster']);
/**
 * Files directly in gateway/src, by name. `leaf`: shared by every stage, imports no other
 * gateway module; `plugin`: the Fastify plugin that wires the stages; `around`: builds,
 * serves or exports the whole. A new top-level file must be added here.
 */
const TOP_LEVEL: Readonly<Record<string, 'leaf' | 'plugin' | 'around'>> = {
  'errors.ts': 'leaf',
  'defaults.ts': 'leaf',
  'pipeline.ts': 'plugin',
  'settings.ts': 'around',
  'app.ts': 'around',
  'server.ts': 'around',
  'index.ts': 'around',
};
/** The only files that may import the top-level plugin. */
const PLUGIN_IMPORTERS = new Set(['gateway/src/app.ts', 'gateway/src/index.ts']);

/**
 * Edges that break a rule and are allowed for a stated reason. Delete an entry as soon as
 * its edge is gone (a stale entry fails).
 */
const ALLOWED: readonly { from: string; to: string; reason: string }[] = [];

const PACKAGES = ['gateway', 'auth-service', 'session', 'service-kit'] as const;
type Package = (typeof PACKAGES)[number];
/** Workspace package names, and the folder each lives in. */
const WORKSPACE: Readonly<Record<string, Package>> = {
  sessiongate: 'gateway',
  '@sessiongate/auth-service': 'auth-service',
  '@sessiongate/session': 'session',
  '@sessiongate/service-kit': 'service-kit',
};
/** Which workspace packages each package may import. */
const MAY_IMPORT: Readonly<Record<Package, readonly Package[]>> = {
  gateway: ['session', 'service-kit', 'auth-service'],
  'auth-service': ['session', 'service-kit'],
  session: ['service-kit'],
  'service-kit': [],
};

interface Edge {
  /** The importing file, relative to the repository. */
  from: string;
  /** A file of the repository (relative imports) or a package specifier. */
  to: string;
  /** A workspace package the specifier names, if any. */
  pkg?: Package;
  /** A relative import, resolved to a file. */
  relative?: true;
}

const IMPORT_RE = /\b(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

function sourceFiles(pkg: Package): string[] {
  const dir = path.join(ROOT, pkg, 'src');
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => path.join(pkg, 'src', f).split(path.sep).join('/'));
}

function edgesOf(file: string): Edge[] {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  const out: Edge[] = [];
  for (const m of text.matchAll(IMPORT_RE)) {
    const spec = (m[1] ?? m[2])!;
    if (spec.startsWith('.')) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, '.ts');
      out.push({ from: file, to: target, relative: true });
      continue;
    }
    const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
    const pkg = WORKSPACE[name];
    out.push({ from: file, to: spec, ...(pkg ? { pkg } : {}) });
  }
  return out;
}

type Place = { kind: 'stage'; index: number } | { kind: 'leaf' | 'plugin' | 'around' } | { kind: 'unknown' };

/** Where a gateway/src file sits: by its folder, or by its name when it is top-level. */
function placeOf(file: string): Place {
  const rel = file.slice('gateway/src/'.length);
  const parts = rel.split('/');
  if (parts.length === 1) {
    const kind = TOP_LEVEL[parts[0]!];
    return kind ? { kind } : { kind: 'unknown' };
  }
  const folder = parts[0]!;
  const index = (STAGES as readonly string[]).indexOf(folder);
  if (index >= 0) return { kind: 'stage', index };
  return AROUND.has(folder) ? { kind: 'around' } : { kind: 'unknown' };
}

function describePlace(p: Place): string {
  return p.kind === 'stage' ? `stage ${STAGES[p.index]}` : p.kind;
}

/** Why an edge is forbidden, or null. */
function violation(edge: Edge): string | null {
  const fromPkg = edge.from.split('/')[0] as Package;
  if (edge.pkg) {
    if (edge.pkg === fromPkg) return `${fromPkg} imports itself by its package name`;
    if (!MAY_IMPORT[fromPkg].includes(edge.pkg)) return `${fromPkg} may not import the ${edge.pkg} package`;
    return null;
  }
  // node: modules and third-party packages
  if (!edge.relative) return null;
  if (!edge.to.startsWith(`${fromPkg}/src/`)) return `reaches into ${edge.to} outside ${fromPkg}/src`;
  if (fromPkg !== 'gateway') return null;
  const from = placeOf(edge.from);
  const to = placeOf(edge.to);
  if (from.kind === 'unknown') return `${edge.from} has no place in the rules (add its folder or name to the test)`;
  if (to.kind === 'unknown') return `${edge.to} has no place in the rules (add its folder or name to the test)`;
  if (to.kind === 'plugin' && !PLUGIN_IMPORTERS.has(edge.from)) return 'only app.ts and index.ts import the top-level plugin';
  if (from.kind === 'leaf' && to.kind !== 'leaf') return `a shared leaf imports the ${describePlace(to)}`;
  if (from.kind === 'stage') {
    if (to.kind === 'around') return `the ${describePlace(from)} imports ${edge.to}, which sits around the request path`;
    if (to.kind === 'stage' && to.index > from.index) return `the ${describePlace(from)} imports the later ${describePlace(to)}`;
  }
  return null;
}

function isAllowed(edge: Edge): boolean {
  return ALLOWED.some((a) => a.from === edge.from && a.to === edge.to);
}

const allEdges = PACKAGES.flatMap((p) => sourceFiles(p).flatMap(edgesOf));

describe('the import rules', () => {
  it('finds the imports of every package', () => {
    // the regular expression keeps up with the sources: each package has edges of each kind
    for (const p of PACKAGES) expect(allEdges.filter((e) => e.from.startsWith(`${p}/`)).length, p).toBeGreaterThan(10);
    expect(allEdges).toContainEqual({ from: 'auth-service/src/app.ts', to: '@sessiongate/session', pkg: 'session' });
    expect(allEdges).toContainEqual({ from: 'gateway/src/cli/main.ts', to: 'gateway/src/cli/check.ts', relative: true });
  });

  it('no forbidden edge', () => {
    const forbidden = allEdges
      .filter((e) => !isAllowed(e))
      .flatMap((e) => {
        const why = violation(e);
        return why ? [`${e.from} → ${e.to}: ${why}`] : [];
      });
    expect(forbidden, `forbidden imports:\n${forbidden.join('\n')}`).toEqual([]);
  });

  it('every allow-list entry is still an edge that breaks a rule', () => {
    const stale = ALLOWED.filter((a) => !allEdges.some((e) => e.from === a.from && e.to === a.to && violation(e) !== null));
    expect(stale, 'delete these entries: the edge is gone').toEqual([]);
  });

  it('no package index re-exports with export *', () => {
    for (const p of PACKAGES) {
      for (const file of sourceFiles(p).filter((f) => f.endsWith('/index.ts'))) {
        expect(readFileSync(path.join(ROOT, file), 'utf8'), file).not.toMatch(/^\s*export\s+\*/m);
      }
    }
  });

  it('catches each kind of forbidden edge', () => {
    const cases: [Edge, RegExp][] = [
      [{ from: 'auth-service/src/app.ts', to: 'sessiongate', pkg: 'gateway' }, /may not import the gateway/],
      [{ from: 'auth-service/src/app.ts', to: 'gateway/src/session/plugin.ts', relative: true }, /outside auth-service\/src/],
      [{ from: 'session/src/store.ts', to: '@sessiongate/auth-service', pkg: 'auth-service' }, /may not import/],
      [{ from: 'service-kit/src/cli.ts', to: '@sessiongate/session', pkg: 'session' }, /may not import/],
      [{ from: 'gateway/src/session/plugin.ts', to: 'gateway/src/proxy/headers.ts', relative: true }, /later stage proxy/],
      [{ from: 'gateway/src/routes/match.ts', to: 'gateway/src/ops/metrics.ts', relative: true }, /sits around/],
      [{ from: 'gateway/src/identity/signer.ts', to: 'gateway/src/pipeline.ts', relative: true }, /top-level plugin/],
      [{ from: 'gateway/src/settings.ts', to: 'gateway/src/pipeline.ts', relative: true }, /top-level plugin/],
      [{ from: 'gateway/src/policy/admission.ts', to: 'gateway/src/ops/tracing.ts', relative: true }, /sits around/],
      [{ from: 'gateway/src/policy/admission.ts', to: 'gateway/src/proxy/body.ts', relative: true }, /later stage proxy/],
      [{ from: 'gateway/src/defaults.ts', to: 'gateway/src/settings.ts', relative: true }, /shared leaf/],
      [{ from: 'gateway/src/errors.ts', to: 'gateway/src/pages/error-page.ts', relative: true }, /shared leaf/],
      [{ from: 'gateway/src/utils/x.ts', to: 'gateway/src/errors.ts', relative: true }, /no place/],
    ];
    for (const [edge, why] of cases) expect(violation(edge), `${edge.from} → ${edge.to}`).toMatch(why);
    expect(violation({ from: 'gateway/src/policy/csrf.ts', to: 'gateway/src/routes/types.ts', relative: true })).toBeNull();
    expect(violation({ from: 'gateway/src/app.ts', to: 'gateway/src/pipeline.ts', relative: true })).toBeNull();
    expect(violation({ from: 'gateway/src/pipeline.ts', to: 'gateway/src/ops/tracing.ts', relative: true })).toBeNull();
  });
});
