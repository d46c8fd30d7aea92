// The routes.yaml loader (reference: docs/routes.md): YAML text → every problem
// with its line and column, or a frozen, normalized RouteSet. Three passes: YAML syntax,
// the TypeBox schema (shape and types), then the rules a schema can't say well (paths,
// URLs, uniqueness, roles vs auth), each with a message naming the option path.

import { readFile } from 'node:fs/promises';
import { METHODS } from 'node:http';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import {
  LineCounter,
  isAlias,
  isCollection,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  parseDocument,
  visit,
  type Document,
  type Node,
  type Pair,
  type YAMLError,
} from 'yaml';
import { parseByteSize, parseDuration } from '@sessiongate/service-kit';
import type { AuthMode, MethodOverrideMode, MethodRule, RoleRule, Route, RouteSet, RoutesProblem } from './types.js';

/**
 * Request body limit of a route without `bodyLimit`, in bytes.
 * @default 1048576 (1 MiB)
 */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/**
 * Upstream timeout of a route without `timeout`, in milliseconds.
 * @default 30000 (30 s)
 */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 30_000;

/**
 * What a route does with a `_method` parameter, absent `methodOverride`.
 * @default 'refuse'
 */
export const DEFAULT_METHOD_OVERRIDE: MethodOverrideMode = 'refuse';

// Node timers take at most 2^31-1 ms; a longer delay fires after 1 ms instead.
const MAX_UPSTREAM_TIMEOUT_MS = 2_147_483_647;

