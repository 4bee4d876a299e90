/**
 * The Jupyter project's own kernel protocol suite (Debian python3-jupyter-kernel-test)
 * against our kernel, every supported attribute filled in (test/kernel/test_jupyter_kernel.py).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kernelEnv, pyUnittest, type KernelEnv } from "./kernel/harness.js";

describe("jupyter_kernel_test suite", () => {
  let k: KernelEnv;
  beforeAll(async () => {
    k = await kernelEnv();
  });
  afterAll(() => k?.cleanup());

  it("passes every test, none skipped except the pager (not supported)", async () => {
    const t0 = Date.now();
    const res = await pyUnittest("test_jupyter_kernel", k.env);
    const secs = (Date.now() - t0) / 1000;
    const out = res.stderr + res.stdout;
    process.stderr.write(`[kernel-jkt] ${secs.toFixed(1)}s\n`);
    if (res.code !== 0) process.stderr.write(out);
    expect(res.code, out).toBe(0);
    const ran = /Ran (\d+) tests/.exec(out);
    expect(Number(ran?.[1])).toBeGreaterThanOrEqual(13);
    const skipped = out.split("\n").filter((l) => / \.\.\. skipped/.test(l));
    expect(skipped.map((l) => l.split(" ")[0])).toEqual(["test_pager"]);
    expect(out).toMatch(/^OK/m);
  });
});
