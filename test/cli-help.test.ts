/**
 * Every `llama-ts` command answers --help (and -h) with exit 0 and a usage
 * generated from its flag table, naming every flag with its value type and
 * default; the top-level --help keeps its layout; an unknown flag is one line
 * naming it, exit 2. Runs the built CLI (`node scripts/build.mjs` first).
 */
import { describe, it, expect } from "vitest";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { runCli } from "./cli-run.js";
import type { Command } from "../cli/args.js";

const dist = (p: string) => pathToFileURL(path.resolve("dist", p)).href;
const { commandNames } = (await import(dist("cli/main.js"))) as { commandNames(): string[] };
// Each command's module is cli/commands/<name>.ts: the flag table the help must show.
const load = async (name: string) => ((await import(dist(`cli/commands/${name}.js`))) as { command: Command }).command;

describe("llama-ts --help", () => {
  it("lists every command, one indented line each after `commands:`", () => {
    const r = runCli(["--help"]);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.split("\n");
    const at = lines.indexOf("commands:");
    expect(at).toBeGreaterThan(0);
    const names = commandNames();
    expect(names.length).toBeGreaterThanOrEqual(11);
    names.forEach((name, i) => expect(lines[at + 1 + i]!.trimStart().split(/\s+/)[0]).toBe(name));
    for (const line of lines.slice(at + 1, at + 1 + names.length)) expect(line).toMatch(/^ {2}\S/);
  });

  for (const name of commandNames()) {
    it(`${name} --help: exit 0, every flag of its table with its type and default`, async () => {
      const command = await load(name);
      const flags = Object.entries(command.flags ?? {});
      expect(command.flags, `${name} has no flag table`).toBeDefined();
      const r = runCli([name, "--help"]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(new RegExp(`^usage: llama-ts ${name} `));
      expect(r.stdout).toContain(command.summary);
      const rows = r.stdout.split("\n");
      for (const [flag, f] of flags) {
        // The flag's row: its name, then (for a value flag) the value's type.
        const row = rows.findIndex((l) => new RegExp(`^ {2}(-\\w, )?--${flag}\\b`).test(l));
        expect(row, `--${flag} missing from ${name} --help`).toBeGreaterThanOrEqual(0);
        const text = rows[row]! + (rows[row + 1]?.startsWith("    ") ? rows[row + 1] : "");
        if (f.type === "string") expect(text).toMatch(new RegExp(`--${flag} \\S+`));
        expect(f.help.length, `--${flag} has no description`).toBeGreaterThan(0);
        expect(text).toContain(f.help);
        const def = f.default ?? f.shownDefault;
        if (def !== undefined) expect(text).toContain(`default: ${def}`);
        if (f.required) expect(text).toContain("required");
      }
      expect(r.stdout).toMatch(/-h, --help/);
      // -h and `llama-ts help <name>` give the same page.
      expect(runCli([name, "-h"]).stdout).toBe(r.stdout);
      expect(runCli(["help", name]).stdout).toBe(r.stdout);
    });
  }

  it("an unknown flag: exit 2, one line naming it", () => {
    for (const name of ["generate", "tokenize", "convert"]) {
      const r = runCli([name, "--no-such-flag", "1"]);
      expect(r.status).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain(`llama-ts ${name}: unknown flag --no-such-flag`);
    }
  });

  it("a missing required flag names it; a flag's default shows in the help and applies", () => {
    const r = runCli(["detokenize"]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe("llama-ts detokenize: missing required flag --ids");
    // --tokenizer defaults to the package's model: the same ids as naming it.
    const a = runCli(["tokenize", "--text", "Once upon a time", "--json"]);
    const b = runCli(["tokenize", "--tokenizer", "models/tiny-stories", "--text", "Once upon a time", "--json"]);
    expect(a.status, a.stderr).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    // HF's tokenizer gives these ids for the text (test/fixtures/trl/tokenize.json starts its prompts with them).
    expect(JSON.parse(a.stdout).ids).toEqual([1, 404, 428, 261, 371]);
  });
});
