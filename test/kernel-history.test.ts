/**
 * History search as ipykernel answers it: SQLite's GLOB (kernel/glob.ts)
 * checked against a golden table from real SQLite, and the search's n/unique/
 * output semantics against IPython's own HistoryAccessor.search on a fixed
 * three-session history (test/fixtures/kernel/history-search.json).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { sqliteGlob } from "../kernel/glob.js";
import { History } from "../kernel/history.js";

/** [text, pattern, `text GLOB pattern`] as SQLite computes it. */
const GLOB_GOLDEN: [string, string, boolean][] = [
  // SQLite 3.40.1, scripts/fixtures/make_sqlite_glob.py
  ["6 * 7", "6 [*] 7", true],
  ["6 + 7", "6 [*] 7", false],
  ["6 * 7", "6 * 7", true],
  ["6 + 7", "6 * 7", true],
  ["6 * 77", "6 [*] 7", false],
  ["", "", true],
  ["", "*", true],
  ["", "**", true],
  ["", "?", false],
  ["a", "", false],
  ["abc", "a*", true],
  ["ba", "a*", false],
  ["abc", "*c", true],
  ["abc", "a?c", true],
  ["ac", "a?c", false],
  ["a\nc", "a?c", true],
  ["a\nb\nc", "a*c", true],
  ["a", "*?", true],
  ["", "*?", false],
  ["ab", "*??", true],
  ["a", "?*?", false],
  ["abc", "*?c", true],
  ["c", "*?c", false],
  ["abcabc", "*bc", true],
  ["abcabd", "*bc*", true],
  ["x.yz", "x.y?", true],
  ["xzyz", "x.y?", false],
  ["a*b", "a*b", true],
  ["a+b", "a[*]b", false],
  ["ABC", "abc", false],
  ["ABC", "A*", true],
  ["abc", "[A-Z]bc", false],
  ["a\\b", "a\\b", true],
  ["a*b", "a\\*b", false],
  ["a\\xb", "a\\*b", true],
  ["abc", "[abc]bc", true],
  ["dbc", "[abc]bc", false],
  ["dbc", "[^abc]bc", true],
  ["abc", "[^abc]bc", false],
  ["m", "[a-z]", true],
  ["M", "[a-z]", false],
  ["5", "[0-9]", true],
  ["a5", "[a-z][0-9]", true],
  ["b", "[c-a]", false],
  ["c", "[c-a]", true],
  ["a", "[a-a]", true],
  ["-", "[a-]", true],
  ["-", "[-a]", true],
  ["-", "[-]", true],
  ["b", "[a-c-e]", true],
  ["d", "[a-c-e]", false],
  ["-", "[a-c-e]", true],
  ["e", "[a-c-e]", true],
  ["]", "[]]", true],
  ["]", "[^]]", false],
  ["x", "[^]]", true],
  ["-", "[]-a]", true],
  ["^", "[]-a]", false],
  ["a", "[]-a]", true],
  ["[", "[[]", true],
  ["^", "[a^]", true],
  ["^", "[^^]", false],
  ["x", "[^^]", true],
  ["^", "[\\^]", true],
  ["\\", "[\\^]", true],
  ["]", "[]", false],
  ["x", "[!x]", true],
  ["!", "[!x]", true],
  ["[", "[", false],
  ["[abc", "[abc", false],
  ["a[", "a[", false],
  ["a", "[a", false],
  ["x[", "*[", false],
  ["[", "[^", false],
  ["]", "[^]", false],
  ["", "[", false],
  ["abc", "*[c]", true],
  ["abc", "*[d]", false],
  ["abc", "*[b]*", true],
  ["x6 * 7", "*[*]*", true],
  ["for (const i of [1])\n  x", "for*[[]*", true],
  ["aaab", "*[ab]", true],
  ["aaa", "*[b]", false],
  ["", "*[a]", false],
  ["a]", "*[]]", true],
  ["ab", "*[a]?", true],
  ["ab", "*[b]?", false],
  ["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "*a*a*a*a*a*a*a*a*a*c", false],
  ["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "*a*a*a*a*a*a*a*a*a*b", true],
  ["é", "?", true],
  ["é", "??", false],
  ["日本", "??", true],
  ["😀", "?", true],
  ["😀x", "[😀]x", true],
  ["é", "[à-ê]", true],
  ["ë", "[à-ê]", false],
  ["😃", "[😀-😏]", true],
  ["日本語", "日*", true],
  ["x😀", "*😀", true],
  ["a\u0000b", "a", true],
  ["a", "a\u0000x", true],
  ["a\u0000b", "a?b", false],
];

describe("SQLite GLOB", () => {
  it.each(GLOB_GOLDEN)("%j GLOB %j is %s", (text, pattern, expected) => {
    expect(sqliteGlob(pattern, text)).toBe(expected);
  });

  it("matches nothing for a pattern over SQLite's 50000-byte limit (SQLite refuses it)", () => {
    expect(sqliteGlob("*".repeat(50_000), "abc")).toBe(true);
    expect(sqliteGlob("*".repeat(50_001), "abc")).toBe(false);
  });

  it("gives up on a hopeless pattern without exponential backtracking", () => {
    const t0 = Date.now();
    expect(sqliteGlob("*a".repeat(30) + "*c", "a".repeat(5000) + "b")).toBe(false);
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

interface Golden {
  ipython: string;
  sessions: Record<string, { line: number; input: string; output: string | null }[]>;
  queries: { pattern: string; n: number | null; unique: boolean; output: boolean; history: unknown[] }[];
}

describe("history search as IPython's HistoryAccessor.search", () => {
  const golden = JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures", "kernel", "history-search.json"), "utf8")) as Golden;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llama-ts-history-search-"));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  // Sessions 1 and 2 as earlier kernels left them on disk; session 3 is the running kernel's.
  for (const s of ["1", "2"]) {
    fs.writeFileSync(path.join(dir, `${s}.jsonl`), golden.sessions[s]!.map((e) => JSON.stringify(e) + "\n").join(""));
  }
  const history = new History(dir);
  for (const e of golden.sessions["3"]!) history.append(e.line, e.input, e.output);

  it("is session 3 of the fixture", () => {
    expect(history.session).toBe(3);
    expect(golden.queries.length).toBeGreaterThan(100);
  });

  it.each(golden.queries.map((q) => [q.pattern, q.n, q.unique, q.output, q] as const))(
    "pattern %j, n=%s, unique=%s, output=%s",
    (pattern, n, unique, output, q) => {
      const got = history.query({ hist_access_type: "search", pattern, unique, output, ...(n === null ? {} : { n }) });
      expect(got).toEqual(q.history);
    },
  );

  it("matches nothing without a pattern (ipykernel passes None on: GLOB NULL)", () => {
    expect(history.query({ hist_access_type: "search" })).toEqual([]);
  });
});
