/**
 * WebGPU products on weights kept in their ggml blocks (gpu/ops/quant.ts)
 * against the f16 weight of the same shape (no assertions): per type, the
 * decode GEMV (batch 1) in µs per call and the weight bytes it streams per
 * second, and the prefill tiled matmul (M = --prompt) in GFLOP/s. Batch-1
 * decode is bound by bytes read, so on a GPU Q4 should take about a third of
 * f16's time. Weights are random values quantized by lib/quant (bit-exact with
 * ggml's quantizer); the calls are recorded back to back and timed with
 * one sync, the first call (shader compile) excluded.
 *
 *   node --import tsx bench/gpu-quant-bench.ts [--n 4096] [--k 4096] [--prompt 128] [--reps 200] [--f16 native|packed]
 *
 * On lavapipe (CPU Vulkan) the defaults drop to 1024×1024, prompt 32, 10 reps.
 */
import * as os from "node:os";
import { parseArgs } from "node:util";
import { createWebGpuBackend, type WebGpuBackend } from "../gpu/index.js";
import { classifyAdapter } from "../gpu/device.js";
import type { DeviceTensor } from "../lib/backend/backend.js";
import { f32ToF16 } from "../lib/tensor/dtype.js";
import { QUANT_LAYOUT, QUANT_TYPES, QuantizedTensor } from "../lib/tensor/quantized.js";
import { quantizeRows, type QuantizedType } from "../lib/quant/quantize.js";
import { Tensor } from "../lib/tensor/tensor.js";

const { values: flags } = parseArgs({
  options: { n: { type: "string" }, k: { type: "string" }, prompt: { type: "string" }, reps: { type: "string" }, f16: { type: "string" } },
});

async function main(): Promise<void> {
  const be: WebGpuBackend = await createWebGpuBackend({ f16: flags.f16 as "native" | "packed" | undefined });
  try {
    const cpuGpu = classifyAdapter(be.adapter) !== "gpu";
    const N = Number(flags.n ?? (cpuGpu ? 1024 : 4096));
    const K = Number(flags.k ?? (cpuGpu ? 1024 : 4096));
    const P = Number(flags.prompt ?? (cpuGpu ? 32 : 128));
    const reps = Number(flags.reps ?? (cpuGpu ? 10 : 200));
    let s = 12345;
    const f = Float32Array.from({ length: N * K }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.04);
    const x1 = be.upload(new Tensor(f.slice(0, K), [1, K]));
    const xP = be.upload(new Tensor(f.slice(0, P * K), [P, K]));

    /** Mean ms per call of `linear(x, w)`, `reps` calls recorded back to back. */
    const time = async (x: DeviceTensor, w: DeviceTensor, n: number): Promise<number> => {
      be.release(be.linear(x, w));
      await be.sync();
      const t0 = performance.now();
      for (let i = 0; i < n; i++) be.release(be.linear(x, w));
      await be.sync();
      return (performance.now() - t0) / n;
    };
    const rows: string[] = [];
    const row = async (name: string, w: DeviceTensor, bytes: number) => {
      const gemv = await time(x1, w, reps);
      const mm = await time(xP, w, Math.max(2, Math.floor(reps / 10)));
      rows.push(`| ${name} | ${(bytes / 2 ** 20).toFixed(2)} | ${(gemv * 1000).toFixed(1)} | ${(bytes / (gemv / 1000) / 1e9).toFixed(1)} | ` +
        `${((2 * P * N * K) / (mm / 1000) / 1e9).toFixed(1)} |`);
      be.release(w);
    };
    await row("f16", be.upload(new Tensor(f32ToF16(f), [N, K], "f16")), N * K * 2);
    for (const t of QUANT_TYPES) {
      const q = new QuantizedTensor(t, quantizeRows(QUANT_LAYOUT[t].ggml as QuantizedType, f, K), [N, K]);
      await row(t, be.uploadQuantized(q), q.data.byteLength);
    }
    const a = be.adapter;
    console.log([
      `command: node --import tsx bench/gpu-quant-bench.ts ${process.argv.slice(2).join(" ")}`.trim(),
      `machine: ${os.cpus()[0]?.model ?? "?"} × ${os.cpus().length}, node ${process.version}`,
      `device:  ${a.description || a.device} (${a.vendor}/${a.architecture}), f16 ${be.f16Mode}, subgroups ${be.features.includes("subgroups")}`,
      `weight [${N}, ${K}]; GEMV: x [1, ${K}], ${reps} calls; tiled: x [${P}, ${K}]`,
      "",
      "| weight | MiB | GEMV µs/call | GEMV weight GB/s | tiled GFLOP/s |",
      "| --- | --- | --- | --- | --- |",
      ...rows,
    ].join("\n"));
  } finally {
    be.dispose();
  }
}

await main();
