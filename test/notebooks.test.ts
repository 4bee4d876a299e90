/**
 * The notebook runner: executes every notebooks/*.ipynb headless on the llama-ts
 * kernel through nbclient (test/kernel/run_notebook.py) and fails on any error
 * output, cancelled cell or failed assertion. Prints, per notebook, the kernel
 * start → first result time and each cell's time; executed copies and JSON
 * reports go to test-artifacts/notebooks/.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kernelEnv, PYTHON, ROOT, run, type KernelEnv } from "./kernel/harness.js";

interface CellReport {
  index: number;
  first_line: string;
  seconds: number;
  status: string;
  outputs: string[];
}
interface NotebookReport {
  notebook: string;
  kernel_ready_s?: number;
  first_result_s?: number;
  total_s: number;
  ok: boolean;
  failure?: string;
  cells: CellReport[];
}

const notebooksDir = path.join(ROOT, "notebooks");
const notebooks = fs.existsSync(notebooksDir) ? fs.readdirSync(notebooksDir).filter((f) => f.endsWith(".ipynb")).sort() : [];
const artifacts = path.join(ROOT, "test-artifacts", "notebooks");

function table(r: NotebookReport): string {
  const lines = [
    `notebook ${r.notebook}: total ${r.total_s.toFixed(1)}s; kernel start → ready ${r.kernel_ready_s?.toFixed(2)}s → first result ${r.first_result_s?.toFixed(2)}s`,
    "  cell   seconds  status  outputs             first line",
  ];
  for (const c of r.cells) {
    lines.push(`  ${String(c.index).padStart(4)}  ${c.seconds.toFixed(2).padStart(8)}  ${c.status.padEnd(6)}  ${c.outputs.join(",").slice(0, 18).padEnd(18)}  ${c.first_line}`);
  }
  if (r.failure) lines.push(`  FAILED: ${r.failure}`);
  return lines.join("\n");
}

describe("notebooks run clean on the llama-ts kernel", () => {
  let k: KernelEnv;
  beforeAll(async () => {
    k = await kernelEnv();
    fs.mkdirSync(artifacts, { recursive: true });
  });
  afterAll(() => k?.cleanup());

  it("has the notebooks this project promises", () => {
    expect(notebooks).toContain("01-quickstart.ipynb");
    expect(notebooks).toContain("07-sequence-classification.ipynb");
    expect(notebooks).toContain("11-preference.ipynb");
  });

  for (const name of notebooks) {
    it(name, async () => {
      const env = { ...k.env };
      delete env.LLAMA_TS_MODEL; // notebooks run on the embedded default model
      const res = await run(
        PYTHON,
        [path.join(ROOT, "test", "kernel", "run_notebook.py"), path.join(notebooksDir, name), path.join(artifacts, name)],
        { env, cwd: notebooksDir, timeoutMs: 300_000 },
      );
      const line = res.stdout.trim().split("\n").pop() ?? "";
      let report: NotebookReport | undefined;
      try {
        report = JSON.parse(line) as NotebookReport;
      } catch {
        /* no report: the runner itself failed */
      }
      if (report) {
        fs.writeFileSync(path.join(artifacts, name.replace(/\.ipynb$/, ".report.json")), JSON.stringify(report, null, 2));
        process.stderr.write(table(report) + "\n");
      }
      expect(report, `runner produced no report (exit ${res.code}):\n${res.stderr.slice(-4000)}`).toBeDefined();
      expect(report!.failure ?? "", res.stderr.slice(-2000)).toBe("");
      expect(report!.ok).toBe(true);
      expect(res.code).toBe(0);
    }, 320_000);
  }
});
