/**
 * SQLite's GLOB operator, which is what IPython's history search runs
 * (`WHERE source_raw GLOB ?`). A transcription of `patternCompare` in SQLite's
 * func.c with GLOB's settings (matchAll `*`, matchOne `?`, sets `[...]`,
 * case-sensitive, no escape character), so every corner agrees with SQLite:
 *
 * - `[^...]` negates; `]` right after `[` or `[^` is a member; `-` is a range
 *   only between two members (`[a-]`, `[-a]`, the second `-` of `[a-c-e]` are
 *   literal); a reversed range `[c-a]` matches nothing but its literal `c`.
 * - An unclosed `[` makes the whole pattern match nothing (not a literal `[`).
 * - Characters are whole code points (`?` eats one emoji); NUL ends both the
 *   text and the pattern, as C strings do inside SQLite.
 *
 * The three-valued result is SQLite's too: NOWILDCARDMATCH ("this suffix
 * matches nowhere") stops the outer `*` loops early, which keeps patterns
 * like `*a*a*a*a*c` linear-ish instead of exponential.
 */

const MATCH = 0;
const NOMATCH = 1;
const NOWILDCARDMATCH = 2;
type Result = typeof MATCH | typeof NOMATCH | typeof NOWILDCARDMATCH;

const STAR = 0x2a; // *
const ONE = 0x3f; // ?
const OPEN = 0x5b; // [
const CLOSE = 0x5d; // ]
const CARET = 0x5e; // ^
const DASH = 0x2d; // -

/** SQLITE_LIMIT_LIKE_PATTERN_LENGTH: longer patterns are an error in SQLite ("pattern too complex"). */
export const GLOB_PATTERN_MAX_BYTES = 50_000;

/** `text GLOB pattern` as SQLite answers it. A pattern over SQLite's length limit matches nothing. */
export function sqliteGlob(pattern: string, text: string): boolean {
  if (Buffer.byteLength(pattern, "utf8") > GLOB_PATTERN_MAX_BYTES) return false;
  return compare(codePoints(pattern), 0, codePoints(text), 0) === MATCH;
}

/** Code points up to the first NUL, then a 0 terminator (SQLite reads NUL-terminated UTF-8). */
function codePoints(s: string): number[] {
  const nul = s.indexOf("\0");
  const out = Array.from(nul < 0 ? s : s.slice(0, nul), (ch) => ch.codePointAt(0)!);
  out.push(0);
  return out;
}

/** patternCompare(p + pi, s + si): reads advance the index past the character read, as sqlite3Utf8Read does. */
function compare(p: number[], pi: number, s: number[], si: number): Result {
  let c: number;
  while ((c = p[pi++]!) !== 0) {
    if (c === STAR) {
      // Skip further "*" and "?"; each "?" still consumes one character of the text.
      while ((c = p[pi++]!) === STAR || c === ONE) {
        if (c === ONE && s[si++] === 0) return NOWILDCARDMATCH;
      }
      if (c === 0) return MATCH; // "*" at the end matches the rest
      if (c === OPEN) {
        // "[...]" right after "*": try the set at every remaining position.
        while (s[si] !== 0) {
          const r = compare(p, pi - 1, s, si);
          if (r !== NOMATCH) return r;
          si++;
        }
        return NOWILDCARDMATCH;
      }
      // c is a literal: resume right after each occurrence of it in the text.
      for (;;) {
        let c2: number;
        while ((c2 = s[si++]!) !== 0 && c2 !== c);
        if (c2 === 0) return NOWILDCARDMATCH;
        const r = compare(p, pi, s, si);
        if (r !== NOMATCH) return r;
      }
    }
    if (c === OPEN) {
      const ch = s[si++]!;
      if (ch === 0) return NOMATCH;
      let prior = 0;
      let seen = false;
      let invert = false;
      let c2 = p[pi++]!;
      if (c2 === CARET) {
        invert = true;
        c2 = p[pi++]!;
      }
      if (c2 === CLOSE) {
        if (ch === CLOSE) seen = true;
        c2 = p[pi++]!;
      }
      while (c2 !== 0 && c2 !== CLOSE) {
        if (c2 === DASH && p[pi] !== CLOSE && p[pi] !== 0 && prior > 0) {
          c2 = p[pi++]!;
          if (ch >= prior && ch <= c2) seen = true;
          prior = 0;
        } else {
          if (ch === c2) seen = true;
          prior = c2;
        }
        c2 = p[pi++]!;
      }
      if (c2 === 0 || seen === invert) return NOMATCH;
      continue;
    }
    const c2 = s[si++]!;
    if (c === c2) continue;
    if (c === ONE && c2 !== 0) continue;
    return NOMATCH;
  }
  return s[si] === 0 ? MATCH : NOMATCH;
}
