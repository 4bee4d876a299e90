/**
 * `quantizeModel`: an F32/F16/BF16 LLaMA model (HF folder or GGUF file) →
 * a quantized GGUF, the way llama.cpp makes one: an HF folder is first
 * written as a GGUF the way convert_hf_to_gguf.py lays it out (exportHfToGguf,
 * F16 when every weight is f16, else F32; a temp file next to the output),
 * then each tensor is quantized as `llama-quantize` does (types from mix.ts,
 * bytes from quantize.ts). Tensors stream in slabs of rows: the model is
 * never in memory, and no tensor is ever whole in float32. The output
 * appears atomically; on any error nothing is left behind.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, FormatError } from "../errors.js";
import type { OnProgress } from "../progress.js";
import { bf16ToF32, f16ToF32 } from "../tensor/dtype.js";
import { numel } from "../tensor/tensor.js";
import { CheckpointReader, resolveModelPath } from "../io/checkpoint.js";
import { GgufFile, type GgufEntry, type GgufTensorInfo } from "../io/gguf.js";
import { exportHfToGguf } from "../io/gguf-export.js";
import { GgmlType, ggmlTypeName } from "../io/gguf-types.js";
import { type GgufTensorSpecAsync, gguf, writeGgufAsync } from "../io/gguf-writer.js";
import { readExact } from "../io/zip.js";
import { PRESETS, QUANT_PRESETS, type QuantPreset, isQuantPreset, planQuantization } from "./mix.js";
import { type QuantOutputType, quantizeRows, typeBytes } from "./quantize.js";
import { QuantizePool } from "./quantize-pool.js";

export interface QuantizeModelOptions {
  /** One of QUANT_PRESETS (case-insensitive). */
  type: string;
  /** Called as tensors are written (unit "tensors", label = tensor name). */
  onProgress?: OnProgress;
  /** Float32 values per slab of rows (default 4M, 16 MiB). */
  slabElements?: number;
  /** Quantizing threads (default: the cores, at most 8; from the built package only, see quantize-pool.ts). */
  threads?: number;
}

/** What happened to one tensor. */
export interface QuantizedTensor {
  readonly name: string;
  /** ggml dims (ne[0] = row length). */
  readonly ne: readonly number[];
  readonly from: GgmlType;
  readonly to: GgmlType;
  /** Set when the row length ruled out the type the rules asked for. */
  readonly fellBackFrom?: GgmlType;
  readonly bytes: number;
}

export interface QuantizeReport {
  readonly preset: QuantPreset;
  readonly file: string;
  readonly tensors: QuantizedTensor[];
}

