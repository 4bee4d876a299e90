/**
 * WebGPU backend throughput and memory: prefill tok/s (one prompt of --prompt
 * tokens, batch 1), decode tok/s (--new greedy tokens of `generate`, through
 * the KV cache, the token picked on the GPU), the dispatches, submits and
 * bytes read back per decode token (counted on Dawn's own methods),
 * achieved GB/s (weights + KV read per decode token) against the adapter's
 * copy bandwidth measured here (gpu-copy-bandwidth.ts), and the bytes our
 * allocator holds (weights + KV + scratch) against the model's own sum.
 * Prints the command, the machine and the GPU.
 *
 *   node --import tsx bench/gpu-bench.ts                         # default model, then the TinyLlama-1.1B shape in f16 and Q4_0
 *   node --import tsx bench/gpu-bench.ts --random tinyllama      # only TinyLlama-1.1B's shape (random f16 weights)
 *   node --import tsx bench/gpu-bench.ts --random tinyllama-q4_0 # only that shape in Q4_0 (a random GGUF in the temp dir, kept in blocks)
 *   node --import tsx bench/gpu-bench.ts --model DIR             # only that checkpoint
 *   options: --prompt 512  --new 128  --f16 native|packed
 *
 * The TinyLlama shape (2.2 GB of random f16 weights, made on the GPU, never
 * written to disk; or 0.6 GB of random Q4_0 blocks, written once to a GGUF in
 * the temp dir) is skipped with a note on a CPU fallback adapter (Mesa
 * lavapipe in CI), where one 512-token prefill alone would take minutes.
 */
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { classifyAdapter, createWebGpuBackend, type WebGpuBackend } from "../gpu/index.js";
import { installDawnCounter } from "./dawn-count.js";
import { copyBandwidthGBs } from "./gpu-copy-bandwidth.js";
import { cliProgress } from "../cli/progress.js";
import { DECODE_CHUNK } from "../gpu/kernels/attention-decode.js";
import { LlamaConfig } from "../lib/config.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { TINYLLAMA_1B_CONFIG, randomWeightsLoader } from "../lib/model/random.js";
import { TINYLLAMA_GGUF, ensureRandomGguf } from "./random-llama.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values: flags } = parseArgs({
  options: {
    model: { type: "string" },
    random: { type: "string" },
    prompt: { type: "string", default: "512" },
    new: { type: "string", default: "128" },
    f16: { type: "string" },
  },
});

const GB = 1e9;
const MB = 1024 * 1024;

function fmt(n: number, digits = 1): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** A checkpoint, or TinyLlama-1.1B's shape with random f16 weights / random Q4_0 blocks. */
const RANDOM = ["tinyllama", "tinyllama-q4_0"] as const;
type Target = { dir: string } | (typeof RANDOM)[number];

async function loadModel(be: WebGpuBackend, target: Target): Promise<{ model: LlamaForCausalLM; name: string }> {
  if (target === "tinyllama") {
    const config = LlamaConfig.fromJSON({ ...TINYLLAMA_1B_CONFIG }, "TinyLlama-1.1B shape");
    return { model: new LlamaForCausalLM(config, be, randomWeightsLoader(be, { dtype: "f16" })), name: "TinyLlama-1.1B shape, random f16" };
  }
  if (target === "tinyllama-q4_0") {
    const file = ensureRandomGguf(path.join(os.tmpdir(), "llama-ts-bench", "tinyllama-random-q4_0.gguf"), TINYLLAMA_GGUF, "q4_0", "random tinyllama",
      (m) => process.stderr.write(`${m}\n`));
    const model = await LlamaForCausalLM.fromPretrained(file, { backend: be, onProgress: cliProgress("loading") });
    return { model, name: "TinyLlama-1.1B shape, random Q4_0 (GGUF)" };
  }
  const model = await LlamaForCausalLM.fromPretrained(target.dir, { backend: be, onProgress: cliProgress("loading") });
  return { model, name: path.relative(ROOT, target.dir) || target.dir };
}

function targets(): Target[] {
  if (flags.random !== undefined) {
    const known = RANDOM.find((r) => r === flags.random);
    if (!known) throw new Error(`--random: expected ${RANDOM.join(" or ")}, got "${flags.random}"`);
    return [known];
  }
  if (flags.model !== undefined) return [{ dir: flags.model }];
  return [{ dir: path.join(ROOT, "models", "tiny-stories") }, ...RANDOM];
}

async function main(): Promise<void> {
  const f16 = flags.f16 as "native" | "packed" | undefined;
  const be = await createWebGpuBackend({ f16 });
  try {
    const adapter = be.adapter;
    const device = adapter.description || adapter.device;
    const copy = await copyBandwidthGBs(be.runtime.ctx.device);
    const script = path.relative(ROOT, process.argv[1] ?? "bench/gpu-bench.ts"); // the .ts, or the device kit's bundle
    const cmd = `node ${script.endsWith(".ts") ? "--import tsx " : ""}${script} ${process.argv.slice(2).join(" ")}`.trim();
    process.stdout.write([
      `command: ${cmd}`,
      `machine: ${os.cpus()[0]?.model ?? "?"} × ${os.cpus().length}, ${fmt(os.totalmem() / GB)} GB RAM, node ${process.version}`,
      `device:  ${device} (${adapter.vendor}/${adapter.architecture}), f16 ${be.f16Mode}`,
      `copy:    ${fmt(copy.gbs, 1)} GB/s device-to-device (${fmt(copy.bytes / MB, 0)} MiB buffers, read + write bytes)`,
    ].join("\n") + "\n");
    for (const target of targets()) {
      if (typeof target === "string" && classifyAdapter(adapter) !== "gpu" && flags.random === undefined) {
        process.stdout.write(`\n${target}: skipped, the adapter is a CPU fallback (${classifyAdapter(adapter)}); ` +
          `run on a real GPU, or ask for it alone with --random ${target}\n`);
        continue;
      }
      await benchModel(be, target, copy.gbs);
    }
  } finally {
    be.dispose();
  }
}

