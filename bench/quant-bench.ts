/**
 * GGUF models on the CPU, ours vs llama.cpp on the same file in the same run
 * (no assertions): file MiB, load seconds, prefill and decode tok/s, peak RSS.
 *
 * Rows (random weights, in the temp folder, never in the repo; written once, reused):
 *  - TinyLlama-1.1B shape in f16, q8_0, q4_0 and q4_k_m: a random f16 checkpoint
 *    (bench/random-llama.ts), exported to an F16 GGUF or quantized by lib/quant's
 *    quantizeModel (bytes identical to llama.cpp's quantizer); and one whose matrices
 *    take Q4_K, Q5_K, Q6_K, Q8_0, Q4_1, Q5_0 and Q5_1 in turn (the memory check);
 *  - the Llama-2-7B shape in Q8_0 (7.2 GB) and the Llama-3-8B shape in Q4_0
 *    (4.3 GiB, over one wasm memory's 4 GiB), written straight from random blocks.
 * Each engine runs in its own child process, so each peak RSS
 * (process.resourceUsage().maxRSS) is that engine's alone. Ours runs exact (the
 * default) and, for the types it covers, with the opt-in int8 decode products
 * (LLAMA_TS_QUANT_DOT=int8). llama.cpp runs through node-llama-cpp (CPU build,
 * same threads; it mmaps the file, so its RSS counts the mapped weights).
 * The q4_0 TinyLlama row also reports one LoRA step (r 8 on every linear layer,
 * batch 4 × 64 tokens, forward + backward + Adam) on the CPU tape: seconds and peak RSS.
 *
 *   npm run bench -- quant
 *   node --import tsx bench/quant-bench.ts [--rows tinyllama-q4_0,llama2-7b-q8_0] [--no-llamacpp] [--no-int8]
 *   node --import tsx bench/quant-bench.ts --rows small-q4_0     # the script itself, in seconds
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { ensureGgufExport, ensureRandomGguf, ensureRandomLlama, LLAMA2_7B, LLAMA3_8B, SMALL_GGUF, TINYLLAMA_1_1B } from "./random-llama.js";

const argv = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1]! : fallback;
};
const THREADS = 2;
const work = path.join(os.tmpdir(), "llama-ts-bench");
const log = (m: string) => process.stderr.write(`[quant-bench] ${m}\n`);

interface Row {
  label: string;
  /** Makes (once) and returns the file. */
  file: () => Promise<string>;
  vocab: number;
  prompt: number;
  decode: number;
  /** Whether the int8 decode products cover its matrices. */
  int8: boolean;
  lora?: boolean;
  /** Only when named in --rows (checks the script itself in seconds). */
  check?: boolean;
}

const tinyDir = () => ensureRandomLlama(path.join(work, "tinyllama-1.1b-random-f16"), TINYLLAMA_1_1B, 1, log);

async function tinyQuantized(type: string): Promise<string> {
  const file = path.join(work, `tinyllama-1.1b-random-${type}.gguf`);
  if (fs.existsSync(file)) return file;
  const { quantizeModel } = await import("../lib/quant/quantize-model.js");
  log(`quantizing → ${file} (${type}; once, minutes)`);
  const tmp = `${file}.partial.gguf`;
  await quantizeModel(tinyDir(), tmp, { type });
  fs.renameSync(tmp, file);
  return file;
}

/**
 * The memory check mixes seven types: the TinyLlama-shape F16 GGUF with its matrices in turn
 * Q4_K, Q5_K, Q6_K, Q8_0, Q4_1, Q5_0, Q5_1 (lib/quant's quantizers, llama.cpp's bytes), norms F32,
 * streamed one tensor at a time.
 */
async function tinyMixed(): Promise<string> {
  const file = path.join(work, "tinyllama-1.1b-random-mixed7.gguf");
  if (fs.existsSync(file)) return file;
  const f16 = await ROWS["tinyllama-f16"]!.file();
  const { GgufFile } = await import("../lib/io/gguf.js");
  const { writeGguf } = await import("../lib/io/gguf-writer.js");
  const { GgmlType } = await import("../lib/io/gguf-types.js");
  const { quantizeRows } = await import("../lib/quant/quantize.js");
  const { Tensor } = await import("../lib/tensor/tensor.js");
  const types = [GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q8_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1] as const;
  log(`quantizing → ${file} (seven types in turn; once, minutes)`);
  const g = GgufFile.open(f16);
  try {
    let i = 0;
    const specs = g.tensorNames().map((name) => {
      const info = g.info(name);
      if (info.shape.length !== 2) return { name, shape: info.shape, type: GgmlType.F32, data: () => new Tensor(g.read(name).toFloat32(), info.shape, "f32") };
      const type = types[i++ % types.length]!;
      return { name, shape: info.shape, type, data: () => quantizeRows(type, g.read(name).toFloat32(), info.shape[1]!) };
    });
    const tmp = `${file}.partial`;
    writeGguf(tmp, [...g.metadata], specs);
    fs.renameSync(tmp, file);
  } finally {
    g.close();
  }
  return file;
}

