/**
 * Meta's original LLaMA checkpoint (`params.json` + `consolidated.NN.pth`
 * model-parallel shards) → an HF folder (config.json, sharded safetensors,
 * tokenizer files), in the manner of HF's `convert_llama_weights_to_hf.py`.
 *
 * Unlike that script, nothing is ever held whole: each HF tensor is assembled
 * from its slices in every shard (read straight into reused buffers),
 * permuted, written, and its buffer reused for the next, so peak memory is
 * about two of the largest tensor whatever the model size (the script needs
 * ~2x the model). Output goes to a staging folder first and is moved into place only
 * when complete, config.json last.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, FormatError } from "../errors.js";
import { writeTextAtomic } from "../io/atomic.js";
import { TorchCheckpoint, type TorchDType } from "../io/pth.js";
import { numel } from "../tensor/tensor.js";
import { IGNORED_META_KEYS, type MergeRule, mergeRules } from "./meta-layout.js";
import { type HfDtypeName, type LlamaVersion, LLAMA_VERSIONS, computeIntermediateSize, metaParamsToHfConfig, readMetaParams } from "./params.js";
import type { OnProgress } from "../progress.js";
import { interleavedToHalfSplit } from "./rotary-permute.js";
import { type PlannedTensor, type StreamDType, planShards, writeShards } from "./safetensors-writer.js";
import { convertTokenizerFiles } from "./tokenizer-files.js";

export interface ConvertOptions {
  inputDir: string;
  /** Accepted for compatibility (7B, 13B, …): also names the older `input_dir/<size>/` layout. */
  modelSize?: string;
  outputDir: string;
  llamaVersion?: LlamaVersion;
  /** Shard size limit for the safetensors output (HF's default: 5 GB). */
  maxShardBytes?: number;
  /**
   * Called as tensors are written: (bytes written, bytes in all, { unit: "bytes", label: tensor name }),
   * from (0, total) to (total, total).
   */
  onProgress?: OnProgress;
  /** Non-fatal notes (ignored keys, tokenizer absent). */
  onWarning?: (message: string) => void;
}

export interface ConvertResult {
  outputDir: string;
  config: Record<string, unknown>;
  files: string[];
  numShards: number;
  bytesWritten: number;
}

const DEFAULT_MAX_SHARD = 5_000_000_000;
const TORCH_TO_STREAM: Partial<Record<TorchDType, { st: StreamDType; hf: HfDtypeName; bytes: number }>> = {
  f16: { st: "F16", hf: "float16", bytes: 2 },
  bf16: { st: "BF16", hf: "bfloat16", bytes: 2 },
  f32: { st: "F32", hf: "float32", bytes: 4 },
};

/** Where params.json and the shards live: `input_dir` or the older `input_dir/<model_size>/`. */
export function resolveCheckpointDir(inputDir: string, modelSize?: string): string {
  if (fs.existsSync(path.join(inputDir, "params.json"))) return inputDir;
  if (modelSize && fs.existsSync(path.join(inputDir, modelSize, "params.json"))) return path.join(inputDir, modelSize);
  throw new FormatError(inputDir, `no params.json here${modelSize ? ` nor in ${path.join(inputDir, modelSize)}` : ""} (expected Meta's checkpoint layout: params.json + consolidated.00.pth …)`);
}

/** The `consolidated.NN.pth` shards in order, checked to be numbered 00..N-1. */
export function findShards(dir: string): string[] {
  const found = fs.readdirSync(dir).filter((f) => /^consolidated\.\d+\.pth$/.test(f));
  if (found.length === 0) throw new FormatError(dir, "no consolidated.*.pth shards found");
  found.sort((a, b) => Number(a.split(".")[1]) - Number(b.split(".")[1]));
  found.forEach((f, i) => {
    if (Number(f.split(".")[1]) !== i) throw new FormatError(path.join(dir, f), `shard numbering has a gap: expected consolidated.${String(i).padStart(2, "0")}.pth`);
  });
  return found.map((f) => path.join(dir, f));
}

