// The CLI's training commands run with the memory settings of lib/process-memory.ts (glibc malloc
// variables and V8's initial old space, both read only at startup): without them the CLI runs the
// command again as a child that has them; other commands and a process that already has them run once.
import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { HEAP_FLAGS, MALLOC_ENV, memorySettingsApplied } from "../lib/process-memory.js";

// Each process the CLI runs prints one line on exit: its pid, the old-space flags it has and its malloc variables.
const REPORT = "data:text/javascript,process.on('exit',()=>process.stderr.write('settings '+JSON.stringify({pid:process.pid," +
  "heap:process.execArgv.filter(a=>a.startsWith('--initial-old-space-size')),malloc:[process.env.MALLOC_MMAP_THRESHOLD_,process.env.MALLOC_TRIM_THRESHOLD_]})+'\\n'))";

interface Report { pid: number; heap: string[]; malloc: (string | undefined)[] }

function run(args: string[], env: NodeJS.ProcessEnv = {}, flags: string[] = []): Report[] {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MALLOC_")));
  const r = spawnSync(process.execPath, [...flags, "--import", REPORT, "bin/llama-ts.js", ...args], { encoding: "utf8", env: { ...clean, ...env } });
  expect(r.status, r.stderr).toBe(0);
  return r.stderr.split("\n").filter((l) => l.startsWith("settings ")).map((l) => JSON.parse(l.slice(9)) as Report);
}

describe.runIf(process.platform === "linux")("memory settings of the CLI's training commands", () => {
  it("dpo runs again as a child with the malloc variables and the old-space flag", () => {
    const reports = run(["dpo", "--help"]);
    expect(reports).toHaveLength(2);
    const child = reports.find((r) => r.heap.length > 0)!;
    expect(child.heap).toEqual(HEAP_FLAGS);
    expect(child.malloc).toEqual([MALLOC_ENV.MALLOC_MMAP_THRESHOLD_, MALLOC_ENV.MALLOC_TRIM_THRESHOLD_]);
  });

  it("a user's own values stand: set ones are kept, the rest added", () => {
    const reports = run(["lora-train", "--help"], { MALLOC_MMAP_THRESHOLD_: "65536" }, ["--initial-old-space-size=64"]);
    expect(reports).toHaveLength(2);
    for (const r of reports) expect(r.heap).toEqual(["--initial-old-space-size=64"]);
    expect(reports.map((r) => r.malloc[0])).toEqual(["65536", "65536"]);
    expect(reports.some((r) => r.malloc[1] === MALLOC_ENV.MALLOC_TRIM_THRESHOLD_)).toBe(true);
  });

  it("runs once when the settings are there, and for a command that does not train", () => {
    expect(run(["dpo", "--help"], MALLOC_ENV, HEAP_FLAGS.slice())).toHaveLength(1);
    expect(run(["generate", "--help"])).toHaveLength(1);
  });

  it("memorySettingsApplied needs both", () => {
    expect(memorySettingsApplied(MALLOC_ENV, HEAP_FLAGS)).toBe(true);
    expect(memorySettingsApplied(MALLOC_ENV, [])).toBe(false);
    expect(memorySettingsApplied({ MALLOC_MMAP_THRESHOLD_: "1" }, HEAP_FLAGS)).toBe(false);
  });
});
