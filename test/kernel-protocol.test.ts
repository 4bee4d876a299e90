/**
 * Kernel protocol behaviour beyond the standard suite, driven by jupyter_client
 * (test/kernel/test_protocol.py): interrupts of a busy loop (message and signal),
 * of an await, of a loop of awaits and of a cell still type-checking; restart
 * with persisted history; comm round trips; stdin; 100 error cells in a row;
 * stop_on_error; ESM-only imports and `llama-ts` resolving to this checkout;
 * tracebacks on cell lines; rich outputs; a shutdown that finalizes a
 * notebook's WebGPU objects before the process exits.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kernelEnv, pyUnittest, type KernelEnv } from "./kernel/harness.js";

describe("kernel protocol (jupyter_client)", () => {
  let k: KernelEnv;
  beforeAll(async () => {
    k = await kernelEnv();
  });
  afterAll(() => k?.cleanup());

  for (const cls of ["InterruptTests", "ErrorTests", "FeatureTests", "RestartTests", "ShutdownTests"]) {
    it(cls, async () => {
      const res = await pyUnittest(`test_protocol.${cls}`, k.env, 200_000);
      const out = res.stderr + res.stdout;
      if (res.code !== 0) process.stderr.write(out.slice(-20_000));
      expect(res.code, out.slice(-5000)).toBe(0);
      expect(out).toMatch(/^OK$/m); // nothing skipped
    }, 220_000);
  }
});
