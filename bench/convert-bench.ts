/**
 * Benchmark: convert a random-weight Meta checkpoint of ~1 GB (float16, 2
 * model-parallel shards, LLaMA-2 layout) with `llama-ts convert`, under
 * `/usr/bin/time -v`, and print wall time and peak RSS next to the size of
 * the largest tensor (the converter streams: its peak memory should track one
 * tensor, not the model).
 *
 *   node --import tsx bench/convert-bench.ts [--size-gb 1] [--shards 2] [--keep]
 *
 * Uses the built CLI (dist/, `npm run build`) when present, else runs the TS
 * source through tsx. The generated checkpoint is cached in the OS temp
 * folder between runs (delete it with --clean).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { writeMetaCheckpoint } from "../lib/convert/hf-to-meta.js";
import { computeIntermediateSize, type MetaParams } from "../lib/convert/params.js";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const sizeGb = Number(flag("--size-gb", "1"));
const shards = Number(flag("--shards", "2"));
const work = path.join(os.tmpdir(), `llama-ts-convert-bench-${sizeGb}gb-${shards}`);
if (args.includes("--clean")) fs.rmSync(work, { recursive: true, force: true });

// A LLaMA-2-shaped model (dim 2048, vocab 32000) with as many layers as fit in sizeGb.
const dim = 2048;
const vocab = 32000;
const inter = computeIntermediateSize(dim, 1, 256);
const perLayer = 4 * dim * dim + 3 * dim * inter + 2 * dim;
const layers = Math.max(1, Math.floor(((sizeGb * 1e9) / 2 - 2 * vocab * dim) / perLayer));
const params: MetaParams = {
  dim, n_layers: layers, n_heads: 16, n_kv_heads: 16, multiple_of: 256, ffn_dim_multiplier: 1,
  norm_eps: 1e-5, vocab_size: vocab, rope_theta: 10000, use_scaled_rope: false,
};
const inputDir = path.join(work, "meta");
const outputDir = path.join(work, "hf");

/** Deterministic small random f16 values per tensor name (xorshift32 seeded by the name). */
function randomF16(name: string, n: number): Uint8Array {
  let s = 2166136261;
  for (let i = 0; i < name.length; i++) s = Math.imul(s ^ name.charCodeAt(i), 16777619) >>> 0;
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    // sign | exponent 9..14 (|x| in [2^-6, 1)) | mantissa
    out[i] = (s & 0x8000) | ((9 + (s >>> 16) % 6) << 10) | (s & 0x3ff);
  }
  return new Uint8Array(out.buffer);
}

const marker = path.join(inputDir, ".complete");
if (!fs.existsSync(marker)) {
  fs.rmSync(inputDir, { recursive: true, force: true });
  const t0 = Date.now();
  process.stderr.write(`generating a random ${layers}-layer checkpoint in ${inputDir} …\n`);
  const shapes = new Map<string, number[]>([["tok_embeddings.weight", [vocab, dim]], ["output.weight", [vocab, dim]], ["norm.weight", [dim]]]);
  for (let i = 0; i < layers; i++) {
    for (const w of ["wq", "wk", "wv", "wo"]) shapes.set(`layers.${i}.attention.${w}.weight`, [dim, dim]);
    shapes.set(`layers.${i}.feed_forward.w1.weight`, [inter, dim]);
    shapes.set(`layers.${i}.feed_forward.w2.weight`, [dim, inter]);
    shapes.set(`layers.${i}.feed_forward.w3.weight`, [inter, dim]);
    shapes.set(`layers.${i}.attention_norm.weight`, [dim]);
    shapes.set(`layers.${i}.ffn_norm.weight`, [dim]);
  }
  writeMetaCheckpoint(inputDir, params, shards, false, (name) => {
    const shape = shapes.get(name);
    return shape && { dtype: "f16", shape, bytes: () => randomF16(name, shape.reduce((a, b) => a * b, 1)) };
  });
  fs.writeFileSync(marker, "");
  process.stderr.write(`generated in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}

const inputBytes = fs.readdirSync(inputDir).filter((f) => f.endsWith(".pth")).reduce((a, f) => a + fs.statSync(path.join(inputDir, f)).size, 0);
const largest = 2 * Math.max(vocab * dim, inter * dim);
fs.rmSync(outputDir, { recursive: true, force: true });
const built = path.join(root, "dist", "cli", "main.js");
const cliArgs = ["convert", "--input_dir", inputDir, "--model_size", "bench", "--output_dir", outputDir, "--llama_version", "2"];
const cmd = fs.existsSync(built)
  ? [process.execPath, path.join(root, "bin", "llama-ts.js"), ...cliArgs]
  : [process.execPath, "--import", "tsx", "-e", `import(${JSON.stringify(path.join(root, "cli", "main.ts"))}).then(async (m) => { process.exitCode = await m.main(${JSON.stringify(cliArgs)}); })`];
if (!fs.existsSync("/usr/bin/time")) throw new Error("/usr/bin/time is missing: install GNU time (Debian package `time`) to measure peak RSS");
const res = spawnSync("/usr/bin/time", ["-v", ...cmd], { encoding: "utf8", cwd: root, maxBuffer: 64 << 20 });
if (res.error) throw res.error;
const timeOut = res.stderr;
const grab = (label: string) => timeOut.split("\n").find((l) => l.trim().startsWith(label))?.split(": ").pop()?.trim() ?? "?";
if (res.status !== 0) {
  process.stderr.write(timeOut);
  throw new Error(`convert failed with exit code ${res.status}`);
}
const wall = grab("Elapsed (wall clock) time");
const rssKb = Number(grab("Maximum resident set size (kbytes)"));
const [m, s] = wall.split(":").map(Number) as [number, number];
const secs = m * 60 + s;
const mb = (b: number) => (b / 1048576).toFixed(0);
const cpu = os.cpus()[0]?.model ?? "?";
console.log(`\n## llama-ts convert: random Meta checkpoint → HF safetensors`);
const shown = fs.existsSync(built) ? "node bin/llama-ts.js" : "node --import tsx cli/main.ts";
console.log(`command: /usr/bin/time -v ${shown} ${cliArgs.join(" ")}   (from: node --import tsx bench/convert-bench.ts ${args.join(" ")})`);
console.log(`machine: ${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, node ${process.version}\n`);
console.log("| model | shards | input | largest tensor | wall time | throughput | peak RSS |");
console.log("|---|---|---|---|---|---|---|");
console.log(`| dim ${dim}, ${layers} layers, vocab ${vocab}, f16 | ${shards} | ${mb(inputBytes)} MiB | ${mb(largest)} MiB | ${secs.toFixed(2)} s | ${(inputBytes / 1048576 / secs).toFixed(0)} MiB/s | ${(rssKb / 1024).toFixed(0)} MiB |`);
if (!args.includes("--keep")) fs.rmSync(outputDir, { recursive: true, force: true });
