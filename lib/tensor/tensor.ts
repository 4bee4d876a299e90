import { type DType, type StorageArray, bf16ToF32, f16ToF32 } from "./dtype.js";
import { LlamaError } from "../errors.js";

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/**
 * A dense row-major host tensor. Compute happens in float32; `f16`/`bf16`
 * tensors hold 16-bit words (weights as stored on disk) and are widened by
 * the kernels that read them.
 */
export class Tensor {
  readonly shape: readonly number[];
  constructor(
    readonly data: StorageArray,
    shape: readonly number[],
    readonly dtype: DType = data instanceof Float32Array ? "f32" : "f16",
  ) {
    this.shape = Object.freeze([...shape]);
    const n = numel(shape);
    if (n !== data.length) {
      throw new LlamaError(`Tensor: shape [${shape.join(", ")}] needs ${n} elements, data has ${data.length}`);
    }
    if ((dtype === "f32") !== data instanceof Float32Array) {
      throw new LlamaError(`Tensor: dtype ${dtype} does not match a ${data.constructor.name}`);
    }
  }

  static zeros(shape: readonly number[]): Tensor {
    return new Tensor(new Float32Array(numel(shape)), shape, "f32");
  }

  static from(values: ArrayLike<number>, shape: readonly number[] = [values.length]): Tensor {
    return new Tensor(Float32Array.from(values), shape, "f32");
  }

  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** The values as float32: the same array for f32 tensors, a widened copy otherwise. */
  toFloat32(): Float32Array {
    if (this.dtype === "f32") return this.data as Float32Array;
    return this.dtype === "f16" ? f16ToF32(this.data as Uint16Array) : bf16ToF32(this.data as Uint16Array);
  }

  /** A float32 tensor with the same values (this tensor when it already is f32). */
  float(): Tensor {
    return this.dtype === "f32" ? this : new Tensor(this.toFloat32(), this.shape, "f32");
  }

  /** Same data, new shape; one dimension may be -1. */
  reshape(shape: readonly number[]): Tensor {
    const known = shape.filter((d) => d !== -1);
    const infer = shape.length - known.length;
    if (infer > 1) throw new LlamaError(`reshape: at most one -1 in [${shape.join(", ")}]`);
    const rest = numel(known);
    const full = infer ? shape.map((d) => (d === -1 ? this.size / rest : d)) : [...shape];
    if (numel(full) !== this.size || full.some((d) => !Number.isInteger(d))) {
      throw new LlamaError(`reshape: cannot view [${this.shape.join(", ")}] as [${shape.join(", ")}]`);
    }
    return new Tensor(this.data, full, this.dtype);
  }

  /** Element at a multi-index, as float32. */
  get(...index: number[]): number {
    const st = stridesOf(this.shape);
    let off = 0;
    for (let i = 0; i < index.length; i++) off += index[i]! * st[i]!;
    if (this.dtype === "f32") return this.data[off]!;
    return this.dtype === "f16"
      ? f16ToF32(this.data.subarray(off, off + 1) as Uint16Array)[0]!
      : bf16ToF32(this.data.subarray(off, off + 1) as Uint16Array)[0]!;
  }

  /** Nested arrays of numbers (for small tensors: tests, display). */
  toNested(): unknown {
    const f = this.toFloat32();
    const build = (dim: number, off: number): unknown => {
      if (dim === this.shape.length) return f[off];
      const st = numel(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim]! }, (_, i) => build(dim + 1, off + i * st));
    };
    return build(0, 0);
  }
}
