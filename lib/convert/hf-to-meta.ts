/**
 * The converter's inverse: an HF LLaMA folder → Meta's layout (params.json +
 * `consolidated.NN.pth` model-parallel shards, q/k rows back in the
 * interleaved rotary layout), each weight split across shards along the axis
 * Meta's fairscale layers use (see meta-layout.ts). It makes multi-shard
 * checkpoints of any shape for tests and benchmarks; `torch.load` reads them.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, FormatError } from "../errors.js";
import { CheckpointReader } from "../io/checkpoint.js";
import { saveTorchStateDict, type TorchTensorSpec } from "../io/pth-writer.js";
import type { TorchDType } from "../io/pth-unpickle.js";
import { type MergeRule, mergeRules } from "./meta-layout.js";
import { type MetaParams, computeIntermediateSize } from "./params.js";
import { halfSplitToInterleaved } from "./rotary-permute.js";

/** A full (unsharded) weight under its Meta name. */
export interface MetaTensorSource {
  readonly dtype: TorchDType;
  readonly shape: readonly number[];
  bytes(): Uint8Array;
}

/**
 * params.json fields that reproduce `intermediate` through Meta's
 * FeedForward rounding (multiple_of, ffn_dim_multiplier), verified.
 */
export function ffnParamsFor(dim: number, intermediate: number): { multiple_of: number; ffn_dim_multiplier?: number } {
  for (const m of [256, 128, 64, 32, 16, 8, 4, 2, 1]) {
    if (computeIntermediateSize(dim, 1, m) === intermediate) return { multiple_of: m };
  }
  const base = Math.floor((8 * dim) / 3);
  let pow2 = 1;
  while (intermediate % (pow2 * 2) === 0 && pow2 < 256) pow2 *= 2;
  for (const mult of [intermediate / base, (intermediate + 0.5) / base]) {
    if (computeIntermediateSize(dim, mult, pow2) === intermediate) return { multiple_of: pow2, ffn_dim_multiplier: mult };
  }
  throw new ConfigError(`intermediate_size ${intermediate} cannot be expressed with Meta's multiple_of/ffn_dim_multiplier for dim ${dim}`);
}

/** Writes params.json and `numShards` consolidated.NN.pth files holding each weight's slices. */
export function writeMetaCheckpoint(
  outDir: string,
  params: MetaParams,
  numShards: number,
  llama3: boolean,
  source: (metaName: string) => MetaTensorSource | undefined,
): string[] {
  const intermediate = computeIntermediateSize(params.dim, params.ffn_dim_multiplier, params.multiple_of);
  const embed = source("tok_embeddings.weight");
  if (!embed) throw new FormatError(outDir, "no tok_embeddings.weight to write");
  const hasOutput = source("output.weight") !== undefined;
  const rules = mergeRules(params, intermediate, embed.shape[0]!, hasOutput, llama3);
  fs.mkdirSync(outDir, { recursive: true });
  const json: Record<string, unknown> = {
    dim: params.dim, n_layers: params.n_layers, n_heads: params.n_heads, n_kv_heads: params.n_kv_heads,
    vocab_size: params.vocab_size, multiple_of: params.multiple_of, norm_eps: params.norm_eps, rope_theta: params.rope_theta,
  };
  if (params.ffn_dim_multiplier !== 1) json.ffn_dim_multiplier = params.ffn_dim_multiplier;
  if (params.use_scaled_rope) json.use_scaled_rope = true;
  fs.writeFileSync(path.join(outDir, "params.json"), JSON.stringify(json));
  const files: string[] = [];
  for (let s = 0; s < numShards; s++) {
    const specs: TorchTensorSpec[] = rules.map((r) => {
      const src = source(r.meta);
      if (!src) throw new FormatError(outDir, `missing weight "${r.meta}"`);
      if (src.shape.join() !== r.shape.join()) throw new FormatError(outDir, `weight "${r.meta}" has shape [${src.shape}], params imply [${r.shape}]`);
      const shape = sliceShape(r, numShards);
      return { name: r.meta, dtype: src.dtype, shape, data: () => sliceOf(r, src, s, numShards) };
    });
    const file = path.join(outDir, `consolidated.${String(s).padStart(2, "0")}.pth`);
    saveTorchStateDict(file, specs, `consolidated.${String(s).padStart(2, "0")}`);
    files.push(file);
  }
  return files;
}

