// Just enough PromQL reading for the dashboard and alert checks: the vector selectors of an
// expression and the labels it groups or joins by. Not a parser: it knows the shapes those
// files use (functions, aggregations with by/on clauses, range selectors, numbers, strings).

export interface LabelMatcher {
  readonly name: string;
  readonly op: '=' | '!=' | '=~' | '!~';
  readonly value: string;
}

export interface VectorSelector {
  readonly metric: string;
  readonly matchers: readonly LabelMatcher[];
  /** The selector as written, e.g. `foo{a="b"}`. */
  readonly text: string;
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);
const GROUPING = /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;

/** The labels named in by/without/on/ignoring/group_* clauses. */
export function groupingLabels(expr: string): string[] {
  const out = new Set<string>();
  for (const m of expr.matchAll(GROUPING)) {
    for (const l of m[2]!.split(',')) if (l.trim()) out.add(l.trim());
  }
  return [...out];
}

function parseMatchers(body: string): LabelMatcher[] {
  const out: LabelMatcher[] = [];
  for (const m of body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) {
    out.push({ name: m[1]!, op: m[2] as LabelMatcher['op'], value: m[3]!.replace(/\\(.)/g, '$1') });
  }
  return out;
}

/** Every vector selector in `expr`, in order of appearance. */
export function vectorSelectors(expr: string): VectorSelector[] {
  const s = expr.replace(GROUPING, ' ');
  const out: VectorSelector[] = [];
  let i = 0;
  const isStart = (c: string) => /[a-zA-Z_:]/.test(c);
  while (i < s.length) {
    const c = s[i]!;
    if (c === '"' || c === "'") {
      const end = s.indexOf(c, i + 1);
      i = end < 0 ? s.length : end + 1;
    } else if (c === '[') {
      i = s.indexOf(']', i) + 1 || s.length;
    } else if (/[0-9.]/.test(c)) {
      while (i < s.length && /[0-9.eE]/.test(s[i]!)) i++;
    } else if (isStart(c)) {
      const start = i;
      while (i < s.length && /[a-zA-Z0-9_:]/.test(s[i]!)) i++;
      const name = s.slice(start, i);
      let j = i;
      while (j < s.length && /\s/.test(s[j]!)) j++;
      if (s[j] === '(' || KEYWORDS.has(name.toLowerCase())) continue;
      if (s[j] === '{') {
        const end = s.indexOf('}', j);
        out.push({ metric: name, matchers: parseMatchers(s.slice(j + 1, end)), text: s.slice(start, end + 1) });
        i = end + 1;
      } else {
        out.push({ metric: name, matchers: [], text: name });
      }
    } else {
      i++;
    }
  }
  return out;
}

/**
 * The expression with every comparison against a number made a `bool` one, so that it
 * answers 0 or 1 for each series instead of dropping those below the threshold: what an
 * alert would compare, whether or not it fires now.
 */
export function withBoolComparisons(expr: string): string {
  return expr.replace(/(==|!=|>=|<=|>|<)\s*(?=[-0-9.])/g, '$1 bool ');
}