const ROWS: Record<string, Row> = {
  "tinyllama-f16": { label: "TinyLlama-1.1B F16", file: async () => ensureGgufExport(tinyDir(), path.join(work, "tinyllama-f16.gguf"), "f16", log), vocab: 32000, prompt: 32, decode: 16, int8: false },
  "tinyllama-q8_0": { label: "TinyLlama-1.1B Q8_0", file: () => tinyQuantized("q8_0"), vocab: 32000, prompt: 32, decode: 24, int8: true },
  "tinyllama-q4_0": { label: "TinyLlama-1.1B Q4_0", file: () => tinyQuantized("q4_0"), vocab: 32000, prompt: 32, decode: 24, int8: true, lora: true },
  "tinyllama-q4_k_m": { label: "TinyLlama-1.1B Q4_K_M", file: () => tinyQuantized("q4_k_m"), vocab: 32000, prompt: 32, decode: 24, int8: true },
  "tinyllama-mixed": { label: "TinyLlama-1.1B Q4_K/Q5_K/Q6_K/Q8_0/Q4_1/Q5_0/Q5_1", file: tinyMixed, vocab: 32000, prompt: 32, decode: 24, int8: true },
  "llama2-7b-q8_0": {
    label: "Llama-2-7B Q8_0", file: async () => ensureRandomGguf(path.join(work, "llama2-7b-random-q8_0.gguf"), LLAMA2_7B, "q8_0", "random llama2-7b", log),
    vocab: LLAMA2_7B.vocab, prompt: 16, decode: 8, int8: true,
  },
  "llama3-8b-q4_0": {
    label: "Llama-3-8B Q4_0", file: async () => ensureRandomGguf(path.join(work, "llama3-8b-random-q4_0.gguf"), LLAMA3_8B, "q4_0", "random llama3-8b", log),
    vocab: LLAMA3_8B.vocab, prompt: 16, decode: 8, int8: true,
  },
  "small-q4_0": {
    label: "small (4 layers, hidden 512) Q4_0", file: async () => ensureRandomGguf(path.join(work, "small-random-q4_0.gguf"), SMALL_GGUF, "q4_0", "random small", log),
    vocab: SMALL_GGUF.vocab, prompt: 16, decode: 8, int8: true, lora: true, check: true,
  },
};

interface Result {
  engine: string;
  loadS: number;
  prefill: number;
  decode: number;
  /** Decoded tokens per CPU-second of the whole process (all threads): less sensitive to a shared machine. */
  decodeCpu: number;
  peakRssMiB: number;
  tokens?: number[];
}

interface LoraResult { stepS: number; stepCpuS: number; loadedRssMiB: number; peakRssMiB: number; loss: number }

const cpuSeconds = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1e6;

/** A fixed prompt: BOS then ids from a small LCG (the same for both engines). */
function promptIds(vocab: number, n: number): number[] {
  let s = 2024;
  return [1, ...Array.from({ length: n - 1 }, () => 3 + ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % (vocab - 3)))];
}

async function ours(file: string, row: Row): Promise<Result> {
  const { LlamaForCausalLM } = await import("../lib/model/index.js");
  const { generate } = await import("../lib/generate/index.js");
  const t0 = performance.now();
  const model = await LlamaForCausalLM.fromPretrained(file, { device: "cpu" });
  const loadS = (performance.now() - t0) / 1000;
  const prompt = promptIds(row.vocab, row.prompt);
  await model.forward({ inputIds: [prompt.slice(0, 4)], logitsToKeep: 1 }); // warm-up
  const p0 = performance.now();
  await model.forward({ inputIds: [prompt], useCache: false, logitsToKeep: 1 });
  const prefill = row.prompt / ((performance.now() - p0) / 1000);
  let tFirst = 0, tLast = 0, seen = 0;
  let cFirst = process.cpuUsage(), cLast = cFirst;
  const out = await generate(model, {
    inputIds: [prompt], maxNewTokens: row.decode + 1, eosTokenId: null,
    streamer: () => {
      if (++seen === 1) { tFirst = performance.now(); cFirst = process.cpuUsage(); }
      else { tLast = performance.now(); cLast = process.cpuUsage(); }
    },
  });
  const decode = row.decode / ((tLast - tFirst) / 1000);
  const decodeCpu = row.decode / (cpuSeconds(cLast) - cpuSeconds(cFirst));
  return {
    engine: model.backend.description, loadS, prefill, decode, decodeCpu,
    peakRssMiB: process.resourceUsage().maxRSS / 1024, tokens: out[0]!.slice(row.prompt),
  };
}

