/**
 * Quantized GGUF on the CPU, ours vs llama.cpp on the same file in the same run
 * (no assertions): peak RSS of a greedy generate, prefill and decode tok/s.
 *
 * The file: a random-weight model of TinyLlama-1.1B's shape (bench/random-llama.ts,
 * f16, in the temp folder, never in the repo) quantized by lib/quant's
 * quantizeModel (bytes identical to llama.cpp's quantizer) to Q4_0, written
 * once and reused. Each engine runs in its own child process, so each peak RSS
 * (process.resourceUsage().maxRSS) is that engine's alone. Ours runs twice:
 * exact (the default) and with the opt-in int8 decode products
 * (LLAMA_TS_QUANT_DOT=int8). llama.cpp runs through node-llama-cpp (CPU build, 2 threads).
 *
 *   node --import tsx bench/quant-bench.ts [--type q4_0] [--decode 24] [--prompt 32] [--no-llamacpp]
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { ensureRandomLlama, TINYLLAMA_1_1B } from "./random-llama.js";

const argv = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1]! : fallback;
};
const TYPE = flag("--type", "q4_0");
const DECODE = Number(flag("--decode", "24"));
const PROMPT = Number(flag("--prompt", "32"));
const THREADS = 2;
const work = path.join(os.tmpdir(), "llama-ts-bench");
const log = (m: string) => process.stderr.write(`[quant-bench] ${m}\n`);

interface Result {
  engine: string;
  loadS: number;
  prefill: number;
  decode: number;
  /** Decoded tokens per CPU-second of the whole process (all threads): less sensitive to a shared machine. */
  decodeCpu: number;
  peakRssMiB: number;
}

const cpuSeconds = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1e6;

/** A fixed prompt: BOS then ids from a small LCG (the same for both engines). */
function promptIds(vocab: number): number[] {
  let s = 2024;
  return [1, ...Array.from({ length: PROMPT - 1 }, () => 3 + ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % (vocab - 3)))];
}

async function ours(file: string): Promise<Result> {
  const { LlamaForCausalLM } = await import("../lib/model/index.js");
  const { generate } = await import("../lib/generate/index.js");
  const t0 = performance.now();
  const model = await LlamaForCausalLM.fromPretrained(file, { device: "cpu" });
  const loadS = (performance.now() - t0) / 1000;
  const prompt = promptIds(model.config.vocab_size);
  await model.forward({ inputIds: [prompt.slice(0, 4)], logitsToKeep: 1 }); // warm-up
  const p0 = performance.now();
  await model.forward({ inputIds: [prompt], useCache: false, logitsToKeep: 1 });
  const prefill = PROMPT / ((performance.now() - p0) / 1000);
  let tFirst = 0, tLast = 0, seen = 0;
  let cFirst = process.cpuUsage(), cLast = cFirst;
  await generate(model, {
    inputIds: [prompt], maxNewTokens: DECODE + 1, eosTokenId: null,
    streamer: () => {
      if (++seen === 1) { tFirst = performance.now(); cFirst = process.cpuUsage(); }
      else { tLast = performance.now(); cLast = process.cpuUsage(); }
    },
  });
  const decode = DECODE / ((tLast - tFirst) / 1000);
  const decodeCpu = DECODE / (cpuSeconds(cLast) - cpuSeconds(cFirst));
  return { engine: `llama-ts (${model.backend.description})`, loadS, prefill, decode, decodeCpu, peakRssMiB: process.resourceUsage().maxRSS / 1024 };
}

async function llamaCpp(file: string): Promise<Result> {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: THREADS });
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const loadS = (performance.now() - t0) / 1000;
  const ctx = await model.createContext({ contextSize: 512, batchSize: 512, threads: { ideal: THREADS, min: THREADS } });
  const seq = ctx.getSequence();
  type Tok = Parameters<typeof seq.evaluateWithoutGeneratingNewTokens>[0][number];
  const toks = promptIds(TINYLLAMA_1_1B.vocab) as unknown as Tok[];
  await seq.evaluateWithoutGeneratingNewTokens(toks.slice(0, 4)); // warm-up
  await seq.clearHistory();
  const p0 = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(toks);
  const prefill = PROMPT / ((performance.now() - p0) / 1000);
  const d0 = performance.now();
  const c0 = process.cpuUsage();
  let n = 0;
  for await (const _ of seq.evaluate([toks[toks.length - 1]!], { temperature: 0 })) if (++n >= DECODE) break;
  const decode = DECODE / ((performance.now() - d0) / 1000);
  const decodeCpu = DECODE / cpuSeconds(process.cpuUsage(c0));
  const r: Result = { engine: "llama.cpp (node-llama-cpp 3.21.1, CPU)", loadS, prefill, decode, decodeCpu, peakRssMiB: process.resourceUsage().maxRSS / 1024 };
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  return r;
}

