// Pass 1 of the routes loader: YAML syntax. Each error points where the eye should go (the
// unclosed "[" or quote, not where yaml noticed it) and names the option it sits in.

import { isCollection, isSeq, visit, type Document, type Node, type Pair, type YAMLError } from 'yaml';
import { Context, pathOf, start, type Segments } from './yaml-positions.js';

export function reportYamlProblems(ctx: Context): void {
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

export function firstBrokenAlias(doc: Document): number | undefined {
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
