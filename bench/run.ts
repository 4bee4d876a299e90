/**
 * `npm run bench -- [name ...]`: runs the benchmarks one after another, each in
 * its own process (so one's memory and threads do not skew the next), and
 * passes through their tables. Without names it lists them.
 *
 *   npm run bench -- cpu tokenizer      # two of them
 *   npm run bench -- all                # every one (long)
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { HEAP_FLAGS, MALLOC_ENV } from "../lib/process-memory.js";

const here = path.dirname(fileURLToPath(import.meta.url));

const BENCHES: Record<string, { file: string; what: string }> = {
  cpu: { file: "cpu-bench.ts", what: "prefill/decode tok/s on the CPU, default model and TinyLlama-1.1B shape, vs llama.cpp" },
  gemv: { file: "core-gemv.ts", what: "CPU GEMV/GEMM kernels (f32/f16, wasm SIMD vs JS) in GFLOP/s" },
  gpu: { file: "gpu-bench.ts", what: "WebGPU prefill/decode tok/s, GB/s and allocator bytes" },
  "gpu-quant": { file: "gpu-quant-bench.ts", what: "WebGPU GEMV (decode) and tiled matmul on weights in each ggml block type vs f16: µs/call, GB/s, GFLOP/s" },
  "gpu-train": { file: "gpu-train-bench.ts", what: "one prompt-tuning step (forward + backward) on the WebGPU tape vs the CPU tape" },
  tokenizer: { file: "tokenizer-bench.ts", what: "tokenizer encode speed vs sentencepiece WASM and @huggingface/tokenizers" },
  interp: { file: "interp-bench.ts", what: "runWithCache with all hooks on 512 tokens; attention grid build/render" },
  convert: { file: "convert-bench.ts", what: "Meta → HF conversion of a ~1 GB random checkpoint: wall time, peak RSS" },
  "prompt-tune": { file: "prompt-tune-bench.ts", what: "prompt tuning on the topic task: accuracy, s/step, peak RSS" },
  lora: { file: "lora-bench.ts", what: "LoRA (r 8, q/v) on the topic task for a time budget: accuracy, s/step" },
  quantize: { file: "quantize-bench.ts", what: "quantizing: ns/weight per type vs llama.cpp's ggml_quantize_chunk; llama-ts quantize on the default model" },
  "wasm-memories": { file: "wasm-memories-bench.ts", what: "a Llama-3-8B-shape Q4_0 GGUF (over 4 GiB) on the wasm kernels: memories used, load s, tok/s, peak RSS" },
  quant: { file: "quant-bench.ts", what: "GGUF models on the CPU (TinyLlama shape F16/Q8_0/Q4_0/Q4_K_M/7-type mix, Llama-2-7B Q8_0, Llama-3-8B Q4_0): load, tok/s, peak RSS, ours vs llama.cpp; a LoRA step on Q4_0" },
  "train-step": { file: "train-step-bench.ts", what: "one prompt-tuning / LoRA / DPO step on the CPU tape, default model, batch 8: ms and CPU-s per step" },
  reward: { file: "reward-bench.ts", what: "reward-train settings on the preference task: held-out pair accuracy, margin, CPU s/step (the defaults' experiment)" },
  dpo: { file: "dpo-bench.ts", what: "DPO with the CLI defaults on the preference task vs TRL 1.13 on this CPU: friend share, distinct bigrams, s/step, peak RSS" },
};

const names = process.argv.slice(2);
if (names.length === 0) {
  console.log("usage: npm run bench -- <name ...> | all\n");
  for (const [name, b] of Object.entries(BENCHES)) console.log(`  ${name.padEnd(12)} ${b.what}`);
  process.exit(0);
}
const chosen = names.includes("all") ? Object.keys(BENCHES) : names;
let failed = 0;
for (const name of chosen) {
  const b = BENCHES[name];
  if (!b) {
    console.error(`unknown benchmark "${name}" (expected one of: ${Object.keys(BENCHES).join(", ")}, all)`);
    process.exit(2);
  }
  const file = path.join(here, b.file);
  if (!fs.existsSync(file)) {
    console.error(`[bench] ${name}: ${file} is missing`);
    failed++;
    continue;
  }
  console.log(`\n=== ${name}: ${b.what}\n$ ${Object.entries(MALLOC_ENV).map(([k, v]) => `${k}=${v}`).join(" ")} node ${HEAP_FLAGS.join(" ")} --import tsx bench/${b.file}`);
  // With the memory settings the CLI's training commands and the notebook kernel run with (lib/process-memory.ts).
  const r = spawnSync(process.execPath, [...HEAP_FLAGS, "--import", "tsx", file], { stdio: "inherit", env: { ...process.env, ...MALLOC_ENV } });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