// Methods an override may name: the common ones, and any other method Node's parser
// accepts (PURGE, PROPFIND…), which is refused with 405 unless a route lists it. HEAD always
// follows GET, TRACE and CONNECT are never proxied, so a rule for them could never apply.
const OVERRIDABLE_METHODS: readonly string[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
const LISTABLE_METHODS: ReadonlySet<string> = new Set(
  [...OVERRIDABLE_METHODS, ...METHODS].filter((m) => m !== 'HEAD' && m !== 'TRACE' && m !== 'CONNECT'),
);

// ---------------------------------------------------------------------------------------
// The schema: the one source of the input types. `expected` and `hint` are ours, read
// back when a value fails, so every message says what would have been right.

const NAME_PATTERN = '^[a-z0-9-]+$';
const ROLE_PATTERN = '^[A-Za-z0-9_.:-]+$';

const RoleNameSchema = Type.String({
  pattern: ROLE_PATTERN,
  expected: 'a role name',
  hint: 'letters, digits, "_", ".", ":", "-"',
});
const RoleListSchema = Type.Array(RoleNameSchema, {
  minItems: 1,
  uniqueItems: true,
  expected: 'a non-empty list of role names',
});
const RolesSchema = Type.Union(
  [
    RoleListSchema,
    Type.Object({ any: RoleListSchema }, { additionalProperties: false }),
    Type.Object({ all: RoleListSchema }, { additionalProperties: false }),
  ],
  { expected: 'a list of role names (any one of them), { any: [...] } or { all: [...] }', roleRule: true },
);
const AuthSchema = Type.Union([Type.Literal('required'), Type.Literal('optional'), Type.Literal('none')], {
  expected: 'one of required, optional, none',
});
const MethodOverrideSchema = Type.Object(
  { auth: Type.Optional(AuthSchema), roles: Type.Optional(RolesSchema) },
  {
    additionalProperties: false,
    // an override replaces the route's roles: an empty one would silently drop them
    minProperties: 1,
    expected: 'a mapping with roles and/or auth (an override replaces the route’s roles)',
  },
);
const RouteSchema = Type.Object(
  {
    name: Type.String({
      pattern: NAME_PATTERN,
      maxLength: 63,
      expected: 'a route name of lower-case letters, digits and "-"',
      hint: 'lower-case letters, digits, "-"',
    }),
    prefix: Type.String({ expected: 'a path starting with "/"' }),
    upstream: Type.String({ expected: 'an absolute http: or https: URL' }),
    rewritePrefix: Type.Optional(Type.String({ expected: 'a path starting with "/", or "" for the root' })),
    auth: Type.Optional(AuthSchema),
    roles: Type.Optional(RolesSchema),
    methods: Type.Optional(
      Type.Record(Type.String(), MethodOverrideSchema, {
        expected: 'a mapping from HTTP method (GET, POST, ...) to { roles, auth }',
      }),
    ),
    bodyLimit: Type.Optional(
      Type.Union([Type.Integer(), Type.String()], {
        expected: 'a positive integer number of bytes or a size like "512kb", "10mb"',
      }),
    ),
    timeout: Type.Optional(
      Type.Union([Type.Integer(), Type.String()], {
        expected: 'a positive integer number of milliseconds or a duration like "500ms", "30s", "2m"',
      }),
    ),
    csrf: Type.Optional(Type.Boolean({ expected: 'true or false' })),
    methodOverride: Type.Optional(
      Type.Union([Type.Literal('refuse'), Type.Literal('allow')], { expected: 'one of refuse, allow' }),
    ),
  },
  { additionalProperties: false, expected: 'a mapping with name, prefix and upstream' },
);

/** The schema of routes.yaml version 1, as written (before defaults and normalization). */
export const RoutesFileSchema = Type.Object(
  {
    version: Type.Literal(1, { expected: 'the integer 1' }),
    routes: Type.Array(RouteSchema, { minItems: 1, expected: 'a non-empty list of routes' }),
  },
  { additionalProperties: false, expected: 'a mapping with version: 1 and routes' },
);

/** routes.yaml as written, derived from {@link RoutesFileSchema}. */
export type RoutesFileInput = Static<typeof RoutesFileSchema>;
type RouteInput = Static<typeof RouteSchema>;
type RolesInput = Static<typeof RolesSchema>;

// ---------------------------------------------------------------------------------------

/** The outcome of parsing a routes file: the frozen routes, or every problem found. */
export type ParseResult = { ok: true; routes: RouteSet } | { ok: false; problems: RoutesProblem[] };

/**
 * Parses and validates routes.yaml text. Never throws for bad input: every problem (YAML
 * syntax, schema, semantics) comes back with its 1-based line and column, sorted by
 * position. On success the RouteSet, its routes and everything in them are frozen.
 *
 * @param source where the text came from (a file path or a label), kept in `RouteSet.source`
 */
export function parseRoutes(text: string, source: string): ParseResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, keepSourceTokens: true, prettyErrors: false, uniqueKeys: true });
  const ctx = new Context(doc, lineCounter);

  // Syntax errors (and unresolved tags) make the tree unreliable: schema problems on top
  // would be noise.
  reportYamlProblems(ctx);
  if (ctx.problems.length > 0) return ctx.failure();

  let data: unknown;
  try {
    // aliases are resolved here; the count limit stops "billion laughs" files
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    ctx.reportAt(firstBrokenAlias(doc) ?? 0, [], `invalid YAML: ${(err as Error).message}`);
    return ctx.failure();
  }
  ctx.data = data;
  if (data === null || data === undefined) {
    ctx.reportAt(0, [], 'the file is empty: expected a mapping with version: 1 and routes');
    return ctx.failure();
  }
  // Another version means another schema: its other keys are not ours to judge.
  if (isRecord(data) && typeof data.version === 'number' && data.version !== 1) {
    const message = `version: must be 1 (the only routes.yaml version this gateway reads), got ${show(data.version)}`;
    ctx.report(['version'], message);
    return ctx.failure();
  }

  reportSchemaProblems(ctx, data);
  const drafts = checkRoutes(ctx, data);
  if (ctx.problems.length > 0) return ctx.failure();
  if (!Value.Check(RoutesFileSchema, data)) {
    // unreachable while the passes above are complete; never answer ok: false with no problem
    ctx.reportAt(0, [], 'the file does not match the routes.yaml schema');
    return ctx.failure();
  }

  const routes = data.routes.map((input, i) => buildRoute(input, drafts[i]!));
  return { ok: true, routes: Object.freeze({ version: 1, routes: Object.freeze(routes), source }) };
}

/**
 * Reads and parses a routes file. A missing or unreadable file is one problem at 1:1
 * carrying the operating system's message (no stack). `RouteSet.source` is `file` as given.
 */
export async function loadRoutesFile(file: string): Promise<ParseResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return { ok: false, problems: [{ line: 1, column: 1, path: '', message: `cannot read the routes file: ${reason}` }] };
  }
  return parseRoutes(text, file);
}

/**
 * One `file:line:column: message` line per problem, sorted by position, joined with `\n`
 * (no trailing newline) — the form editors and CI annotate from.
 */
export function formatProblems(source: string, problems: readonly RoutesProblem[]): string {
  return [...problems]
    .sort(byPosition)
    .map((p) => `${source}:${p.line}:${p.column}: ${p.message}`)
    .join('\n');
}

