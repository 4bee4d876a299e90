/**
 * A model past one WebAssembly memory's 4 GiB on the wasm kernels (no assertions):
 * the Llama-3-8B shape (hidden 4096, 32 layers, 32/8 heads, ffn 14336, vocab
 * 128256) in Q4_0, random weights, written straight as a GGUF (every matrix
 * Q4_0, norms F32; about 4.3 GiB) in the temp folder, never in the repo, once.
 * A child process loads it on the CPU backend, prefills a short prompt and
 * decodes greedily, and reports the memories the weights spread over, load
 * seconds, prefill and decode tok/s and its peak RSS (process.resourceUsage).
 *
 *   node --import tsx bench/wasm-memories-bench.ts [--shape llama3-8b|small] [--prompt 8] [--decode 4] [--threads 2]
 *
 * `--shape small` (a 4-layer, hidden-512 model) checks the script itself in seconds;
 * LLAMA_TS_WASM_MEMORY_MIB spreads it over several memories too.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { gguf, writeGguf, type GgufTensorSpec } from "../lib/io/gguf-writer.js";
import { GgmlType } from "../lib/io/gguf-types.js";
import { f32ToF16Bits } from "../lib/tensor/dtype.js";
import { Tensor } from "../lib/tensor/tensor.js";

const argv = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1]! : fallback;
};
const SHAPE = flag("--shape", "llama3-8b");
const PROMPT = Number(flag("--prompt", "8"));
const DECODE = Number(flag("--decode", "4"));
const THREADS = Number(flag("--threads", "2"));
const work = path.join(os.tmpdir(), "llama-ts-bench");
const log = (m: string) => process.stderr.write(`[wasm-memories-bench] ${m}\n`);

interface Shape { hidden: number; layers: number; heads: number; kvHeads: number; ffn: number; vocab: number }
const SHAPES: Record<string, Shape> = {
  "llama3-8b": { hidden: 4096, layers: 32, heads: 32, kvHeads: 8, ffn: 14336, vocab: 128256 },
  small: { hidden: 512, layers: 4, heads: 8, kvHeads: 2, ffn: 1536, vocab: 4096 },
};

/** Q4_0 blocks (f16 scale, 16 bytes of nibbles) of random codes, scale 0.004 (weights of std ≈ 0.018), from a xorshift32 stream. */
function* randomQ4_0(elems: number, state: { s: number }): Iterable<Uint8Array> {
  const scale = f32ToF16Bits(0.004);
  const blocksPerChunk = 1 << 20; // 18 MiB per chunk
  for (let left = elems / 32; left > 0; left -= blocksPerChunk) {
    const n = Math.min(left, blocksPerChunk);
    const out = new Uint8Array(n * 18);
    const words = new Uint32Array(n * 4);
    let s = state.s;
    for (let i = 0; i < words.length; i++) {
      s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
      words[i] = s >>> 0;
    }
    state.s = s;
    const bytes = new Uint8Array(words.buffer);
    for (let b = 0; b < n; b++) {
      out[18 * b] = scale & 0xff;
      out[18 * b + 1] = scale >> 8;
      out.set(bytes.subarray(16 * b, 16 * b + 16), 18 * b + 2);
    }
    yield out;
  }
}

function writeModel(file: string, s: Shape): void {
  const state = { s: 2024 };
  const headDim = s.hidden / s.heads;
  const q4 = (name: string, shape: [number, number]): GgufTensorSpec => ({ name, shape, type: GgmlType.Q4_0, data: () => randomQ4_0(shape[0] * shape[1], state) });
  const norm = (name: string): GgufTensorSpec => ({ name, shape: [s.hidden], type: GgmlType.F32, data: () => new Tensor(new Float32Array(s.hidden).fill(1), [s.hidden], "f32") });
  const tensors: GgufTensorSpec[] = [q4("token_embd.weight", [s.vocab, s.hidden])];
  for (let l = 0; l < s.layers; l++) {
    const b = `blk.${l}.`;
    tensors.push(norm(`${b}attn_norm.weight`),
      q4(`${b}attn_q.weight`, [s.heads * headDim, s.hidden]), q4(`${b}attn_k.weight`, [s.kvHeads * headDim, s.hidden]),
      q4(`${b}attn_v.weight`, [s.kvHeads * headDim, s.hidden]), q4(`${b}attn_output.weight`, [s.hidden, s.heads * headDim]),
      norm(`${b}ffn_norm.weight`),
      q4(`${b}ffn_gate.weight`, [s.ffn, s.hidden]), q4(`${b}ffn_up.weight`, [s.ffn, s.hidden]), q4(`${b}ffn_down.weight`, [s.hidden, s.ffn]));
  }
  tensors.push(norm("output_norm.weight"), q4("output.weight", [s.vocab, s.hidden]));
  const meta: [string, ReturnType<typeof gguf.u32>][] = [
    ["general.architecture", gguf.str("llama")], ["general.name", gguf.str(`random ${SHAPE}`)], ["general.file_type", gguf.u32(2)],
    ["llama.context_length", gguf.u32(8192)], ["llama.embedding_length", gguf.u32(s.hidden)], ["llama.block_count", gguf.u32(s.layers)],
    ["llama.feed_forward_length", gguf.u32(s.ffn)], ["llama.attention.head_count", gguf.u32(s.heads)],
    ["llama.attention.head_count_kv", gguf.u32(s.kvHeads)], ["llama.rope.freq_base", gguf.f32(500000)],
    ["llama.attention.layer_norm_rms_epsilon", gguf.f32(1e-5)], ["llama.vocab_size", gguf.u32(s.vocab)],
  ];
  const tmp = `${file}.partial`;
  writeGguf(tmp, meta, tensors, { onTensor: (name) => { if (name.endsWith("ffn_down.weight")) log(`wrote ${name}`); } });
  fs.renameSync(tmp, file);
}

