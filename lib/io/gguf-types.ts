/**
 * GGUF constants: metadata value types and ggml tensor types with their
 * block layouts (elements per block, bytes per block), as in ggml's
 * `gguf.h`/`ggml.h` and the GGUF spec.
 */

/** Metadata value types (gguf_type). */
export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** Fixed byte sizes of the scalar value types (STRING and ARRAY are variable). */
export const GGUF_SCALAR_BYTES: Partial<Record<GgufValueType, number>> = {
  [GgufValueType.UINT8]: 1,
  [GgufValueType.INT8]: 1,
  [GgufValueType.UINT16]: 2,
  [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4,
  [GgufValueType.INT32]: 4,
  [GgufValueType.FLOAT32]: 4,
  [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT64]: 8,
  [GgufValueType.INT64]: 8,
  [GgufValueType.FLOAT64]: 8,
};

/** ggml tensor types (ggml_type). */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
}

/** Elements per block and bytes per block of each type whose layout we know. */
export const GGML_BLOCK: Partial<Record<GgmlType, { elems: number; bytes: number }>> = {
  [GgmlType.F32]: { elems: 1, bytes: 4 },
  [GgmlType.F16]: { elems: 1, bytes: 2 },
  [GgmlType.BF16]: { elems: 1, bytes: 2 },
  [GgmlType.F64]: { elems: 1, bytes: 8 },
  [GgmlType.I8]: { elems: 1, bytes: 1 },
  [GgmlType.I16]: { elems: 1, bytes: 2 },
  [GgmlType.I32]: { elems: 1, bytes: 4 },
  [GgmlType.I64]: { elems: 1, bytes: 8 },
  [GgmlType.Q4_0]: { elems: 32, bytes: 18 },
  [GgmlType.Q4_1]: { elems: 32, bytes: 20 },
  [GgmlType.Q5_0]: { elems: 32, bytes: 22 },
  [GgmlType.Q5_1]: { elems: 32, bytes: 24 },
  [GgmlType.Q8_0]: { elems: 32, bytes: 34 },
  [GgmlType.Q8_1]: { elems: 32, bytes: 36 },
  [GgmlType.Q2_K]: { elems: 256, bytes: 84 },
  [GgmlType.Q3_K]: { elems: 256, bytes: 110 },
  [GgmlType.Q4_K]: { elems: 256, bytes: 144 },
  [GgmlType.Q5_K]: { elems: 256, bytes: 176 },
  [GgmlType.Q6_K]: { elems: 256, bytes: 210 },
  [GgmlType.Q8_K]: { elems: 256, bytes: 292 },
};

export function ggmlTypeName(t: number): string {
  return GgmlType[t] ?? `type ${t}`;
}

/** The default and the spec's key for tensor data alignment. */
export const GGUF_DEFAULT_ALIGNMENT = 32;
export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
