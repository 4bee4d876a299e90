/**
 * Loading and saving HF model folders: config.json + generation_config.json +
 * safetensors weights. Loading checks every tensor's presence, dtype and shape
 * against the config before use; saving writes each file atomically.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError, LlamaError } from "../errors.js";
import { LlamaConfig } from "../config.js";
import { getBackend } from "../backend/registry.js";
import type { Backend, Device } from "../backend/backend.js";
import { CheckpointReader, SAFETENSORS_FILE, resolveModelDir } from "../io/checkpoint.js";
import { saveSafetensors } from "../io/safetensors.js";
import { writeTextAtomic } from "../io/atomic.js";
import { Tensor } from "../tensor/tensor.js";
import { QuantizedTensor, dequantizeRows } from "../tensor/quantized.js";
import { f32ToBf16, f32ToF16 } from "../tensor/dtype.js";
import type { ParameterRef, WeightLoader } from "./modules.js";
import { isGgufPath, openGgufCheckpoint } from "../io/gguf-pretrained.js";
import type { OnProgress } from "../progress.js";
import type { QuantPreset } from "../quant/mix.js";
import { type LoadQuantization, planLoadQuantization, quantizeForLoad, quantizePreset } from "../quant/quantize-at-load.js";
import { ggmlTypeName } from "../io/gguf-types.js";
import { type ByteAlloc, freshBytes } from "../io/byte-alloc.js";

export interface FromPretrainedOptions {
  device?: Device;
  /** Use this backend instead of the shared one for `device`. */
  backend?: Backend;
  /**
   * Called as weights load: (bytes done, bytes total, { unit: "bytes", label: tensor name }),
   * from (0, total) to (total, total), never going back.
   */
  onProgress?: OnProgress;
  /**
   * Quantize the f32/f16/bf16 matrices while loading (lib/quant/quantize-at-load.ts):
   * the same types, fallbacks and bytes as `llama-ts quantize --type T` and
   * loading that GGUF. Case-insensitive; anything else is a ConfigError listing the types.
   */
  quantize?: QuantPreset;
}

/** Parsed generation_config.json (HF GenerationConfig fields, snake_case); {} when absent. */
export type GenerationConfig = Record<string, unknown>;

export interface OpenedCheckpoint {
  dir: string;
  config: LlamaConfig;
  generationConfig: GenerationConfig;
  backend: Backend;
  /** A safetensors folder, or a .gguf file read as one (lib/io/gguf-hf.ts). */
  reader: Pick<CheckpointReader, "names" | "has" | "info" | "read" | "bytes" | "close"> & {
    /** Quantized GGUF matrices as stored (lib/tensor/quantized.ts), for a backend with uploadQuantized. */
    readStored?(name: string, alloc?: ByteAlloc): Tensor | QuantizedTensor;
  };
  /** The per-tensor types when loading with `quantize`. */
  quantization?: LoadQuantization;
}

