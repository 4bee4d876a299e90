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
import { ensureRandomGguf, LLAMA3_8B, SMALL_GGUF, type GgufShape } from "./random-llama.js";

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

const SHAPES: Record<string, GgufShape> = { "llama3-8b": LLAMA3_8B, small: SMALL_GGUF };

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
  const file = ensureRandomGguf(path.join(work, `${SHAPE}-random-q4_0.gguf`), shape, "q4_0", `random ${SHAPE}`, log);
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
