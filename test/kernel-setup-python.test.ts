/**
 * scripts/setup-python.sh: with the project venv in place it does nothing
 * (no pip run); when pip cannot install JupyterLab it falls back to Debian's
 * Notebook 6 and says so, exiting 0 so `npm start` goes on.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT, run } from "./kernel/harness.js";

describe("scripts/setup-python.sh", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-ts-setup-python-"));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("is a no-op when the venv already has JupyterLab", async () => {
    if (!fs.existsSync(path.join(ROOT, ".venv", ".llama-ts-ready"))) {
      const first = await run("bash", ["scripts/setup-python.sh"], { env: process.env, timeoutMs: 600_000 });
      expect(first.code, first.stderr).toBe(0);
    }
    const again = await run("bash", ["scripts/setup-python.sh"], { env: process.env });
    expect(again.code).toBe(0);
    expect(again.stderr).toBe(""); // nothing installed, nothing to say
    expect(fs.existsSync(path.join(ROOT, ".venv", "bin", "jupyter-lab"))).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(ROOT, ".venv", "package.json"), "utf8"))).toEqual({ type: "commonjs" });
  });

  it("falls back to Debian's Notebook 6 when pip fails", async () => {
    const venv = path.join(tmp, "venv");
    const res = await run("bash", ["scripts/setup-python.sh"], {
      env: { ...process.env, LLAMA_TS_VENV: venv, LLAMA_TS_PIP_INDEX: `file://${tmp}/no-such-index/simple` },
      timeoutMs: 170_000,
    });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain("pip install failed");
    expect(res.stderr).toContain("falling back to Debian's Jupyter (python3-notebook, Notebook 6)");
    expect(fs.existsSync(path.join(venv, ".llama-ts-ready"))).toBe(false);
    expect(fs.existsSync(path.join(venv, "bin", "jupyter-lab"))).toBe(false);
  }, 180_000);
});