/** Reads a JSON file of the model folder, naming the file on failure; undefined when it does not exist. */
export function readJsonFile(file: string): unknown {
  if (!fs.existsSync(file)) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new FormatError(file, `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FormatError(file, `malformed JSON (${(err as Error).message})`);
  }
}

/** Resolves the folder and reads config, generation config and the weight index (no weights yet). */
export async function openPretrained(pathOrHubId: string, opts: FromPretrainedOptions = {}): Promise<OpenedCheckpoint> {
  const preset = opts.quantize === undefined ? undefined : quantizePreset(opts.quantize);
  const ck = isGgufPath(pathOrHubId) ? await openGgufCheckpoint(pathOrHubId, opts) : await openFolder(pathOrHubId, opts);
  if (preset === undefined) return ck;
  try {
    const { reader } = ck;
    return { ...ck, quantization: planLoadQuantization(reader.names(), (n) => reader.info(n), ck.config, preset, ck.dir) };
  } catch (err) {
    ck.reader.close();
    throw err;
  }
}

async function openFolder(pathOrHubId: string, opts: FromPretrainedOptions): Promise<OpenedCheckpoint> {
  const dir = resolveModelDir(pathOrHubId);
  const configFile = path.join(dir, "config.json");
  if (!fs.existsSync(configFile)) throw new FormatError(dir, "no config.json in the model folder");
  const config = LlamaConfig.fromFile(configFile);
  const genFile = path.join(dir, "generation_config.json");
  const gen = readJsonFile(genFile);
  if (gen !== undefined && (typeof gen !== "object" || gen === null || Array.isArray(gen))) {
    throw new FormatError(genFile, "expected a JSON object");
  }
  const reader = CheckpointReader.open(dir);
  try {
    const backend = opts.backend ?? (await getBackend(opts.device ?? "cpu"));
    return { dir, config, generationConfig: (gen as GenerationConfig | undefined) ?? {}, backend, reader };
  } catch (err) {
    reader.close();
    throw err;
  }
}

/**
 * The body of every fromPretrained: opens the checkpoint, builds the model
 * with `build` over a checkpointLoader, copies the generation config, and
 * closes the reader whether or not building succeeded.
 */
export async function buildFromCheckpoint<M extends { generationConfig: GenerationConfig }>(
  pathOrHubId: string,
  opts: FromPretrainedOptions,
  build: (config: LlamaConfig, backend: Backend, load: WeightLoader) => M,
): Promise<M> {
  const ck = await openPretrained(pathOrHubId, opts);
  try {
    const load = checkpointLoader(ck, opts.onProgress);
    const m = build(ck.config, ck.backend, load);
    load.finish();
    m.generationConfig = ck.generationConfig;
    return m;
  } finally {
    ck.reader.close();
  }
}

const WEIGHT_DTYPES = new Set(["F32", "F16", "BF16"]);

/**
 * A WeightLoader over a checkpoint: finds `name` (or the same name without the
 * leading "model." — a base-model checkpoint), checks dtype and shape, uploads.
 * Progress counts the bytes of every tensor in the files; `finish()` reports
 * the end (a checkpoint may hold tensors the model never asks for).
 */
export function checkpointLoader(ck: OpenedCheckpoint, onProgress?: OnProgress): WeightLoader & { finish(): void } {
  const { reader, backend, config } = ck;
  const total = reader.bytes(reader.names());
  let done = 0;
  // Weights are read straight into the backend's memory where it offers room (no second copy).
  const alloc: ByteAlloc | undefined = backend.hostBytes ? (n) => backend.hostBytes!(n) ?? freshBytes(n) : undefined;
  onProgress?.(0, total, { unit: "bytes" });
  const load: WeightLoader = (name, shape) => {
    const candidates = name.startsWith("model.") ? [name, name.slice(6)] : [name, `model.${name}`];
    const found = candidates.find((n) => reader.has(n));
    if (!found) {
      throw new FormatError(ck.dir, `missing tensor "${name}" (expected shape [${shape.join(", ")}] for this config)`);
    }
    const info = reader.info(found);
    if (!WEIGHT_DTYPES.has(info.dtype)) {
      throw new FormatError(info.file, `tensor "${found}" has dtype ${info.dtype}; expected F32, F16 or BF16`);
    }
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new FormatError(
        info.file,
        `tensor "${found}" has shape [${info.shape.join(", ")}], expected [${shape.join(", ")}] for config ` +
          `(hidden_size ${config.hidden_size}, intermediate_size ${config.intermediate_size}, vocab_size ${config.vocab_size}, ` +
          `heads ${config.num_attention_heads}/${config.num_key_value_heads}, head_dim ${config.head_dim})`,
      );
    }
    const plan = ck.quantization?.plan(found);
    let stored: Tensor | QuantizedTensor;
    if (plan) {
      // Quantize at load: the float tensor (HF row order) into the plan's type.
      stored = quantizeForLoad(reader.read(found), plan.type, found);
    } else {
      // Quantized matrices of a GGUF stay in their blocks on a backend with kernels for them.
      stored = backend.uploadQuantized && reader.readStored ? reader.readStored(found, alloc) : reader.read(found, alloc);
    }
    const t = stored instanceof QuantizedTensor
      ? backend.uploadQuantized ? backend.uploadQuantized(stored) : backend.upload(dequantized(stored))
      : backend.upload(stored);
    done = Math.min(total, done + info.end - info.begin);
    const label = plan && plan.type !== "keep" ? `${found} → ${ggmlTypeName(plan.type)}` : found;
    onProgress?.(done, total, { unit: "bytes", label });
    return t;
  };
  return Object.assign(load, {
    finish() {
      if (done < total) onProgress?.((done = total), total, { unit: "bytes" });
    },
  });
}

/** A quantized matrix as float32, for a backend without quantized kernels (the values its blocks define). */
function dequantized(q: QuantizedTensor): Tensor {
  return new Tensor(dequantizeRows(q.type, q.data, q.cols, 0, q.rows, new Float32Array(q.size)), q.shape, "f32");
}

/** The host tensor of a parameter in its storage dtype (f16 stays f16). */
async function hostParameter(be: Backend, ref: ParameterRef): Promise<Tensor> {
  const dt = ref.get();
  const host = await be.read(dt);
  if (dt.dtype === "f32") return host;
  const f = host.toFloat32();
  return new Tensor(dt.dtype === "f16" ? f32ToF16(f) : f32ToBf16(f), host.shape, dt.dtype);
}

/**
 * Writes an HF folder: config.json, generation_config.json and
 * model.safetensors (each atomically). Parameters are saved under their
 * checkpoint names, in their storage dtype.
 */
export async function savePretrainedFolder(
  dir: string, config: LlamaConfig, generationConfig: GenerationConfig, be: Backend, params: readonly ParameterRef[],
): Promise<void> {
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) throw new LlamaError(`savePretrained: ${dir} exists and is not a folder`);
  fs.mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, Tensor>();
  const dtypes = new Set<string>();
  for (const ref of params) {
    const t = await hostParameter(be, ref);
    tensors.set(ref.name, t);
    dtypes.add(t.dtype);
  }
  const cfg = config.toJSON();
  const dtypeName = { f32: "float32", f16: "float16", bf16: "bfloat16" } as const;
  if (dtypes.size === 1) cfg.dtype = dtypeName[[...dtypes][0] as keyof typeof dtypeName];
  const gen = Object.keys(generationConfig).length
    ? generationConfig
    : { bos_token_id: config.bos_token_id, eos_token_id: config.eos_token_id, pad_token_id: config.pad_token_id };
  saveSafetensors(path.join(dir, SAFETENSORS_FILE), tensors, { metadata: { format: "pt" } });
  writeTextAtomic(path.join(dir, "config.json"), JSON.stringify(cfg, null, 2) + "\n");
  writeTextAtomic(path.join(dir, "generation_config.json"), JSON.stringify(gen, null, 2) + "\n");
}
