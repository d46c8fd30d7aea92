// Pass 2 of the routes loader: schema errors shaped into messages that say what would have
// been right (and, for a misspelt option, what was probably meant); and the one-line-per-
// problem form editors and CI read.

import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import type { TSchema } from '@sinclair/typebox';
import { RoleListSchema, RolesSchema, RoutesFileSchema, isRecord } from './schema.js';
import type { RoutesProblem } from './types.js';
import { Context, byPosition, splitPointer } from './yaml-positions.js';

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


// Which of several errors at one path says most: where the key is missing or unknown,
// then a wrong type, then the finer checks.
const ERROR_RANK: Partial<Record<ValueErrorType, number>> = {
  [ValueErrorType.ObjectRequiredProperty]: 0,
  [ValueErrorType.ObjectAdditionalProperties]: 0,
  [ValueErrorType.StringPattern]: 2,
  [ValueErrorType.StringMaxLength]: 3,
};
const rank = (error: ValueError): number => ERROR_RANK[error.type] ?? 1;

export function reportSchemaProblems(ctx: Context, data: unknown): void {
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

export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string') {
    return value.length > 80 ? `${JSON.stringify(value.slice(0, 80))}...` : JSON.stringify(value);
  }
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}