async function benchModel(be: WebGpuBackend, target: Target, bandwidth: number): Promise<void> {
  const P = Number(flags.prompt);
  const N = Number(flags.new);
  const t0 = performance.now();
  const { model, name } = await loadModel(be, target);
  const loadS = (performance.now() - t0) / 1000;
  const c = model.config;
  const V = c.vocab_size;
  const ids = Array.from({ length: P }, (_, i) => 1 + ((i * 7919) % (V - 1)));

  // Warm-up: compiles every pipeline used by prefill and decode.
  const warm = await model.forward({ inputIds: [ids.slice(0, Math.min(P, 16))], logitsToKeep: 1 });
  await model.forward({ inputIds: [[5]], pastKeyValues: warm.pastKeyValues, logitsToKeep: 1 });
  warm.pastKeyValues!.release();

  const tp = performance.now();
  const out = await model.forward({ inputIds: [ids], logitsToKeep: 1 });
  const prefillS = (performance.now() - tp) / 1000;
  out.pastKeyValues!.release();

  // Decode: `generate` itself (greedy; the GPU picks each token and only its id comes back), counted
  // from outside our code by wrapping Dawn's own methods. Steady state = the difference of two runs
  // (n1 and N new tokens) divided by N − n1, so the prefill and the first token's setup cancel out.
  const counter = await installDawnCounter();
  const gen = async (n: number) => {
    const t = performance.now();
    await model.generate({ inputIds: [ids], maxNewTokens: n, doSample: false, eosTokenId: null });
    return performance.now() - t;
  };
  await gen(2); // compiles the token-selection pipelines
  const n1 = Math.max(1, Math.floor(N / 4));
  const s0 = counter.snapshot();
  const ms1 = await gen(n1);
  const s1 = counter.snapshot();
  const msN = await gen(N);
  const s2 = counter.snapshot();
  counter.uninstall();
  const steps = N - n1;
  const per = (k: keyof typeof s0) => ((s2[k] - s1[k]) - (s1[k] - s0[k])) / steps;
  const decodeS = ((msN - ms1) / 1000 / steps) * N;
  const mem = be.memory();

  // Bytes one decode token reads: every weight except the embedding table (one row is gathered), plus the KV cache.
  const embedBytes = c.vocab_size * c.hidden_size * 2;
  const weightRead = mem.weights - (c.tie_word_embeddings ? 0 : embedBytes);
  const avgCtx = P + N / 2;
  const kvRead = 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * avgCtx * 4;
  const decodeTokS = N / decodeS;
  const gbs = ((weightRead + kvRead) * decodeTokS) / GB;
  const ctx = P + N;
  const kvSum = 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * ctx * 4;

  const rows: [string, string][] = [
    ["model", `${name} (${c.num_hidden_layers} layers, hidden ${c.hidden_size}, vocab ${V})`],
    ["weights", `${fmt(mem.weights / MB)} MiB on the GPU (loaded in ${fmt(loadS, 2)} s)`],
    [`prefill ${P} tokens`, `${fmt(P / prefillS)} tok/s  (${fmt(prefillS * 1000)} ms)`],
    [`decode ${N} tokens`, `${fmt(decodeTokS)} tok/s  (${fmt((decodeS * 1000) / N, 2)} ms/token)`],
    ["decode GB/s", `${fmt(gbs, 2)} GB/s of weights + KV = ${fmt((100 * gbs) / bandwidth)}% of the copy's ${fmt(bandwidth, 1)} GB/s`],
    ["per decode token", `${fmt(per("dispatches"), 2)} dispatches, ${fmt(per("submits"), 2)} submits, ${fmt(per("mappedBytes"), 0)} readback bytes` +
      // Past DECODE_CHUNK positions decode attention splits its keys over several workgroups (the GPU's
      // parallelism at long contexts); o_proj's GEMV merges the splits as it reads them, so no extra dispatch.
      (P + N > DECODE_CHUNK ? ` (past ${DECODE_CHUNK} positions: split-K attention, merged in o_proj's GEMV)` : "")],
    [`allocator at ${ctx} ctx`, `weights ${fmt(mem.weights / MB)} + kv ${fmt(mem.kv / MB)} + scratch ${fmt(mem.scratch / MB)} = ${fmt(mem.total / MB)} MiB (peak ${fmt(mem.peak / MB)} MiB)`],
    ["model's own sum", `weights ${fmt(mem.weights / MB)} + kv ${fmt(kvSum / MB)} MiB = ${fmt((mem.weights + kvSum) / MB)} MiB; peak / sum = ${fmt(mem.peak / (mem.weights + kvSum), 3)}`],
  ];
  const lines = ["", "| measure | value |", "| --- | --- |", ...rows.map(([k, v]) => `| ${k} | ${v} |`)];
  process.stdout.write(lines.join("\n") + "\n");
  // The next model's allocator rows must not count this one's weights (tied ones are released once).
  for (const p of model.parameters()) be.release(p.get());
}

await main();
