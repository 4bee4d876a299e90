/**
 * `llama-ts kernel install` (CLI, built dist/): the kernelspec it writes, that
 * Debian's Jupyter finds it, and the usage errors of `kernel` and `start`.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PYTHON, ROOT, run } from "./kernel/harness.js";
import { HEAP_FLAGS, MALLOC_ENV } from "../lib/process-memory.js";

const cli = (args: string[], env: NodeJS.ProcessEnv = process.env) => run(process.execPath, [path.join(ROOT, "bin", "llama-ts.js"), ...args], { env });

describe("llama-ts kernel install", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-ts-kernelspec-"));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("--prefix P writes P/share/jupyter/kernels/llama-ts/kernel.json for this checkout's node and kernel", async () => {
    const res = await cli(["kernel", "install", "--prefix", path.join(tmp, "prefix")]);
    expect(res.code, res.stderr).toBe(0);
    const dir = path.join(tmp, "prefix", "share", "jupyter", "kernels", "llama-ts");
    expect(res.stdout.trim()).toBe(dir);
    const spec = JSON.parse(fs.readFileSync(path.join(dir, "kernel.json"), "utf8")) as Record<string, unknown>;
    expect(spec).toMatchObject({
      argv: [process.execPath, ...HEAP_FLAGS, path.join(ROOT, "dist", "kernel", "main.js"), "--connection-file", "{connection_file}"],
      env: MALLOC_ENV, // the training settings (lib/process-memory.ts)
      display_name: "LLaMA (TypeScript)",
      language: "typescript",
      interrupt_mode: "message",
    });
    // Debian's Jupyter sees it.
    const list = await run(PYTHON, ["-m", "jupyter_client.kernelspecapp", "list", "--json"], {
      env: { ...process.env, JUPYTER_PATH: path.join(tmp, "prefix", "share", "jupyter") },
    });
    expect(list.code, list.stderr).toBe(0);
    const specs = (JSON.parse(list.stdout) as { kernelspecs: Record<string, { resource_dir: string }> }).kernelspecs;
    expect(specs["llama-ts"]?.resource_dir).toBe(dir);
  });

  it("defaults to --user (the Jupyter data dir)", async () => {
    const data = path.join(tmp, "user-data");
    const res = await cli(["kernel", "install"], { ...process.env, JUPYTER_DATA_DIR: data });
    expect(res.code, res.stderr).toBe(0);
    expect(fs.existsSync(path.join(data, "kernels", "llama-ts", "kernel.json"))).toBe(true);
  });

  it("rejects bad usage with exit code 2 and a readable line", async () => {
    const both = await cli(["kernel", "install", "--user", "--prefix", tmp]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("--user and --prefix exclude each other");
    const none = await cli(["kernel"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("usage: llama-ts kernel install");
    const flag = await cli(["kernel", "install", "--bogus"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("--bogus");
    const port = await cli(["start", "--port", "eighty"]);
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('--port: expected a port number, got "eighty"');
    const dir = await cli(["start", "--notebook-dir", path.join(tmp, "missing")]);
    expect(dir.code).toBe(2);
    expect(dir.stderr).toContain("no such folder");
  });
});