interface Result { description: string; loadS: number; prefill: number; decode: number; tokens: number[]; peakRssMiB: number }

async function child(file: string): Promise<Result> {
  const { LlamaForCausalLM } = await import("../lib/model/index.js");
  const { generate } = await import("../lib/generate/index.js");
  const t0 = performance.now();
  const model = await LlamaForCausalLM.fromPretrained(file, { device: "cpu" });
  const loadS = (performance.now() - t0) / 1000;
  const prompt = [1, ...Array.from({ length: PROMPT - 1 }, (_, i) => 1000 + 37 * i)];
  const p0 = performance.now();
  await model.forward({ inputIds: [prompt], useCache: false, logitsToKeep: 1 });
  const prefill = PROMPT / ((performance.now() - p0) / 1000);
  let tFirst = 0, tLast = 0, seen = 0;
  const tokens = await generate(model, {
    inputIds: [prompt], maxNewTokens: DECODE + 1, eosTokenId: null,
    streamer: () => { if (++seen === 1) tFirst = performance.now(); else tLast = performance.now(); },
  });
  const decode = DECODE / ((tLast - tFirst) / 1000);
  return { description: model.backend.description, loadS, prefill, decode, tokens: tokens[0]!.slice(PROMPT), peakRssMiB: process.resourceUsage().maxRSS / 1024 };
}

async function main(): Promise<void> {
  const shape = SHAPES[SHAPE];
  if (!shape) throw new Error(`--shape: "${SHAPE}" is not one of ${Object.keys(SHAPES).join(", ")}`);
  if (argv.includes("--child")) {
    process.stdout.write(`RESULT ${JSON.stringify(await child(flag("--file", "")))}\n`);
    return;
  }
  const cpus = os.cpus();
  console.log(`# Past 4 GiB on the wasm kernels — ${cpus[0]?.model ?? "cpu"} (${cpus.length} cores), node ${process.version}, ${os.platform()} ${os.arch()}`);
  console.log(`# command: node --import tsx bench/wasm-memories-bench.ts ${argv.join(" ")}`.trimEnd());
  console.log(`# load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")} (the cores may be shared)`);
  fs.mkdirSync(work, { recursive: true });
  const file = path.join(work, `${SHAPE}-random-q4_0.gguf`);
  if (!fs.existsSync(file)) {
    log(`writing ${file} (once)`);
    const t0 = performance.now();
    writeModel(file, shape);
    log(`written in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const mib = fs.statSync(file).size / 2 ** 20;
  console.log(`# file: ${SHAPE} shape, random Q4_0 weights (norms F32), ${mib.toFixed(0)} MiB; prompt ${PROMPT}, greedy decode ${DECODE} tokens, ${THREADS} threads\n`);
  const r = spawnSync(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--child", "--file", file, ...argv], {
    encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, LLAMA_TS_THREADS: String(THREADS) },
  });
  const line = r.stdout.split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) throw new Error(`child failed (exit ${r.status}, signal ${r.signal})\n${r.stdout}`);
  const res = JSON.parse(line.slice(7)) as Result;
  const rows = [["engine", "file MiB", "load s", "prefill tok/s", "decode tok/s", "peak RSS MiB", "RSS − file MiB"],
    [`llama-ts (${res.description})`, mib.toFixed(0), res.loadS.toFixed(1), res.prefill.toFixed(2), res.decode.toFixed(2), res.peakRssMiB.toFixed(0), (res.peakRssMiB - mib).toFixed(0)]];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((x) => x[i]!.length)));
  for (const [i, x] of rows.entries()) {
    console.log(`| ${x.map((c, j) => c.padEnd(widths[j]!)).join(" | ")} |`);
    if (i === 0) console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  }
  console.log(`\n# greedy tokens: ${res.tokens.join(" ")}`);
  console.log(`# load average at end: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