export async function convertMetaToHf(opts: ConvertOptions): Promise<ConvertResult> {
  const version: LlamaVersion = opts.llamaVersion ?? "2";
  if (!LLAMA_VERSIONS.includes(version)) throw new ConfigError(`llama_version ${String(version)}: expected one of ${LLAMA_VERSIONS.join(", ")}`);
  const llama3 = version.startsWith("3");
  const dir = resolveCheckpointDir(opts.inputDir, opts.modelSize);
  const params = readMetaParams(path.join(dir, "params.json"));
  const shardFiles = findShards(dir);
  const shards: TorchCheckpoint[] = [];
  const staging = path.join(opts.outputDir, `.llama-ts-convert-${process.pid}-${Date.now()}`);
  try {
    for (const f of shardFiles) shards.push(TorchCheckpoint.open(f));
    const s0 = shards[0]!;
    const hasOutput = s0.has("output.weight");
    const embedParts = shards.map((s) => requireTensor(s, "tok_embeddings.weight").shape);
    const vocabSize = llama3 ? embedParts.reduce((a, s) => a + s[0]!, 0) : embedParts[0]![0]!;
    if (params.vocab_size > 0 && params.vocab_size !== vocabSize) {
      throw new ConfigError(`${path.join(dir, "params.json")}: vocab_size ${params.vocab_size} but tok_embeddings has ${vocabSize} rows`);
    }
    const intermediate = computeIntermediateSize(params.dim, params.ffn_dim_multiplier, params.multiple_of);
    const rules = mergeRules(params, intermediate, vocabSize, hasOutput, llama3);
    const known = new Set(rules.map((r) => r.meta));
    for (const name of s0.names()) {
      if (!known.has(name) && !IGNORED_META_KEYS.has(name)) opts.onWarning?.(`ignoring tensor "${name}" (not part of a LLaMA checkpoint)`);
    }
    const dtypeOf = new Map<string, (typeof TORCH_TO_STREAM)[TorchDType] & object>();
    for (const r of rules) {
      checkSlices(shards, r, params.ffn_dim_multiplier, params.multiple_of);
      const dt = TORCH_TO_STREAM[s0.info(r.meta).dtype];
      if (!dt) throw new FormatError(s0.path, `tensor "${r.meta}": dtype ${s0.info(r.meta).dtype} cannot be written (expected float16, bfloat16 or float32)`);
      dtypeOf.set(r.hf, dt);
    }
    const planned: PlannedTensor[] = rules.map((r) => ({ name: r.hf, dtype: dtypeOf.get(r.hf)!.st, shape: r.shape }));
    const plan = planShards(planned, opts.maxShardBytes ?? DEFAULT_MAX_SHARD);
    const ruleByName = new Map(rules.map((r) => [r.hf, r]));
    const total = planned.reduce((a, t) => a + numel(t.shape) * dtypeOf.get(t.name)!.bytes, 0);

    fs.mkdirSync(staging, { recursive: true });
    let written = 0;
    opts.onProgress?.(0, total, { unit: "bytes" });
    const assembler = new Assembler(shards);
    const index = writeShards(
      staging,
      plan,
      (t) => assembler.assemble(ruleByName.get(t.name)!, dtypeOf.get(t.name)!.bytes),
      (bytes, name) => {
        written = Math.min(total, written + bytes);
        opts.onProgress?.(written, total, { unit: "bytes", label: name });
      },
    );
    if (written < total) opts.onProgress?.(total, total, { unit: "bytes" });
    const config = metaParamsToHfConfig(params, version, { vocabSize, tied: !hasOutput, dtype: dtypeOf.get("model.embed_tokens.weight")!.hf });
    const files = plan.map((s) => s.file);
    if (index) {
      fs.writeFileSync(path.join(staging, "model.safetensors.index.json"), JSON.stringify(index, null, 2) + "\n");
      files.push("model.safetensors.index.json");
    }
    const generation = { _from_model_config: true, bos_token_id: config.bos_token_id, eos_token_id: config.eos_token_id };
    fs.writeFileSync(path.join(staging, "generation_config.json"), JSON.stringify(generation, null, 2) + "\n");
    files.push("generation_config.json");
    files.push(...await convertTokenizerFiles({ searchDirs: [dir, opts.inputDir], outputDir: staging, llama3, llama3Names: version === "3" ? "3.0" : "3.1", maxPositions: config.max_position_embeddings as number, onWarning: opts.onWarning }));
    // Move everything into place; config.json last, so a folder with a config is complete.
    for (const f of files) fs.renameSync(path.join(staging, f), path.join(opts.outputDir, f));
    writeTextAtomic(path.join(opts.outputDir, "config.json"), JSON.stringify(config, null, 2) + "\n");
    files.push("config.json");
    return { outputDir: opts.outputDir, config, files, numShards: plan.length, bytesWritten: written };
  } finally {
    for (const s of shards) s.close();
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

function requireTensor(ck: TorchCheckpoint, name: string): { shape: readonly number[] } {
  if (!ck.has(name)) throw new FormatError(ck.path, `missing tensor "${name}"`);
  return ck.info(name);
}

/** Checks that every shard's slice of a weight has a shape that merges into the expected one. */
function checkSlices(shards: TorchCheckpoint[], r: MergeRule, ffnMult: number, multipleOf: number): void {
  const shapes = shards.map((s) => requireTensor(s, r.meta).shape);
  const dtypes = new Set(shards.map((s) => s.info(r.meta).dtype));
  if (dtypes.size > 1) throw new FormatError(shards[0]!.path, `tensor "${r.meta}" has different dtypes across shards (${[...dtypes].join(", ")})`);
  let merged: number[];
  if (r.concatDim === null || shards.length === 1) {
    merged = [...shapes[0]!];
    if (r.concatDim === null && shapes.some((s) => s.join() !== shapes[0]!.join())) {
      throw new FormatError(shards[0]!.path, `replicated tensor "${r.meta}" differs in shape across shards`);
    }
  } else {
    const d = r.concatDim;
    const other = 1 - d;
    if (shapes.some((s) => s.length !== 2 || s[other] !== shapes[0]![other])) {
      throw new FormatError(shards[0]!.path, `tensor "${r.meta}": shard slices [${shapes.map((s) => s.join("x")).join(", ")}] cannot be joined along dim ${d}`);
    }
    merged = [...shapes[0]!];
    merged[d] = shapes.reduce((a, s) => a + s[d]!, 0);
  }
  if (merged.join() !== r.shape.join()) {
    const hint = r.meta.includes("feed_forward") ? ` (intermediate size from params.json: multiple_of ${multipleOf}, ffn_dim_multiplier ${ffnMult})` : "";
    throw new FormatError(shards[0]!.path, `tensor "${r.meta}" merges to [${merged.join(", ")}] across ${shards.length} shard(s), params.json implies [${r.shape.join(", ")}]${hint}`);
  }
}

/**
 * Assembles each HF weight from its shard slices into buffers reused from
 * tensor to tensor: the output (largest tensor), a pre-permutation copy for
 * q/k, and one slice for joins along dim 1. Peak memory is about two of the
 * largest tensor, whatever the model size, and no garbage piles up between tensors.
 */
class Assembler {
  // Typed as plain Uint8Array: these buffers are replaced by larger ones as tensors grow.
  private out: Uint8Array = new Uint8Array(0);
  private unpermuted: Uint8Array = new Uint8Array(0);
  private slice: Uint8Array = new Uint8Array(0);

  constructor(private readonly shards: TorchCheckpoint[]) {}

  private static grow(buf: Uint8Array, n: number): Uint8Array {
    return buf.length >= n ? buf : new Uint8Array(new ArrayBuffer(n));
  }

  /** The weight's bytes (a view valid until the next call). */
  assemble(r: MergeRule, elemBytes: number): Uint8Array {
    const n = numel(r.shape) * elemBytes;
    this.out = Assembler.grow(this.out, n);
    const out = this.out.subarray(0, n);
    if (r.rotaryHeads === undefined) return this.merge(r, out, elemBytes);
    this.unpermuted = Assembler.grow(this.unpermuted, n);
    const src = this.merge(r, this.unpermuted.subarray(0, n), elemBytes);
    const [rows, cols] = r.shape as [number, number];
    return interleavedToHalfSplit(src, rows, cols * elemBytes, r.rotaryHeads, out);
  }

  /** Reads the slices of every shard straight into `target` (joined along the rule's axis). */
  private merge(r: MergeRule, target: Uint8Array, elemBytes: number): Uint8Array {
    const shards = this.shards;
    if (r.concatDim === null || shards.length === 1) return shards[0]!.readBytesInto(r.meta, target);
    if (r.concatDim === 0) {
      let off = 0;
      for (const s of shards) {
        const len = numel(s.info(r.meta).shape) * elemBytes;
        s.readBytesInto(r.meta, target.subarray(off, off + len));
        off += len;
      }
      return target;
    }
    const rows = r.shape[0]!;
    const outRow = r.shape[1]! * elemBytes;
    let colOff = 0;
    for (const s of shards) {
      const w = s.info(r.meta).shape[1]! * elemBytes;
      this.slice = Assembler.grow(this.slice, rows * w);
      const part = s.readBytesInto(r.meta, this.slice.subarray(0, rows * w));
      for (let i = 0; i < rows; i++) target.set(part.subarray(i * w, (i + 1) * w), i * outRow + colOff);
      colOff += w;
    }
    return target;
  }
}