async function llamaCpp(file: string, row: Row): Promise<Result> {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: THREADS });
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const loadS = (performance.now() - t0) / 1000;
  const ctx = await model.createContext({ contextSize: 512, batchSize: 512, threads: { ideal: THREADS, min: THREADS } });
  const seq = ctx.getSequence();
  type Tok = Parameters<typeof seq.evaluateWithoutGeneratingNewTokens>[0][number];
  const toks = promptIds(row.vocab, row.prompt) as unknown as Tok[];
  await seq.evaluateWithoutGeneratingNewTokens(toks.slice(0, 4)); // warm-up
  await seq.clearHistory();
  const p0 = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(toks);
  const prefill = row.prompt / ((performance.now() - p0) / 1000);
  const d0 = performance.now();
  const c0 = process.cpuUsage();
  let n = 0;
  for await (const _ of seq.evaluate([toks[toks.length - 1]!], { temperature: 0 })) if (++n >= row.decode) break;
  const decode = row.decode / ((performance.now() - d0) / 1000);
  const decodeCpu = row.decode / cpuSeconds(process.cpuUsage(c0));
  const r: Result = { engine: "llama.cpp", loadS, prefill, decode, decodeCpu, peakRssMiB: process.resourceUsage().maxRSS / 1024 };
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  return r;
}

/** One LoRA step (r 8, alpha 16, every linear layer; batch 4 × 64 tokens) on the CPU tape over the quantized base; the second step is timed. */
async function loraStep(file: string, row: Row): Promise<LoraResult> {
  const { LlamaForCausalLM } = await import("../lib/model/index.js");
  const { createDifferentiableBackend, backprop } = await import("../lib/autograd/differentiable.js");
  const { LoraModel } = await import("../lib/peft/lora-train.js");
  const { Adam } = await import("../lib/peft/optim.js");
  const tape = await createDifferentiableBackend("cpu");
  const base = await LlamaForCausalLM.fromPretrained(file, { backend: tape });
  const loadedRssMiB = process.memoryUsage().rss / 2 ** 20;
  const lora = LoraModel.create(base, { r: 8, lora_alpha: 16, target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] }, { seed: 1 });
  const params = lora.parameters();
  const adam = new Adam(params, { lr: 1e-3 });
  const ids = Array.from({ length: 4 }, (_, b) => promptIds(row.vocab + b, 64));
  let stepS = 0, stepCpuS = 0, loss = 0;
  for (let step = 0; step < 2; step++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const out = await lora.forward({ inputIds: ids, labels: ids });
    await backprop(tape, out.loss!);
    loss = out.loss!.value[0]!;
    adam.step();
    adam.zeroGrad();
    stepS = (performance.now() - t0) / 1000;
    stepCpuS = cpuSeconds(process.cpuUsage(c0));
  }
  return { stepS, stepCpuS, loadedRssMiB, peakRssMiB: process.resourceUsage().maxRSS / 1024, loss };
}

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

function runChild(engine: string, file: string, rowKey: string): string | undefined {
  const r = spawnSync(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--child", engine, "--file", file, "--row", rowKey], {
    encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 26,
    env: { ...process.env, LLAMA_TS_THREADS: String(THREADS), LLAMA_TS_QUANT_DOT: engine === "ours-int8" ? "int8" : "exact" },
  });
  const line = r.stdout.split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) console.log(`${rowKey} ${engine}: failed (exit ${r.status}, signal ${r.signal})\n${r.stdout.slice(-2000)}`);
  return line?.slice(7);
}

function printTable(table: string[][]): void {
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const [i, r] of table.entries()) {
    console.log(`| ${r.map((c, j) => c.padEnd(widths[j]!)).join(" | ")} |`);
    if (i === 0) console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  }
}