async function quantizedFile(): Promise<string> {
  const file = path.join(work, `tinyllama-1.1b-random-${TYPE}.gguf`);
  if (fs.existsSync(file)) return file;
  const dir = ensureRandomLlama(path.join(work, "tinyllama-1.1b-random-f16"), TINYLLAMA_1_1B, 1, log);
  const { quantizeModel } = await import("../lib/quant/quantize-model.js");
  log(`quantizing ${dir} → ${file} (${TYPE}; once, minutes)`);
  const t0 = performance.now();
  await quantizeModel(dir, file, { type: TYPE });
  log(`quantized in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return file;
}

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

async function main(): Promise<void> {
  const child = flag("--child", "");
  if (child) {
    const r = child === "ours" ? await ours(flag("--file", "")) : await llamaCpp(flag("--file", ""));
    process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
    return;
  }
  const cpus = os.cpus();
  console.log(`# Quantized GGUF on the CPU — ${cpus[0]?.model ?? "cpu"} (${cpus.length} cores), node ${process.version}, ${os.platform()} ${os.arch()}`);
  console.log(`# command: npm run bench -- quant   (node --import tsx bench/quant-bench.ts ${argv.join(" ")})`.trimEnd());
  console.log(`# load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")} (the cores may be shared)`);
  const file = await quantizedFile();
  const mib = fs.statSync(file).size / 2 ** 20;
  console.log(`# file: TinyLlama-1.1B shape, random weights, ${TYPE.toUpperCase()} (lib/quant), ${mib.toFixed(0)} MiB; prompt ${PROMPT}, greedy decode ${DECODE} tokens, ${THREADS} threads\n`);
  const rows: Result[] = [];
  const engines = ["ours", "ours-int8", ...(argv.includes("--no-llamacpp") ? [] : ["llamacpp"])];
  const self = fileURLToPath(import.meta.url);
  for (const e of engines) {
    log(`${e} …`);
    const r = spawnSync(process.execPath, ["--import", "tsx", self, "--child", e === "ours-int8" ? "ours" : e, "--file", file, ...argv], {
      encoding: "utf8", stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, LLAMA_TS_THREADS: String(THREADS), LLAMA_TS_QUANT_DOT: e === "ours-int8" ? "int8" : "exact" },
    });
    const line = r.stdout.split("\n").find((l) => l.startsWith("RESULT "));
    if (!line) {
      console.log(`${e}: failed (exit ${r.status})\n${r.stdout}`);
      continue;
    }
    rows.push(JSON.parse(line.slice(7)) as Result);
  }
  const table = [["engine", "load s", "prefill tok/s", "decode tok/s", "decode tok/cpu-s", "peak RSS MiB", "RSS − file MiB"],
    ...rows.map((r) => [r.engine, fmt(r.loadS), fmt(r.prefill), fmt(r.decode), fmt(r.decodeCpu), r.peakRssMiB.toFixed(0), (r.peakRssMiB - mib).toFixed(0)])];
  const ref = rows.find((r) => r.engine.startsWith("llama.cpp"));
  for (const r of ref ? rows.filter((x) => x !== ref) : []) {
    table.push([`ratio: ${r.engine.includes("int8") ? "int8" : "exact"} / llama.cpp`, fmt(r.loadS / ref!.loadS), fmt(r.prefill / ref!.prefill),
      fmt(r.decode / ref!.decode), fmt(r.decodeCpu / ref!.decodeCpu), fmt(r.peakRssMiB / ref!.peakRssMiB), ""]);
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const [i, r] of table.entries()) {
    console.log(`| ${r.map((c, j) => c.padEnd(widths[j]!)).join(" | ")} |`);
    if (i === 0) console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  }
  console.log(`\n# load average at end: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
