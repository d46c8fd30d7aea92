// Where things are in a routes file: the problems found so far, each at the line and column
// of the value (or key) it is about, and the option path it names.

import { LineCounter, isAlias, isMap, isNode, isPair, isScalar, isSeq, type Document, type Node, type Pair } from 'yaml';
import { isRecord } from './schema.js';
import type { ParseResult, RoutesProblem } from './types.js';

export type Segments = readonly string[];

export class Context {
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

export function start(node: unknown): number | undefined {
  return isNode(node) && node.range ? node.range[0] : undefined;
}

export function isEmptyNode(node: unknown): boolean {
  return node === null || node === undefined || (isScalar(node) && node.range?.[0] === node.range?.[1]);
}

// Keys as toJS() turns them into object keys (collection keys are refused in pass 1).
export function keyText(key: unknown): string | undefined {
  return isScalar(key) ? String(key.value) : undefined;
}

function pointer(segments: Segments): string {
  return segments.map((s) => '/' + s.replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

export function splitPointer(path: string): string[] {
  return path === '' ? [] : path.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

export function byPosition(a: RoutesProblem, b: RoutesProblem): number {
  return a.line - b.line || a.column - b.column || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
}

// The data path of a node (or pair) in the tree, for naming the option in YAML errors.
export function pathOf(doc: Document, target: Node | Pair): string[] | undefined {
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
