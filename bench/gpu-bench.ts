/**
 * WebGPU backend throughput and memory: prefill tok/s (one prompt of --prompt
 * tokens, batch 1), decode tok/s (--new greedy tokens of `generate`, through
 * the KV cache, the token picked on the GPU), the dispatches, submits and
 * bytes read back per decode token (counted on Dawn's own methods),
 * achieved GB/s (weights + KV read per decode token) against the card's
 * bandwidth, and the bytes our allocator holds (weights + KV + scratch)
 * against the model's own sum. Prints the command, the machine and the GPU.
 *
 *   node --import tsx bench/gpu-bench.ts                         # default model (models/tiny-stories)
 *   node --import tsx bench/gpu-bench.ts --random tinyllama      # random f16 weights of TinyLlama-1.1B's shape
 *   options: --model DIR  --prompt 512  --new 128  --f16 native|packed  --bandwidth-gbs 3000
 *
 * On Mesa lavapipe (CI) this runs the default model with a short prompt;
 * the TinyLlama shape is for a real GPU (2.2 GB of weights).
 */
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { createWebGpuBackend, type WebGpuBackend } from "../gpu/index.js";
import { installDawnCounter } from "./dawn-count.js";
import { cliProgress } from "../cli/progress.js";
import { DECODE_CHUNK } from "../gpu/kernels/attention-decode.js";
import { LlamaConfig } from "../lib/config.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { TINYLLAMA_1B_CONFIG, randomWeightsLoader } from "../lib/model/random.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values: flags } = parseArgs({
  options: {
    model: { type: "string" },
    random: { type: "string" },
    prompt: { type: "string", default: "512" },
    new: { type: "string", default: "128" },
    f16: { type: "string" },
    "bandwidth-gbs": { type: "string" },
  },
});

const GB = 1e9;
const MB = 1024 * 1024;

function fmt(n: number, digits = 1): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

async function loadModel(be: WebGpuBackend): Promise<{ model: LlamaForCausalLM; name: string }> {
  if (flags.random !== undefined) {
    if (flags.random !== "tinyllama") throw new Error(`--random: only "tinyllama" is known, got "${flags.random}"`);
    const config = LlamaConfig.fromJSON({ ...TINYLLAMA_1B_CONFIG }, "TinyLlama-1.1B shape");
    return { model: new LlamaForCausalLM(config, be, randomWeightsLoader(be, { dtype: "f16" })), name: "TinyLlama-1.1B shape, random f16" };
  }
  const dir = flags.model ?? path.join(ROOT, "models", "tiny-stories");
  const model = await LlamaForCausalLM.fromPretrained(dir, { backend: be, onProgress: cliProgress("loading") });
  return { model, name: path.relative(ROOT, dir) || dir };
}

async function main(): Promise<void> {
  const P = Number(flags.prompt);
  const N = Number(flags.new);
  const f16 = flags.f16 as "native" | "packed" | undefined;
  const be = await createWebGpuBackend({ f16 });
  try {
    const t0 = performance.now();
    const { model, name } = await loadModel(be);
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
    const adapter = be.adapter;
    const device = adapter.description || adapter.device;
    const bandwidth = flags["bandwidth-gbs"] ? Number(flags["bandwidth-gbs"]) : /H100/i.test(device) ? 3000 : undefined;

    const rows: [string, string][] = [
      ["model", `${name} (${c.num_hidden_layers} layers, hidden ${c.hidden_size}, vocab ${V})`],
      ["weights", `${fmt(mem.weights / MB)} MiB on the GPU (loaded in ${fmt(loadS, 2)} s)`],
      [`prefill ${P} tokens`, `${fmt(P / prefillS)} tok/s  (${fmt(prefillS * 1000)} ms)`],
      [`decode ${N} tokens`, `${fmt(decodeTokS)} tok/s  (${fmt((decodeS * 1000) / N, 2)} ms/token)`],
      ["decode GB/s", `${fmt(gbs, 2)} GB/s of weights + KV${bandwidth ? `  = ${fmt((100 * gbs) / bandwidth)}% of ${bandwidth} GB/s` : ""}`],
      ["per decode token", `${fmt(per("dispatches"), 2)} dispatches, ${fmt(per("submits"), 2)} submits, ${fmt(per("mappedBytes"), 0)} readback bytes` +
        // Past DECODE_CHUNK positions decode attention splits its keys over several workgroups (the GPU's
        // parallelism at long contexts); o_proj's GEMV merges the splits as it reads them, so no extra dispatch.
        (P + N > DECODE_CHUNK ? ` (past ${DECODE_CHUNK} positions: split-K attention, merged in o_proj's GEMV)` : "")],
      [`allocator at ${ctx} ctx`, `weights ${fmt(mem.weights / MB)} + kv ${fmt(mem.kv / MB)} + scratch ${fmt(mem.scratch / MB)} = ${fmt(mem.total / MB)} MiB (peak ${fmt(mem.peak / MB)} MiB)`],
      ["model's own sum", `weights ${fmt(mem.weights / MB)} + kv ${fmt(kvSum / MB)} MiB = ${fmt((mem.weights + kvSum) / MB)} MiB; peak / sum = ${fmt(mem.peak / (mem.weights + kvSum), 3)}`],
    ];
    const cmd = `node --import tsx bench/gpu-bench.ts ${process.argv.slice(2).join(" ")}`.trim();
    const lines = [
      `command: ${cmd}`,
      `machine: ${os.cpus()[0]?.model ?? "?"} × ${os.cpus().length}, ${fmt(os.totalmem() / GB)} GB RAM, node ${process.version}`,
      `device:  ${device} (${adapter.vendor}/${adapter.architecture}), f16 ${be.f16Mode}`,
      "",
      "| measure | value |",
      "| --- | --- |",
      ...rows.map(([k, v]) => `| ${k} | ${v} |`),
    ];
    process.stdout.write(lines.join("\n") + "\n");
  } finally {
    be.dispose();
  }
}

await main();
