/**
 * CPU matmul kernel throughput (no assertions): GEMV (decode) and GEMM
 * (prefill) on TinyLlama-1.1B-shaped weights, per dtype and thread count.
 *
 *   npx tsx bench/core-gemv.ts [--quick]
 *
 * GFLOP/s = 2·M·N·K / wall time; GB/s = weight bytes streamed / wall time.
 * "cpu ms" is the process CPU time per call (all threads); "GFLOP per cpu-s"
 * divides by it, which stays meaningful when other processes share the cores.
 */
import * as os from "node:os";
import { WasmLinearEngine } from "../lib/backend/cpu/wasm-engine.js";
import { JsLinearEngine, type LinearEngine } from "../lib/backend/cpu/linear-engine.js";
import { f32ToBf16, f32ToF16, type DType } from "../lib/tensor/dtype.js";

const quick = process.argv.includes("--quick");
const budgetMs = quick ? 300 : 1500;

function weights(n: number, dtype: DType): Float32Array | Uint16Array {
  const f = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; f[i] = (s / 2 ** 32 - 0.5) * 0.04; }
  return dtype === "f32" ? f : dtype === "f16" ? f32ToF16(f) : f32ToBf16(f);
}

function time(fn: () => void): { wall: number; cpu: number } {
  fn();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < budgetMs) { fn(); n++; }
  const cu = process.cpuUsage(c0);
  return { wall: (performance.now() - t0) / n, cpu: (cu.user + cu.system) / 1000 / n };
}

const rows: string[][] = [];
async function run(label: string, engine: LinearEngine, M: number, N: number, K: number, dtype: DType) {
  const w = engine.adopt(weights(N * K, dtype), dtype);
  const x = weights(M * K, "f32") as Float32Array;
  const y = new Float32Array(M * N);
  const t = time(() => engine.run(x, M, K, [{ w, dtype, N, y }]));
  const gflops = (2 * M * N * K) / (t.wall / 1000) / 1e9;
  const gbs = w.byteLength / (t.wall / 1000) / 1e9;
  const perCore = (2 * M * N * K) / (t.cpu / 1000) / 1e9;
  rows.push([label, dtype, `${M}x${K} @ ${N}x${K}`, t.wall.toFixed(2), t.cpu.toFixed(2), gflops.toFixed(2), gbs.toFixed(2), perCore.toFixed(2)]);
}

const cores = os.cpus();
console.log(`# CPU matmul kernels — ${cores[0]?.model ?? "cpu"} (${cores.length} cores), node ${process.version}`);
console.log(`# command: npx tsx bench/core-gemv.ts${quick ? " --quick" : ""}\n`);
const engines: [string, LinearEngine][] = [];
for (const t of [1, 2]) {
  const e = await WasmLinearEngine.create(t);
  if (e) engines.push([`wasm simd, ${t} thread${t > 1 ? "s" : ""}`, e]);
}
for (const [label, e] of engines) {
  for (const dtype of ["f16", "bf16", "f32"] as const) await run(label, e, 1, 5632, 2048, dtype);
  await run(label, e, 1, 32000, 2048, "f16");
  await run(label, e, 128, 5632, 2048, "f16");
  await run(label, e, 128, 5632, 2048, "f32");
}
await run("javascript, 1 thread", new JsLinearEngine(), 1, 5632, 2048, "f16");
const head = ["kernel", "weights", "shape (x @ W^T)", "wall ms", "cpu ms", "GFLOP/s", "GB/s", "GFLOP per cpu-s"];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (r: string[]) => "| " + r.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
console.log(line(head));
console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
for (const r of rows) console.log(line(r));
for (const [, e] of engines) e.dispose();
