/**
 * Test helper: a GGUF mixing every quantized type (made from a float GGUF with
 * the bit-exact quantizers of lib/quant/) and its dequantized F32 twin (every
 * quantized tensor written as the float32 values its blocks define).
 */
import { exportHfToGguf } from "../lib/io/gguf-export.js";
import { GgufFile } from "../lib/io/gguf.js";
import { writeGguf, type GgufTensorSpec } from "../lib/io/gguf-writer.js";
import { GgmlType } from "../lib/io/gguf-types.js";
import { dequantizeBlocks } from "../lib/io/gguf-dequant.js";
import { quantizeRows, type QuantizedType } from "../lib/quant/quantize.js";
import { QUANT_LAYOUT, QUANT_TYPES, type QuantType } from "../lib/tensor/quantized.js";
import { Tensor } from "../lib/tensor/tensor.js";

const GGML: Record<QuantType, QuantizedType> = {
  q8_0: GgmlType.Q8_0, q4_0: GgmlType.Q4_0, q4_1: GgmlType.Q4_1, q5_0: GgmlType.Q5_0,
  q5_1: GgmlType.Q5_1, q4_k: GgmlType.Q4_K, q5_k: GgmlType.Q5_K, q6_k: GgmlType.Q6_K,
};

/**
 * Writes `mixed` and `twin` from the HF folder `modelDir`. `pick(name, i)` gives
 * the type of the i-th 2-D tensor (undefined: keep F32); a type whose block does
 * not divide the row stays F32. Returns the type each tensor got.
 */
export function makeMixedGguf(
  modelDir: string, work: string, mixed: string, twin: string,
  pick: (name: string, index: number) => QuantType | undefined,
): Map<string, QuantType | "f32"> {
  exportHfToGguf(modelDir, work, { outtype: "f32" });
  const g = GgufFile.open(work);
  const types = new Map<string, QuantType | "f32">();
  try {
    const meta = [...g.metadata];
    const plain: GgufTensorSpec[] = [];
    const quant: GgufTensorSpec[] = [];
    let i = 0;
    for (const name of g.tensorNames()) {
      const info = g.info(name);
      const f = g.read(name).toFloat32();
      const cols = info.shape[info.shape.length - 1]!;
      let type = info.shape.length === 2 ? pick(name, i++) : undefined;
      if (type && cols % QUANT_LAYOUT[type].elems !== 0) type = undefined;
      types.set(name, type ?? "f32");
      if (!type) {
        const t = new Tensor(f.slice(), info.shape, "f32");
        plain.push({ name, shape: info.shape, type: GgmlType.F32, data: () => t });
        quant.push({ name, shape: info.shape, type: GgmlType.F32, data: () => t });
        continue;
      }
      const bytes = quantizeRows(GGML[type], f, cols);
      const deq = new Float32Array(f.length);
      dequantizeBlocks(GGML[type], bytes, deq, f.length / QUANT_LAYOUT[type].elems);
      quant.push({ name, shape: info.shape, type: GGML[type], data: () => bytes });
      plain.push({ name, shape: info.shape, type: GgmlType.F32, data: () => new Tensor(deq, info.shape, "f32") });
    }
    writeGguf(mixed, meta, quant);
    writeGguf(twin, meta, plain);
  } finally {
    g.close();
  }
  return types;
}

/** Rotates through all eight types over the 2-D tensors. */
export const rotateTypes = (_name: string, i: number): QuantType => QUANT_TYPES[i % QUANT_TYPES.length]!;