/** Quantizes the model at `input` (HF folder, `.gguf` file, package model name or hub id) into `outFile`. */
export async function quantizeModel(input: string, outFile: string, opts: QuantizeModelOptions): Promise<QuantizeReport> {
  const preset = opts.type.toLowerCase();
  if (!isQuantPreset(preset)) throw new ConfigError(`quantize type "${opts.type}": expected one of ${QUANT_PRESETS.join(", ")}`);
  const src = resolveModelPath(input);
  if (fs.statSync(src).isFile()) return await quantizeGguf(src, outFile, preset, opts);
  // HF folder: the GGUF llama.cpp's converter would write, then llama-quantize's pass over it.
  const tmp = path.join(path.dirname(path.resolve(outFile)), `.${path.basename(outFile)}.${process.pid}.src.gguf`);
  try {
    const { f16, count } = checkpointSummary(src);
    let done = 0;
    opts.onProgress?.(0, count, { unit: "tensors", label: "converting" });
    exportHfToGguf(src, tmp, {
      outtype: f16 ? "f16" : "f32",
      onTensor: (name) => opts.onProgress?.(++done, Math.max(done, count), { unit: "tensors", label: `converting ${name}` }),
    });
    return await quantizeGguf(tmp, outFile, preset, opts);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Whether every 2-D weight of the folder is f16 (then the F16 GGUF is lossless), and how many tensors it has. */
function checkpointSummary(dir: string): { f16: boolean; count: number } {
  const r = CheckpointReader.open(dir);
  try {
    return { f16: r.names().every((n) => r.info(n).shape.length < 2 || r.info(n).dtype === "F16"), count: r.names().length };
  } finally {
    r.close();
  }
}

const FLOAT_SOURCES = new Set([GgmlType.F32, GgmlType.F16, GgmlType.BF16]);

async function quantizeGguf(file: string, outFile: string, preset: QuantPreset, opts: QuantizeModelOptions): Promise<QuantizeReport> {
  const g = GgufFile.open(file);
  const fd = fs.openSync(file, "r");
  try {
    const arch = g.string("general.architecture");
    const infos = g.tensorNames().map((n) => g.info(n));
    const plans = planQuantization(infos, preset, {
      nLayer: g.number(`${arch}.block_count`),
      nHead: g.number(`${arch}.attention.head_count`),
      nHeadKv: g.number(`${arch}.attention.head_count_kv`, g.number(`${arch}.attention.head_count`)),
    });
    for (const p of plans) {
      const info = g.info(p.name);
      if (p.type !== "keep" && !FLOAT_SOURCES.has(info.type)) {
        throw new FormatError(file, `tensor "${p.name}" is ${ggmlTypeName(info.type)}: quantizing needs an F32, F16 or BF16 model (requantizing is not supported)`);
      }
    }
    const slab = opts.slabElements ?? 1 << 22;
    const pool = QuantizePool.create(opts.threads);
    const tensors: QuantizedTensor[] = plans.map((p) => {
      const info = g.info(p.name);
      const to = p.type === "keep" ? info.type : p.type;
      const bytes = p.type === "keep" ? info.byteSize : typeBytes(p.type, numel(info.shape));
      return { name: p.name, ne: info.ne, from: info.type, to, fellBackFrom: p.fellBackFrom, bytes };
    });
    const specs: GgufTensorSpecAsync[] = plans.map((p) => {
      const info = g.info(p.name);
      return {
        name: p.name,
        shape: info.shape,
        type: p.type === "keep" ? info.type : p.type,
        data: () =>
          p.type === "keep"
            ? readExact(file, fd, g.fileSize, info.offset, info.byteSize, `tensor "${p.name}"`)
            : quantizedSlabs(file, fd, g.fileSize, info, p.type, slab, pool),
      };
    });
    let done = 0;
    opts.onProgress?.(0, specs.length, { unit: "tensors" });
    try {
      await writeGgufAsync(outFile, quantizedMetadata(g, preset), specs, {
        alignment: g.alignment,
        onTensor: (name) => opts.onProgress?.(++done, specs.length, { unit: "tensors", label: name }),
      });
    } finally {
      await pool?.close();
    }
    return { preset, file: outFile, tensors };
  } finally {
    fs.closeSync(fd);
    g.close();
  }
}

/** The tensor's rows, read `slab` values at a time, as float32, quantized to `to`. */
async function* quantizedSlabs(
  file: string, fd: number, fileSize: number, info: GgufTensorInfo, to: QuantOutputType, slab: number, pool: QuantizePool | undefined,
): AsyncGenerator<Uint8Array> {
  const rowLen = info.ne[0]!;
  const rows = numel(info.shape) / rowLen;
  const rowBytes = rowLen * (info.type === GgmlType.F32 ? 4 : 2);
  const step = Math.max(1, Math.floor(slab / rowLen));
  for (let r = 0; r < rows; r += step) {
    const n = Math.min(step, rows - r);
    const raw = readExact(file, fd, fileSize, info.offset + r * rowBytes, n * rowBytes, `tensor "${info.name}"`);
    const rowsF32 = toFloat32(raw, info.type);
    yield pool ? await pool.quantize(to, rowsF32, rowLen) : quantizeRows(to, rowsF32, rowLen);
  }
}

function toFloat32(raw: Uint8Array, type: GgmlType): Float32Array {
  const bytes = raw.byteOffset % 4 === 0 ? raw : raw.slice();
  if (type === GgmlType.F32) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const u16 = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  return type === GgmlType.F16 ? f16ToF32(u16) : bf16ToF32(u16);
}

/** The source's metadata with llama-quantize's two changes: general.quantization_version 2 and general.file_type. */
function quantizedMetadata(g: GgufFile, preset: QuantPreset): [string, GgufEntry][] {
  const meta: [string, GgufEntry][] = [...g.metadata].filter(([k]) => k !== "general.quantization_version" && k !== "general.file_type");
  meta.push(["general.quantization_version", gguf.u32(2)], ["general.file_type", gguf.u32(PRESETS[preset].fileType)]);
  return meta;
}

/** "blk.0.ffn_down.weight [688 × 256]: Q4_K needs rows of 256 → F16" for each tensor that fell back. */
export function describeFallbacks(report: QuantizeReport): string[] {
  return report.tensors
    .filter((t) => t.fellBackFrom !== undefined)
    .map((t) => `${t.name} (row length ${t.ne[0]}): ${ggmlTypeName(t.fellBackFrom!)} needs rows that are a multiple of its block → ${ggmlTypeName(t.to)}`);
}
