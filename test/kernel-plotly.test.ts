/**
 * plotly.js is inlined once per kernel session, whichever path (the kernel's
 * display.plotly fallback, the library's Figure) shows the first figure:
 * test/kernel/test_plotly_once.py through jupyter_client on a real kernel.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kernelEnv, pyUnittest, type KernelEnv } from "./kernel/harness.js";

describe("plotly.js once per kernel session", () => {
  let k: KernelEnv;
  beforeAll(async () => {
    k = await kernelEnv();
  });
  afterAll(() => k?.cleanup());

  it("a session showing figures through both paths carries the script once", async () => {
    const res = await pyUnittest("test_plotly_once", k.env, 200_000);
    const out = res.stderr + res.stdout;
    expect(res.code, out).toBe(0);
    expect(out).toMatch(/Ran 2 tests/);
    expect(out).toMatch(/^OK$/m);
  }, 220_000);
});
