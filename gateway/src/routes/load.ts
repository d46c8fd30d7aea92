// The routes.yaml loader (reference: docs/routes.md): YAML text → every problem with its
// line and column, or a frozen, normalized RouteSet. Three passes: YAML syntax
// (yaml-syntax.ts), the TypeBox schema (schema.ts, problems.ts), then the rules a schema
// can't say well (checks.ts), each with a message naming the option path.

import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import { Value } from '@sinclair/typebox/value';
import { checkRoutes } from './checks.js';
import { buildRoute, namespacesRead } from './normalize.js';
import { checkSessionData } from './session-data-checks.js';
import { reportSchemaProblems, show } from './problems.js';
import { RoutesFileSchema, isRecord } from './schema.js';
import type { ParseResult } from './types.js';
import { Context } from './yaml-positions.js';
import { firstBrokenAlias, reportYamlProblems } from './yaml-syntax.js';

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
  if (isRecord(data) && Array.isArray(data.routes)) checkSessionData(ctx, data.routes, drafts);
  if (ctx.problems.length > 0) return ctx.failure();
  if (!Value.Check(RoutesFileSchema, data)) {
    // unreachable while the passes above are complete; never answer ok: false with no problem
    ctx.reportAt(0, [], 'the file does not match the routes.yaml schema');
    return ctx.failure();
  }

  const reads = namespacesRead(data.routes);
  const routes = data.routes.map((input, i) => buildRoute(input, drafts[i]!, reads.get(input.name) ?? []));
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
