/**
 * CPU generation speed, ours vs llama.cpp, in one run (no assertions):
 * prefill tok/s on a 128-token prompt and decode tok/s (one token per step
 * with the KV cache), for
 *   - the embedded default model (models/tiny-stories; llama.cpp gets it as F32 GGUF),
 *   - a random-weight model of TinyLlama-1.1B's shape, f16 (written once to the
 *     temp folder, never into the repo; llama.cpp gets the same weights as F16 GGUF).
 * llama.cpp runs through node-llama-cpp (CPU build, 2 threads).
 *
 *   node --import tsx bench/cpu-bench.ts [--only default|tinyllama] [--no-llamacpp] [--decode N] [--repeat R]
 *
 * Each prefill is timed R times (best kept: the machine is shared, the best run
 * is the least disturbed); decode is one run of N steps after the prompt.
 * "cpu" columns divide by the process CPU time instead of wall time (all
 * threads), which stays meaningful when other processes compete for the cores.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LlamaForCausalLM } from "../lib/model/index.js";
import { generate, SeededRng } from "../lib/generate/index.js";
import { ensureGgufExport, ensureRandomLlama, TINYLLAMA_1_1B } from "./random-llama.js";

const argv = process.argv.slice(2);
const flag = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const only = flag("--only");
const withLlamaCpp = !argv.includes("--no-llamacpp");
const repeat = Number(flag("--repeat") ?? 3);
const PROMPT = 128;
const THREADS = 2;
const work = path.join(os.tmpdir(), "llama-ts-bench");
const log = (m: string) => process.stderr.write(`[cpu-bench] ${m}\n`);

interface Speeds {
  prefill: number;
  prefillCpu: number;
  decode: number;
  decodeCpu: number;
}

const cpuSeconds = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1e6;

/** A fixed prompt: BOS then ids drawn from a seeded RNG (the same for both engines). */
function promptIds(vocab: number): number[] {
  const rng = new SeededRng(2024);
  return [1, ...Array.from({ length: PROMPT - 1 }, () => 3 + Math.floor(rng.nextFloat() * (vocab - 3)))];
}

async function oursOn(dir: string, prompt: number[], decodeN: number): Promise<Speeds> {
  const model = await LlamaForCausalLM.fromPretrained(dir, { device: "cpu" });
  let prefill = Infinity;
  let prefillCpu = Infinity;
  await model.forward({ inputIds: [prompt.slice(0, 8)], logitsToKeep: 1 }); // warm-up (JIT, worker start)
  for (let r = 0; r < repeat; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const out = await model.forward({ inputIds: [prompt], useCache: true, logitsToKeep: 1 });
    const dt = (performance.now() - t0) / 1000;
    prefill = Math.min(prefill, dt);
    prefillCpu = Math.min(prefillCpu, cpuSeconds(process.cpuUsage(c0)));
    (out.pastKeyValues as { release?: () => void } | undefined)?.release?.();
  }
  // Decode: generate() itself, timed between the first streamed token (right after
  // the prefill) and the last: decodeN forward passes of one token each.
  let tFirst = 0;
  let tLast = 0;
  let cFirst = process.cpuUsage();
  let cLast = cFirst;
  let seen = 0;
  await generate(model, {
    inputIds: [prompt],
    maxNewTokens: decodeN + 1,
    eosTokenId: null,
    streamer: () => {
      seen++;
      if (seen === 1) {
        tFirst = performance.now();
        cFirst = process.cpuUsage();
      } else {
        tLast = performance.now();
        cLast = process.cpuUsage();
      }
    },
  });
  const decodeS = (tLast - tFirst) / 1000;
  const decodeCpuS = cpuSeconds(cLast) - cpuSeconds(cFirst);
  // No backend.dispose(): the CPU backend is the process-wide default one (lib/backend/registry.ts),
  // shared with the next model; dropping the model frees its weights.
  return { prefill: PROMPT / prefill, prefillCpu: PROMPT / prefillCpu, decode: decodeN / decodeS, decodeCpu: decodeN / decodeCpuS };
}