// ---------------------------------------------------------------------------------------
// Positions and paths

type Segments = readonly string[];

class Context {
  readonly problems: RoutesProblem[] = [];
  data: unknown = undefined;
  // problems with a key itself (unknown option, method that can't be overridden): what
  // sits under that key is noise until the key is fixed
  private readonly keyProblems = new Set<RoutesProblem>();

  constructor(
    readonly doc: Document,
    private readonly lineCounter: LineCounter,
  ) {}

  /** A problem at the value at `segments`, or at its key (`'key'`), or at the mapping holding it (`'parent'`). */
  report(segments: Segments, message: string, target: 'value' | 'key' | 'parent' = 'value'): void {
    this.reportAt(this.offsetOf(segments, target), segments, message);
    if (target === 'key') this.keyProblems.add(this.problems.at(-1)!);
  }

  reportAt(offset: number, segments: Segments, message: string): void {
    this.problems.push({ ...this.position(offset), path: pointer(segments), message });
  }

  position(offset: number): { line: number; column: number } {
    const { line, col } = this.lineCounter.linePos(offset);
    // linePos gives line 0 before the first newline was seen (a one-line file)
    return { line: Math.max(line, 1), column: Math.max(col, 1) };
  }

  failure(): ParseResult {
    const keyPaths = [...this.keyProblems].map((p) => p.path);
    const problems = this.problems.filter(
      (p) => this.keyProblems.has(p) || !keyPaths.some((k) => p.path === k || p.path.startsWith(k + '/')),
    );
    return { ok: false, problems: problems.sort(byPosition) };
  }

  /** `routes[2].methods.DELETE`: indexes where the data has a list, keys elsewhere. */
  display(segments: Segments): string {
    let out = '';
    let value = this.data;
    for (const segment of segments) {
      // before the data exists (YAML errors), digits can only be list indexes here
      if ((Array.isArray(value) || value === undefined) && /^\d+$/.test(segment)) {
        out += `[${segment}]`;
        value = Array.isArray(value) ? value[Number(segment)] : undefined;
      } else {
        out += /^[A-Za-z_$][\w$]*$/.test(segment) ? (out === '' ? segment : `.${segment}`) : `[${JSON.stringify(segment)}]`;
        value = isRecord(value) && Object.hasOwn(value, segment) ? value[segment] : undefined;
      }
    }
    return out === '' ? '(top level)' : out;
  }

  // Walks the YAML tree as far as it goes: a missing node yields its nearest ancestor.
  offsetOf(segments: Segments, target: 'value' | 'key' | 'parent'): number {
    if (target === 'parent') return this.offsetOf(segments.slice(0, -1), 'value');
    let node: unknown = this.doc.contents;
    let offset = start(node) ?? 0;
    for (const [i, segment] of segments.entries()) {
      node = this.resolve(node);
      let next: unknown;
      if (isMap(node)) {
        const pair = node.items.find((p) => keyText(p.key) === segment);
        if (pair === undefined) return offset;
        const keyOffset = start(pair.key) ?? offset;
        if (i === segments.length - 1 && target === 'key') return keyOffset;
        // `name:` with nothing after it: the key is where the eye goes
        next = pair.value;
        offset = isEmptyNode(next) ? keyOffset : (start(next) ?? keyOffset);
      } else if (isSeq(node)) {
        next = node.items[Number(segment)];
        if (next === undefined) return offset;
        offset = start(next) ?? offset;
      } else {
        return offset;
      }
      node = next;
    }
    return offset;
  }

  private resolve(node: unknown): unknown {
    return isAlias(node) ? node.resolve(this.doc) : node;
  }
}

function start(node: unknown): number | undefined {
  return isNode(node) && node.range ? node.range[0] : undefined;
}

function isEmptyNode(node: unknown): boolean {
  return node === null || node === undefined || (isScalar(node) && node.range?.[0] === node.range?.[1]);
}

// Keys as toJS() turns them into object keys (collection keys are refused in pass 1).
function keyText(key: unknown): string | undefined {
  return isScalar(key) ? String(key.value) : undefined;
}