async function main(): Promise<void> {
  const childEngine = flag("--child", "");
  if (childEngine) {
    const row = ROWS[flag("--row", "")]!;
    const file = flag("--file", "");
    const r = childEngine === "lora" ? await loraStep(file, row) : childEngine === "llamacpp" ? await llamaCpp(file, row) : await ours(file, row);
    process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
    return;
  }
  const keys = flag("--rows", Object.keys(ROWS).filter((k) => !ROWS[k]!.check).join(",")).split(",");
  for (const k of keys) if (!ROWS[k]) throw new Error(`--rows: "${k}" is not one of ${Object.keys(ROWS).join(", ")}`);
  const cpus = os.cpus();
  console.log(`# GGUF models on the CPU — ${cpus[0]?.model ?? "cpu"} (${cpus.length} cores), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, ${os.platform()} ${os.arch()}`);
  console.log(`# command: npm run bench -- quant   (node --import tsx bench/quant-bench.ts ${argv.join(" ")})`.trimEnd());
  console.log(`# load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")} (the cores may be shared; see tok/cpu-s)`);
  console.log(`# random weights; ${THREADS} threads each (llama-ts: wasm SIMD kernels; llama.cpp: node-llama-cpp 3.21.1, CPU build); greedy decode;`);
  console.log(`# load from a warm page cache (each file is read once before its first row)\n`);
  const table = [["model", "engine", "file MiB", "load s", "prefill tok/s", "decode tok/s", "decode tok/cpu-s", "peak RSS MiB", "RSS − file MiB", "decode vs llama.cpp"]];
  const loraRows: string[][] = [];
  for (const key of keys) {
    const row = ROWS[key]!;
    const file = await row.file();
    const mib = fs.statSync(file).size / 2 ** 20;
    warmPageCache(file);
    const results: Result[] = [];
    const engines = ["ours", ...(row.int8 && !argv.includes("--no-int8") ? ["ours-int8"] : []), ...(argv.includes("--no-llamacpp") ? [] : ["llamacpp"])];
    for (const e of engines) {
      log(`${key}: ${e} …`);
      const line = runChild(e, file, key);
      if (!line) continue;
      const r = JSON.parse(line) as Result;
      if (e !== "llamacpp") r.engine = e === "ours-int8" ? "llama-ts, int8 decode products" : "llama-ts, exact";
      results.push(r);
    }
    const ref = results.find((r) => r.engine.startsWith("llama.cpp"));
    for (const r of results) {
      table.push([`${row.label} (prompt ${row.prompt}, decode ${row.decode})`, r.engine, mib.toFixed(0), fmt(r.loadS), fmt(r.prefill), fmt(r.decode), fmt(r.decodeCpu),
        r.peakRssMiB.toFixed(0), (r.peakRssMiB - mib).toFixed(0), ref && r !== ref ? `${fmt(r.decode / ref.decode)}× (${fmt(r.decodeCpu / ref.decodeCpu)}× per cpu-s)` : ""]);
    }
    const exact = results.find((r) => r.tokens && !r.engine.includes("int8"));
    if (exact?.tokens) log(`${key}: our greedy tokens ${exact.tokens.join(" ")}`);
    if (row.lora) {
      log(`${key}: LoRA step …`);
      const line = runChild("lora", file, key);
      if (line) {
        const l = JSON.parse(line) as LoraResult;
        loraRows.push([row.label, mib.toFixed(0), fmt(l.stepS), fmt(l.stepCpuS), l.loss.toFixed(3), l.loadedRssMiB.toFixed(0), l.peakRssMiB.toFixed(0), (l.peakRssMiB - mib).toFixed(0)]);
      }
    }
  }
  printTable(table);
  if (loraRows.length) {
    console.log("\n# one LoRA step on the quantized frozen base (CPU tape; r 8 / alpha 16 on q,k,v,o,gate,up,down; batch 4 × 64 tokens; forward + backward + Adam)\n");
    printTable([["model", "file MiB", "step s", "step cpu-s", "loss", "RSS after load MiB", "peak RSS MiB", "peak RSS − file MiB"], ...loraRows]);
  }
  console.log(`\n# load average at end: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
}

/** Reads the file once so every engine's load starts from a warm page cache (the first engine would otherwise pay the disk). */
function warmPageCache(file: string): void {
  const fd = fs.openSync(file, "r");
  const buf = Buffer.allocUnsafe(1 << 24);
  try {
    while (fs.readSync(fd, buf, 0, buf.length, null) > 0);
  } finally {
    fs.closeSync(fd);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