async function llamaCppOn(gguf: string, prompt: number[], decodeN: number): Promise<Speeds> {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: THREADS });
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  const ctx = await model.createContext({ contextSize: 512, batchSize: 512, threads: { ideal: THREADS, min: THREADS } });
  const seq = ctx.getSequence();
  type Tok = Parameters<typeof seq.evaluateWithoutGeneratingNewTokens>[0][number];
  const toks = prompt as unknown as Tok[];
  await seq.evaluateWithoutGeneratingNewTokens(toks.slice(0, 8)); // warm-up
  await seq.clearHistory();
  let prefill = Infinity;
  let prefillCpu = Infinity;
  for (let r = 0; r < repeat; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(toks);
    prefill = Math.min(prefill, (performance.now() - t0) / 1000);
    prefillCpu = Math.min(prefillCpu, cpuSeconds(process.cpuUsage(c0)));
    if (r < repeat - 1) await seq.clearHistory();
  }
  // The history now holds the prompt; each yielded token costs one 1-token evaluation.
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  for await (const _ of seq.evaluate([toks[toks.length - 1]!], { temperature: 0 })) {
    if (++n >= decodeN) break;
  }
  const decodeS = (performance.now() - t0) / 1000;
  const decodeCpuS = cpuSeconds(process.cpuUsage(c0));
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  return { prefill: PROMPT / prefill, prefillCpu: PROMPT / prefillCpu, decode: decodeN / decodeS, decodeCpu: decodeN / decodeCpuS };
}

function ggufOf(dir: string, name: string, outtype: "f32" | "f16"): string {
  return ensureGgufExport(dir, path.join(work, `${name}-${outtype}.gguf`), outtype, log);
}

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

async function main(): Promise<void> {
  const cpus = os.cpus();
  console.log(`# CPU generation benchmark — ${cpus[0]?.model ?? "cpu"} (${cpus.length} cores), node ${process.version}, ${os.platform()} ${os.arch()}`);
  console.log(`# command: node --import tsx bench/cpu-bench.ts ${argv.join(" ")}`.trimEnd());
  console.log(`# load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")} (the cores are shared; see the cpu columns)`);
  console.log(`# prompt ${PROMPT} tokens; prefill best of ${repeat}; llama.cpp: node-llama-cpp 3.21.1, CPU build, ${THREADS} threads\n`);

  const models: { key: string; label: string; dir: () => string; gguf: "f32" | "f16"; decode: number }[] = [
    { key: "default", label: "default (tiny-stories, f16 weights)", dir: () => "models/tiny-stories", gguf: "f32", decode: Number(flag("--decode") ?? 128) },
    {
      key: "tinyllama",
      label: "TinyLlama-1.1B shape, random f16",
      dir: () => ensureRandomLlama(path.join(work, "tinyllama-1.1b-random-f16"), TINYLLAMA_1_1B, 1, log),
      gguf: "f16",
      decode: Number(flag("--decode") ?? 24),
    },
  ];
  const rows: string[][] = [];
  for (const m of models) {
    if (only && only !== m.key) continue;
    const dir = m.dir();
    const vocab = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")).vocab_size as number;
    const prompt = promptIds(vocab);
    log(`${m.key}: ours …`);
    const ours = await oursOn(dir, prompt, m.decode);
    rows.push([m.label, "llama-ts (ours)", fmt(ours.prefill), fmt(ours.prefillCpu), fmt(ours.decode), fmt(ours.decodeCpu), "", ""]);
    if (withLlamaCpp) {
      const gguf = ggufOf(dir, m.key, m.gguf);
      log(`${m.key}: llama.cpp …`);
      const ref = await llamaCppOn(gguf, prompt, m.decode);
      rows.push([`  same weights, ${m.gguf.toUpperCase()} GGUF`, "llama.cpp", fmt(ref.prefill), fmt(ref.prefillCpu), fmt(ref.decode), fmt(ref.decodeCpu), "", ""]);
      rows.push([
        "", "ratio ours / llama.cpp",
        (ours.prefill / ref.prefill).toFixed(2), (ours.prefillCpu / ref.prefillCpu).toFixed(2),
        (ours.decode / ref.decode).toFixed(2), (ours.decodeCpu / ref.decodeCpu).toFixed(2), "", "",
      ]);
    }
  }
  const head = ["model", "engine", "prefill tok/s", "prefill tok/cpu-s", "decode tok/s", "decode tok/cpu-s"];
  const table = [head, ...rows.map((r) => r.slice(0, head.length))];
  const widths = head.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
  console.log(line(head));
  console.log(`|${widths.map((w, i) => (i < 2 ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":")).join("|")}|`);
  for (const r of rows) console.log(line(r.slice(0, head.length)));
  console.log(`\n# load average at end: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
}

await main();