function pointer(segments: Segments): string {
  return segments.map((s) => '/' + s.replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

function splitPointer(path: string): string[] {
  return path === '' ? [] : path.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function byPosition(a: RoutesProblem, b: RoutesProblem): number {
  return a.line - b.line || a.column - b.column || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
}

// ---------------------------------------------------------------------------------------
// Pass 1: YAML

function reportYamlProblems(ctx: Context): void {
  const { doc } = ctx;
  const openers = unclosedOpeners(doc);
  for (const error of [...doc.errors, ...doc.warnings]) {
    const offset = error.pos[0];
    // yaml notices an unclosed "[" or quote where the next thing starts, often lines
    // later; point at the opening character instead
    const opener = openers.find((o) => o.node.range?.[1] === offset);
    if (opener !== undefined) {
      const segments = pathOf(doc, opener.node) ?? [];
      const message =
        `invalid YAML: this ${opener.open} is never closed ` +
        `(expected ${opener.close} before ${positionText(ctx, offset)})`;
      ctx.reportAt(start(opener.node) ?? offset, segments, withPath(ctx, segments, message));
      continue;
    }
    const [segments, message] = yamlProblem(ctx, error);
    ctx.reportAt(offset, segments, message);
  }
  // toJS would stringify such keys (and warn on the process); no option is spelled so
  visit(doc, {
    Pair(_key, pair) {
      if (isCollection(pair.key)) {
        // such a key has no name to show: name the mapping holding it
        const segments = (pathOf(doc, pair) ?? []).slice(0, -1);
        const message = 'invalid YAML: a key must be a plain string, not a list or mapping';
        ctx.reportAt(start(pair.key) ?? 0, segments, withPath(ctx, segments, message));
      }
    },
  });
}

function yamlProblem(ctx: Context, error: YAMLError): [Segments, string] {
  switch (error.code) {
    case 'MULTIPLE_DOCS':
      return [[], 'invalid YAML: a routes file holds one YAML document; a second one starts here'];
    case 'DUPLICATE_KEY': {
      const pair = pairWithKeyAt(ctx.doc, error.pos[0]);
      if (pair !== undefined) {
        const segments = pathOf(ctx.doc, pair) ?? [];
        return [segments, withPath(ctx, segments, 'invalid YAML: this key is already set above in the same mapping')];
      }
      return [[], `invalid YAML: ${error.message}`];
    }
    default:
      return [[], `invalid YAML: ${error.message}`];
  }
}

function withPath(ctx: Context, segments: Segments, message: string): string {
  return segments.length === 0 ? message : `${ctx.display(segments)}: ${message}`;
}

function positionText(ctx: Context, offset: number): string {
  const { line, column } = ctx.position(offset);
  return `line ${line}, column ${column}`;
}

interface Opener {
  node: Node;
  open: string;
  close: string;
}

function unclosedOpeners(doc: Document): Opener[] {
  const found: Opener[] = [];
  visit(doc, {
    Collection(_key, node) {
      const token = node.srcToken;
      if (token?.type !== 'flow-collection') return;
      const closed = token.end.some((t) => t.type === 'flow-seq-end' || t.type === 'flow-map-end');
      if (!closed) found.push(isSeq(node) ? { node, open: '"["', close: '"]"' } : { node, open: '"{"', close: '"}"' });
    },
    Scalar(_key, node) {
      const token = node.srcToken;
      if (token?.type !== 'double-quoted-scalar' && token?.type !== 'single-quoted-scalar') return;
      const quote = token.source[0]!;
      if (token.source.length < 2 || !token.source.endsWith(quote)) {
        const shown = quote === '"' ? `'"'` : `"'"`;
        found.push({ node, open: `quote ${shown}`, close: `a closing ${shown}` });
      }
    },
  });
  return found;
}

function pairWithKeyAt(doc: Document, offset: number): Pair | undefined {
  let found: Pair | undefined;
  visit(doc, {
    Pair(_key, pair) {
      if (start(pair.key) === offset) {
        found = pair;
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return found;
}

function firstBrokenAlias(doc: Document): number | undefined {
  let found: number | undefined;
  visit(doc, {
    Alias(_key, alias) {
      if (alias.resolve(doc) === undefined) {
        found = start(alias);
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return found;
}

// The data path of a node (or pair) in the tree, for naming the option in YAML errors.
function pathOf(doc: Document, target: Node | Pair): string[] | undefined {
  const walk = (node: unknown, segments: string[]): string[] | undefined => {
    if (node === target) return segments;
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = keyText(pair.key) ?? '';
        if (pair === target || pair.key === target) return [...segments, key];
        const found = walk(pair.value, [...segments, key]);
        if (found) return found;
      }
    } else if (isSeq(node)) {
      for (const [i, item] of node.items.entries()) {
        const found = walk(item, [...segments, String(i)]);
        if (found) return found;
      }
    } else if (isPair(node)) {
      return walk(node.value, segments);
    }
    return undefined;
  };
  return walk(doc.contents, []);
}

// ---------------------------------------------------------------------------------------
// Pass 2: the schema

// Which of several errors at one path says most: where the key is missing or unknown,
// then a wrong type, then the finer checks.
const ERROR_RANK: Partial<Record<ValueErrorType, number>> = {
  [ValueErrorType.ObjectRequiredProperty]: 0,
  [ValueErrorType.ObjectAdditionalProperties]: 0,
  [ValueErrorType.StringPattern]: 2,
  [ValueErrorType.StringMaxLength]: 3,
};
const rank = (error: ValueError): number => ERROR_RANK[error.type] ?? 1;

function reportSchemaProblems(ctx: Context, data: unknown): void {
  const best = new Map<string, ValueError | string>();
  const consider = (path: string, error: ValueError | string): void => {
    const seen = best.get(path);
    if (seen === undefined || (typeof seen !== 'string' && typeof error !== 'string' && rank(error) < rank(seen))) {
      best.set(path, error);
    }
  };
  collectErrors(RoutesFileSchema, data, '', consider);

  for (const [path, error] of best) {
    const segments = splitPointer(path);
    const name = ctx.display(segments);
    if (typeof error === 'string') {
      ctx.report(segments, `${name}: ${error}`);
    } else if (error.type === ValueErrorType.ObjectRequiredProperty) {
      // nothing to point at but the mapping that lacks it
      ctx.report(segments, `${name}: is required (${expectedOf(error.schema) ?? 'see docs/routes.md'})`, 'parent');
    } else if (error.type === ValueErrorType.ObjectAdditionalProperties) {
      ctx.report(segments, `${name}: ${unknownKeyMessage(segments.at(-1) ?? '', error.schema)}`, 'key');
    } else {
      ctx.report(segments, `${name}: ${describeError(error)}`);
    }
  }
}

// TypeBox's errors, with a failed `roles` union replaced by the errors of the form the
// value was evidently meant to be (a list, { any } or { all }): "routes[1].roles.all[0]:
// must match ..." says more than "not any of three forms".
function collectErrors(
  schema: TSchema,
  value: unknown,
  base: string,
  consider: (path: string, error: ValueError | string) => void,
): void {
  for (const error of Value.Errors(schema, value)) {
    const path = base + error.path;
    if (error.type === ValueErrorType.Union && error.schema.roleRule === true) {
      const form = roleRuleForm(error.value);
      if (typeof form === 'string') consider(path, form);
      else if (form === undefined) consider(path, { ...error, path });
      else collectErrors(form, error.value, path, consider);
      continue;
    }
    consider(path, { ...error, path });
  }
}

function roleRuleForm(value: unknown): TSchema | string | undefined {
  if (Array.isArray(value)) return RoleListSchema;
  if (!isRecord(value)) return undefined;
  const any = Object.hasOwn(value, 'any');
  const all = Object.hasOwn(value, 'all');
  if (any && all) return 'must have either any or all, not both';
  if (any) return RolesSchema.anyOf[1];
  if (all) return RolesSchema.anyOf[2];
  return undefined;
}

function describeError(error: ValueError): string {
  const { schema, value } = error;
  const expected = expectedOf(schema);
  switch (error.type) {
    case ValueErrorType.StringPattern: {
      const hint = typeof schema.hint === 'string' ? ` (${schema.hint})` : '';
      return `must match ${String(schema.pattern)}${hint}, got ${show(value)}`;
    }
    case ValueErrorType.StringMaxLength:
      return `must be at most ${String(schema.maxLength)} characters long, got ${(value as string).length}`;
    case ValueErrorType.ArrayMinItems:
      return `must be ${expected ?? 'a non-empty list'}, got an empty list`;
    case ValueErrorType.ArrayUniqueItems:
      return `must not list the same entry twice, got ${show(firstDuplicate(value))} more than once`;
    case ValueErrorType.ObjectMinProperties:
      return `must be ${expected ?? 'a non-empty mapping'}, got an empty mapping`;
    default:
      return `must be ${expected ?? error.message}, got ${show(value)}`;
  }
}

function expectedOf(schema: TSchema): string | undefined {
  return typeof schema.expected === 'string' ? schema.expected : undefined;
}

function unknownKeyMessage(key: string, schema: TSchema): string {
  const known = isRecord(schema.properties) ? Object.keys(schema.properties) : [];
  const close = known.find((k) => looksLike(key, k));
  const suggestion = close === undefined ? '' : ` (did you mean ${close}?)`;
  return `is not a known option${suggestion}; expected one of ${known.join(', ')}`;
}

// Typos worth suggesting a fix for: case or separators (rewrite_prefix), or one or two
// edits away (role, timout).
function looksLike(typed: string, known: string): boolean {
  const fold = (s: string): string => s.toLowerCase().replace(/[-_]/g, '');
  if (fold(typed) === fold(known)) return true;
  return typed.length > 2 && editDistance(typed.toLowerCase(), known.toLowerCase()) <= 2;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
    }
    previous = current;
  }
  return previous[b.length]!;
}

function firstDuplicate(value: unknown): unknown {
  if (!Array.isArray(value)) return value;
  return value.find((item, i) => value.indexOf(item) !== i);
}

// ---------------------------------------------------------------------------------------
// Pass 3: what the schema can't say. Each check runs on values that passed their own
// schema, so a problem is never reported twice.

/** Normalized values of one route, computed while checking it. */
interface RouteDraft {
  prefix?: string;
  upstream?: string;
  rewritePrefix?: string;
  bodyLimit?: number;
  timeout?: number;
}

function checkRoutes(ctx: Context, data: unknown): RouteDraft[] {
  if (!isRecord(data) || !Array.isArray(data.routes)) return [];
  const names = new Map<string, number>();
  const prefixes = new Map<string, number>();
  return data.routes.map((route: unknown, i): RouteDraft => {
    const draft: RouteDraft = {};
    if (!isRecord(route)) return draft;
    const at = (...rest: string[]): string[] => ['routes', String(i), ...rest];
    const fail = (segments: Segments, message: string): void =>
      ctx.report(segments, `${ctx.display(segments)}: ${message}`);

    const { name } = route;
    if (Value.Check(RouteSchema.properties.name, name)) {
      const first = names.get(name);
      if (first === undefined) names.set(name, i);
      else {
        const where = `routes[${first}]${lineOf(ctx, first, 'name')}`;
        fail(at('name'), `${show(name)} is already the name of ${where}; names must be unique`);
      }
    }

    if (typeof route.prefix === 'string') {
      const checked = checkPath(route.prefix, false, PREFIX_WHY);
      if (!checked.ok) fail(at('prefix'), checked.message);
      else {
        draft.prefix = checked.value;
        const first = prefixes.get(checked.value);
        if (first === undefined) prefixes.set(checked.value, i);
        else {
          const as = checked.value === route.prefix ? '' : ` (${show(route.prefix)} normalizes to ${show(checked.value)})`;
          const where = `routes[${first}]${lineOf(ctx, first, 'prefix')}`;
          fail(at('prefix'), `${show(checked.value)} is already the prefix of ${where}${as}; prefixes must be unique`);
        }
      }
    }

    if (typeof route.upstream === 'string') {
      const checked = checkUpstream(route.upstream);
      if (checked.ok) draft.upstream = checked.value;
      else fail(at('upstream'), checked.message);
    }

    if (typeof route.rewritePrefix === 'string') {
      const checked = checkPath(route.rewritePrefix, true, REWRITE_WHY);
      if (checked.ok) draft.rewritePrefix = checked.value;
      else fail(at('rewritePrefix'), checked.message);
    }

    // null: auth itself is invalid and already reported, so roles can't be judged against it
    const routeAuth: AuthMode | null =
      route.auth === undefined ? 'required' : Value.Check(AuthSchema, route.auth) ? route.auth : null;
    if (Value.Check(RolesSchema, route.roles) && routeAuth !== null && routeAuth !== 'required') {
      fail(at('roles'), rolesWithoutRequiredAuth(routeAuth, false));
    }

    if (isRecord(route.methods)) checkMethods(ctx, route.methods, routeAuth, at('methods'));

    if (Value.Check(RouteSchema.properties.bodyLimit, route.bodyLimit)) {
      const bytes = parseByteSize(route.bodyLimit);
      if (bytes === null) {
        const expected = 'a positive integer number of bytes or a size like "512kb", "10mb" (kb = 1024 bytes)';
        fail(at('bodyLimit'), `must be ${expected}, got ${show(route.bodyLimit)}`);
      } else if (bytes === 0) {
        fail(at('bodyLimit'), `must be positive, got ${show(route.bodyLimit)}`);
      } else draft.bodyLimit = bytes;
    }

    if (Value.Check(RouteSchema.properties.timeout, route.timeout)) {
      const ms = parseDuration(route.timeout);
      if (ms === null) {
        const expected = 'a positive integer number of milliseconds or a duration like "500ms", "30s", "2m"';
        fail(at('timeout'), `must be ${expected}, got ${show(route.timeout)}`);
      } else if (ms === 0) {
        fail(at('timeout'), `must be positive, got ${show(route.timeout)}`);
      } else if (ms > MAX_UPSTREAM_TIMEOUT_MS) {
        const limit = `${MAX_UPSTREAM_TIMEOUT_MS} ms (about 24.8 days, the longest timer Node.js keeps)`;
        fail(at('timeout'), `must be at most ${limit}, got ${show(route.timeout)}`);
      } else draft.timeout = ms;
    }

    return draft;
  });
}

function checkMethods(ctx: Context, methods: Record<string, unknown>, routeAuth: AuthMode | null, base: string[]): void {
  const seen = new Map<string, string>();
  const fail = (segments: Segments, message: string, target: 'value' | 'key' = 'value'): void =>
    ctx.report(segments, `${ctx.display(segments)}: ${message}`, target);
  for (const [key, override] of Object.entries(methods)) {
    const at = [...base, key];
    const method = key.toUpperCase();
    if (method === 'TRACE' || method === 'CONNECT') {
      fail(at, `${method} is never proxied (the gateway answers 405), so it cannot have a rule`, 'key');
    } else if (method === 'HEAD') {
      fail(at, 'HEAD always follows the rule of GET (it reveals what GET would); put the override on GET', 'key');
    } else if (!LISTABLE_METHODS.has(method)) {
      const others = 'or another method Node.js parses, such as PURGE or PROPFIND';
      fail(at, `is not a method the gateway proxies; expected one of ${OVERRIDABLE_METHODS.join(', ')} ${others}`, 'key');
    } else if (seen.has(method)) {
      fail(at, `is the same method as ${seen.get(method)!} above (method names are not case-sensitive here)`, 'key');
    } else {
      seen.set(method, key);
    }

    if (!Value.Check(MethodOverrideSchema, override) || override.roles === undefined) continue;
    const auth = override.auth ?? routeAuth;
    if (auth !== null && auth !== 'required') {
      fail([...at, 'roles'], rolesWithoutRequiredAuth(auth, override.auth === undefined));
    }
  }
}

function rolesWithoutRequiredAuth(auth: 'optional' | 'none', inherited: boolean): string {
  const from = inherited ? ' (inherited from the route)' : '';
  return auth === 'none'
    ? `cannot be used with auth: none${from}: the session is never looked at, so the roles could never be ` +
        'checked; remove roles or set auth: required'
    : `cannot be used with auth: optional${from}: a request without a session would still pass, so the roles ` +
        'would protect nothing; set auth: required';
}

function lineOf(ctx: Context, index: number, key: string): string {
  return ` (line ${ctx.position(ctx.offsetOf(['routes', String(index), key], 'value')).line})`;
}

type Checked<T> = { ok: true; value: T } | { ok: false; message: string };

const PREFIX_WHY = 'canonical request paths never contain it, so the route could never match';
const REWRITE_WHY = 'the forwarded path must stay canonical';

// A prefix is compared with canonical paths, which are printable ASCII without
// ? # % \ ; and spaces once percent-encoding of other characters has been kept as is.
// Returns the normalized path: no trailing "/" except for "/" itself ("" stays "").
function checkPath(raw: string, allowEmpty: boolean, why: string): Checked<string> {
  if (raw === '' && allowEmpty) return { ok: true, value: '' };
  if (!raw.startsWith('/')) {
    return { ok: false, message: `must start with "/"${allowEmpty ? ' (or be "" for the root)' : ''}, got ${show(raw)}` };
  }
  for (const char of raw) {
    const code = char.codePointAt(0)!;
    if (code <= 0x20 || code >= 0x7f || '?#%\\;'.includes(char)) {
      return {
        ok: false,
        message:
          `must not contain ${describeChar(char)} ` +
          `(only printable ASCII without ? # % \\ ; and spaces), got ${show(raw)}`,
      };
    }
  }
  if (raw.includes('//')) return { ok: false, message: `must not contain "//" (${why}), got ${show(raw)}` };
  if (raw.split('/').some((s) => s === '.' || s === '..')) {
    return { ok: false, message: `must not contain "." or ".." segments (${why}), got ${show(raw)}` };
  }
  const value = raw.length > 1 && raw.endsWith('/') ? raw.slice(0, -1) : raw;
  // for a rewrite, "/" and "" both mean the root: keep one form
  return { ok: true, value: allowEmpty && value === '/' ? '' : value };
}

function describeChar(char: string): string {
  const code = char.codePointAt(0)!;
  if (char === ' ') return 'a space';
  if (code < 0x20 || code === 0x7f) return `a control character (U+${code.toString(16).toUpperCase().padStart(4, '0')})`;
  if (code > 0x7f) return `the non-ASCII character ${JSON.stringify(char)} (request paths carry it percent-encoded)`;
  return JSON.stringify(char);
}

// origin + optional base path: http(s) only, no credentials (they would go to every
// request's upstream in clear config), no query or fragment (the client's query is
// forwarded as is), the base path under the same rules as a prefix.
function checkUpstream(raw: string): Checked<string> {
  const example = 'like http://127.0.0.1:4001 or https://orders.internal/api';
  const match = /^(https?):\/\/([^/?#]*)(.*)$/is.exec(raw);
  if (match === null) {
    // "localhost:4001" parses as scheme "localhost": only call it a scheme before "//"
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(raw);
    return scheme !== null && !/^https?$/i.test(scheme[1]!)
      ? { ok: false, message: `must use http: or https:, got ${show(scheme[1]! + ':')}` }
      : { ok: false, message: `must be an absolute http: or https: URL ${example}, got ${show(raw)}` };
  }
  const authority = match[2]!;
  const rest = match[3]!;
  // never echo the value: it holds a password
  if (authority.includes('@')) return { ok: false, message: 'must not contain credentials (user:password@)' };
  if (/[\s\x00-\x1f\x7f\\]/.test(raw)) {
    return { ok: false, message: `must not contain spaces, control characters or "\\", got ${show(raw)}` };
  }
  if (rest.includes('?') || rest.includes('#')) {
    const why = "the request's own query is forwarded";
    return { ok: false, message: `must not have a query or fragment (${why}), got ${show(raw)}` };
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, message: `must be an absolute http: or https: URL ${example}, got ${show(raw)}` };
  }
  if (url.hostname === '') return { ok: false, message: `must name a host, got ${show(raw)}` };
  let base = '';
  if (rest !== '') {
    const path = checkPath(rest, false, 'the upstream path must be canonical');
    if (!path.ok) return { ok: false, message: `base path ${path.message}` };
    base = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  }
  return { ok: true, value: `${url.protocol}//${url.host}${base}` };
}

// ---------------------------------------------------------------------------------------
// Normalization: only reached when there are no problems at all.

function buildRoute(input: RouteInput, draft: RouteDraft): Route {
  const auth = input.auth ?? 'required';
  const methods: Record<string, MethodRule> = {};
  for (const [key, override] of Object.entries(input.methods ?? {})) {
    methods[key.toUpperCase()] = Object.freeze({ auth: override.auth ?? auth, roles: roleRule(override.roles) });
  }
  return Object.freeze({
    name: input.name,
    prefix: draft.prefix ?? input.prefix,
    upstream: draft.upstream ?? input.upstream,
    rewritePrefix: input.rewritePrefix === undefined ? undefined : (draft.rewritePrefix ?? input.rewritePrefix),
    rule: Object.freeze({ auth, roles: roleRule(input.roles) }),
    methods: Object.freeze(methods),
    bodyLimit: draft.bodyLimit ?? DEFAULT_BODY_LIMIT,
    timeout: draft.timeout ?? DEFAULT_UPSTREAM_TIMEOUT_MS,
    csrf: input.csrf ?? true,
    methodOverride: input.methodOverride ?? DEFAULT_METHOD_OVERRIDE,
  });
}

function roleRule(roles: RolesInput | undefined): RoleRule | null {
  if (roles === undefined) return null;
  if (Array.isArray(roles)) return Object.freeze({ any: Object.freeze([...roles]) });
  if ('all' in roles) return Object.freeze({ all: Object.freeze([...roles.all]) });
  return Object.freeze({ any: Object.freeze([...roles.any]) });
}

// ---------------------------------------------------------------------------------------

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string') {
    return value.length > 80 ? `${JSON.stringify(value.slice(0, 80))}...` : JSON.stringify(value);
  }
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}