function sliceShape(r: MergeRule, n: number): number[] {
  const shape = [...r.shape];
  if (r.concatDim === null || n === 1) return shape;
  if (shape[r.concatDim]! % n !== 0) throw new ConfigError(`weight "${r.meta}" [${shape}] does not split into ${n} shards along dim ${r.concatDim}`);
  shape[r.concatDim]! /= n;
  return shape;
}

/** Shard `s` of a full weight (after putting q/k rows back in Meta's interleaved order). */
function sliceOf(r: MergeRule, src: MetaTensorSource, s: number, n: number): Uint8Array {
  let full = src.bytes();
  const [rows, cols = 1] = r.shape as [number, number?];
  const rowBytes = full.length / rows;
  if (r.rotaryHeads !== undefined) full = halfSplitToInterleaved(full, rows, rowBytes, r.rotaryHeads);
  if (r.concatDim === null || n === 1) return full;
  if (r.concatDim === 0) return full.slice((s * full.length) / n, ((s + 1) * full.length) / n);
  const colBytes = rowBytes / cols;
  const w = (cols / n) * colBytes;
  const out = new Uint8Array(rows * w);
  for (let i = 0; i < rows; i++) out.set(full.subarray(i * rowBytes + s * w, i * rowBytes + (s + 1) * w), i * w);
  return out;
}

const HF_TO_TORCH: Record<string, TorchDType> = { F32: "f32", F16: "f16", BF16: "bf16" };

/** An HF folder (config.json + safetensors) → Meta's checkpoint layout with `numShards` shards. */
export function convertHfToMeta(hfDir: string, outDir: string, numShards: number, llama3: boolean): string[] {
  const cfg = JSON.parse(fs.readFileSync(path.join(hfDir, "config.json"), "utf8")) as Record<string, number | null | undefined | object>;
  const num = (k: string) => {
    const v = cfg[k];
    if (typeof v !== "number") throw new ConfigError(`${hfDir}/config.json: ${k} must be a number`);
    return v;
  };
  const dim = num("hidden_size");
  const heads = num("num_attention_heads");
  if (typeof cfg.head_dim === "number" && cfg.head_dim * heads !== dim) throw new ConfigError(`${hfDir}: head_dim × heads != hidden_size has no Meta equivalent`);
  const ffn = ffnParamsFor(dim, num("intermediate_size"));
  const ropeParams = (cfg.rope_parameters ?? {}) as Record<string, unknown>;
  const params: MetaParams = {
    dim, n_layers: num("num_hidden_layers"), n_heads: heads, n_kv_heads: (cfg.num_key_value_heads as number | undefined) ?? heads,
    multiple_of: ffn.multiple_of, ffn_dim_multiplier: ffn.ffn_dim_multiplier ?? 1, norm_eps: num("rms_norm_eps"),
    vocab_size: num("vocab_size"), rope_theta: Number(cfg.rope_theta ?? ropeParams.rope_theta ?? 10000), use_scaled_rope: false,
  };
  const reader = CheckpointReader.open(hfDir);
  try {
    const byMeta = new Map<string, string>();
    const intermediate = computeIntermediateSize(dim, params.ffn_dim_multiplier, params.multiple_of);
    for (const r of mergeRules(params, intermediate, params.vocab_size, true, llama3)) byMeta.set(r.meta, r.hf);
    return writeMetaCheckpoint(outDir, params, numShards, llama3, (meta) => {
      const hf = byMeta.get(meta);
      if (!hf || !reader.has(hf)) return undefined;
      const info = reader.info(hf);
      const dtype = HF_TO_TORCH[info.dtype];
      if (!dtype) throw new FormatError(info.file, `tensor "${hf}": dtype ${info.dtype} (expected F32, F16 or BF16)`);
      return {
        dtype,
        shape: info.shape,
        bytes: () => {
          const t = reader.read(hf);
          return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
        },
      };
    });
  } finally {
    reader.close();
  }
}
