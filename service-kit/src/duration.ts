// Durations and byte sizes as operators write them in routes.yaml and the environment.
// Deliberately strict: a bare digit string has no unit and is refused, because "30" could
// mean seconds to one reader and milliseconds to another.

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};
// one or more <digits><unit> parts, e.g. 500ms, 90s, 1h30m (units are lower-case: "2M"
// could be read as months or megabytes)
const DURATION_RE = /^(?:\d+(?:ms|s|m|h|d))+$/;
const DURATION_PART_RE = /(\d+)(ms|s|m|h|d)/g;

/**
 * Milliseconds in a duration.
 *
 * Accepts a string of one or more `<integer><unit>` parts with units `ms`, `s`, `m`, `h`,
 * `d` (`500ms`, `90s`, `30m`, `12h`, `1d`, `1h30m`; parts are summed), or a non-negative
 * integer number, taken as milliseconds. Refuses (returns `null`) everything else: bare
 * digit strings (`"30"`: which unit?), fractions (`1.5h`), signs, spaces, upper-case
 * units, and results beyond `Number.MAX_SAFE_INTEGER`. `0`/`"0s"` give `0`; callers that
 * need a positive duration check that themselves.
 */
export function parseDuration(input: string | number): number | null {
  if (typeof input === 'number') return Number.isSafeInteger(input) && input >= 0 ? input : null;
  if (!DURATION_RE.test(input)) return null;
  let ms = 0;
  for (const [, amount, unit] of input.matchAll(DURATION_PART_RE)) {
    ms += Number(amount) * DURATION_UNITS[unit!]!;
  }
  return Number.isSafeInteger(ms) ? ms : null;
}

// Binary multiples, as body-parser's `bytes` uses them for "kb"/"mb" (and as "1 MiB", the
// default body limit, reads): kb and kib are both 1024 bytes.
const BYTE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1024,
  kib: 1024,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};
const BYTE_SIZE_RE = /^(\d+)(b|kb|kib|mb|mib|gb|gib)?$/i;

/**
 * Bytes in a size.
 *
 * Accepts a non-negative integer number of bytes, a string of digits (bytes), or digits
 * followed by a unit, case-insensitive: `b`, `kb`/`kib` (1024), `mb`/`mib` (1024²),
 * `gb`/`gib` (1024³) — `512kb`, `10MB`, `1048576`. Returns `null` for anything else
 * (fractions, spaces, signs, results beyond `Number.MAX_SAFE_INTEGER`).
 */
export function parseByteSize(input: string | number): number | null {
  if (typeof input === 'number') return Number.isSafeInteger(input) && input >= 0 ? input : null;
  const match = BYTE_SIZE_RE.exec(input);
  if (match === null) return null;
  const bytes = Number(match[1]) * BYTE_UNITS[(match[2] ?? 'b').toLowerCase()]!;
  return Number.isSafeInteger(bytes) ? bytes : null;
}
