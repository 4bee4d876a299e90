/**
 * GGUF v3 writer for F32/F16/BF16 tensors, and for tensors of any ggml type
 * given as their raw bytes (quantized blocks). The header (metadata in the given
 * order, tensor infos) is written first, then each tensor's data, each
 * padded to the alignment; tensors are produced one at a time, so a model is
 * never held whole. The file appears atomically (temp file + rename).
 */
import { LlamaError } from "../errors.js";
import { f32ToBf16, f32ToF16 } from "../tensor/dtype.js";
import { type Tensor, numel } from "../tensor/tensor.js";
import { writeAll, writeFileAtomic, writeFileAtomicAsync } from "./atomic.js";
import type { GgufEntry, GgufValue } from "./gguf.js";
import { GGML_BLOCK, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GgmlType, GgufValueType, ggmlTypeName } from "./gguf-types.js";

export type GgufWritableType = GgmlType.F32 | GgmlType.F16 | GgmlType.BF16;

export interface GgufTensorSpec {
  readonly name: string;
  /** Row-major shape (torch order); written as ggml `ne` (reversed). */
  readonly shape: readonly number[];
  /** F32/F16/BF16 for a Tensor; any ggml type when `data` gives the raw bytes. */
  readonly type: GgufWritableType | GgmlType;
  /**
   * Produces the tensor, or its bytes in `type`'s encoding (whole, or as
   * consecutive chunks), when its data is written (called once, in order).
   */
  readonly data: () => Tensor | Uint8Array | Iterable<Uint8Array>;
}

export interface GgufWriteOptions {
  alignment?: number;
  /** Called after each tensor's data is written. */
  onTensor?: (name: string, bytes: number) => void;
}

/** Typed metadata values for the writer (GGUF needs the type, JS numbers do not carry one). */
export const gguf = {
  u8: (v: number): GgufEntry => ({ type: GgufValueType.UINT8, value: v }),
  i8: (v: number): GgufEntry => ({ type: GgufValueType.INT8, value: v }),
  u16: (v: number): GgufEntry => ({ type: GgufValueType.UINT16, value: v }),
  i16: (v: number): GgufEntry => ({ type: GgufValueType.INT16, value: v }),
  u32: (v: number): GgufEntry => ({ type: GgufValueType.UINT32, value: v }),
  i32: (v: number): GgufEntry => ({ type: GgufValueType.INT32, value: v }),
  f32: (v: number): GgufEntry => ({ type: GgufValueType.FLOAT32, value: v }),
  f64: (v: number): GgufEntry => ({ type: GgufValueType.FLOAT64, value: v }),
  u64: (v: number | bigint): GgufEntry => ({ type: GgufValueType.UINT64, value: v }),
  i64: (v: number | bigint): GgufEntry => ({ type: GgufValueType.INT64, value: v }),
  bool: (v: boolean): GgufEntry => ({ type: GgufValueType.BOOL, value: v }),
  str: (v: string): GgufEntry => ({ type: GgufValueType.STRING, value: v }),
  arr: (itemType: GgufValueType, items: GgufValue[]): GgufEntry => ({ type: GgufValueType.ARRAY, value: { itemType, items } }),
};

/** Bytes of a tensor of `shape` in ggml type `type` (whole blocks per row). */
function plannedBytes(spec: { name: string; shape: readonly number[]; type: GgmlType }): number {
  const block = GGML_BLOCK[spec.type];
  const n = numel(spec.shape);
  const row = spec.shape[spec.shape.length - 1] ?? 1;
  if (!block || row % block.elems !== 0) {
    throw new LlamaError(`GGUF writer: tensor "${spec.name}" [${spec.shape.join(", ")}] cannot be stored as ${ggmlTypeName(spec.type)}`);
  }
  return (n / block.elems) * block.bytes;
}

/** A growable little-endian byte buffer for the header. */
class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private grow(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number) { this.grow(1); this.view.setUint8(this.length, v); this.length += 1; }
  i8(v: number) { this.grow(1); this.view.setInt8(this.length, v); this.length += 1; }
  u16(v: number) { this.grow(2); this.view.setUint16(this.length, v, true); this.length += 2; }
  i16(v: number) { this.grow(2); this.view.setInt16(this.length, v, true); this.length += 2; }
  u32(v: number) { this.grow(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number) { this.grow(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number) { this.grow(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  f64(v: number) { this.grow(8); this.view.setFloat64(this.length, v, true); this.length += 8; }
  u64(v: number | bigint) { this.grow(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  i64(v: number | bigint) { this.grow(8); this.view.setBigInt64(this.length, BigInt(v), true); this.length += 8; }
  bytes(b: Uint8Array) { this.grow(b.length); this.buf.set(b, this.length); this.length += b.length; }
  str(s: string) { const b = Buffer.from(s, "utf8"); this.u64(b.length); this.bytes(b); }
  pad(alignment: number) { const n = (alignment - (this.length % alignment)) % alignment; this.bytes(new Uint8Array(n)); }
  result(): Uint8Array { return this.buf.subarray(0, this.length); }
}

function writeValue(s: ByteSink, type: GgufValueType, v: GgufValue, key: string): void {
  const bad = (): never => { throw new LlamaError(`GGUF writer: metadata "${key}": value ${String(v)} does not fit type ${GgufValueType[type]}`); };
  const num = (): number => (typeof v === "number" ? v : bad());
  switch (type) {
    case GgufValueType.UINT8: s.u8(num()); break;
    case GgufValueType.INT8: s.i8(num()); break;
    case GgufValueType.UINT16: s.u16(num()); break;
    case GgufValueType.INT16: s.i16(num()); break;
    case GgufValueType.UINT32: s.u32(num()); break;
    case GgufValueType.INT32: s.i32(num()); break;
    case GgufValueType.FLOAT32: s.f32(num()); break;
    case GgufValueType.FLOAT64: s.f64(num()); break;
    case GgufValueType.UINT64: s.u64(typeof v === "bigint" ? v : num()); break;
    case GgufValueType.INT64: s.i64(typeof v === "bigint" ? v : num()); break;
    case GgufValueType.BOOL: s.u8(typeof v === "boolean" ? (v ? 1 : 0) : bad()); break;
    case GgufValueType.STRING: s.str(typeof v === "string" ? v : bad()); break;
    case GgufValueType.ARRAY: {
      if (typeof v !== "object") bad();
      const arr = v as { itemType: GgufValueType; items: GgufValue[] };
      s.u32(arr.itemType);
      s.u64(arr.items.length);
      for (const it of arr.items) writeValue(s, arr.itemType, it, key);
      break;
    }
    default: bad();
  }
}

function tensorBytes(t: Tensor, type: GgufWritableType): Uint8Array {
  let data = t.data;
  const want = type === GgmlType.F32 ? "f32" : type === GgmlType.F16 ? "f16" : "bf16";
  if (t.dtype !== want) {
    const f = t.toFloat32();
    data = want === "f32" ? f : want === "f16" ? f32ToF16(f) : f32ToBf16(f);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** The header bytes (metadata, tensor infos, padding) and each tensor's planned data size. */
function encodeHeader(
  metadata: Iterable<readonly [string, GgufEntry]>,
  tensors: readonly { name: string; shape: readonly number[]; type: GgmlType }[],
  alignment: number,
): { header: Uint8Array; sizes: number[] } {
  const meta = [...metadata];
  if (alignment !== GGUF_DEFAULT_ALIGNMENT && !meta.some(([k]) => k === "general.alignment")) meta.push(["general.alignment", gguf.u32(alignment)]);
  const s = new ByteSink();
  s.u32(GGUF_MAGIC);
  s.u32(3);
  s.u64(tensors.length);
  s.u64(meta.length);
  for (const [key, entry] of meta) {
    s.str(key);
    s.u32(entry.type);
    writeValue(s, entry.type, entry.value, key);
  }
  let offset = 0;
  const sizes: number[] = [];
  for (const t of tensors) {
    s.str(t.name);
    s.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) s.u64(t.shape[d]!);
    s.u32(t.type);
    s.u64(offset);
    const size = plannedBytes(t);
    sizes.push(size);
    offset += Math.ceil(size / alignment) * alignment;
  }
  s.pad(alignment);
  return { header: s.result(), sizes };
}

/** Counts a tensor's bytes as they are written; a wrong total is an error naming the tensor. */
class SizeCheck {
  written = 0;
  constructor(private readonly spec: { name: string; shape: readonly number[]; type: GgmlType }, readonly size: number) {}
  private fail(got: string): never {
    const { name, type, shape } = this.spec;
    throw new LlamaError(`GGUF writer: tensor "${name}" has ${got} bytes, ${ggmlTypeName(type)} [${shape.join(", ")}] needs ${this.size}`);
  }
  add(chunk: Uint8Array): Uint8Array {
    this.written += chunk.length;
    if (this.written > this.size) this.fail(`more than ${this.size}`);
    return chunk;
  }
  /** The zero bytes that pad the tensor to the alignment. */
  end(alignment: number): Uint8Array {
    if (this.written !== this.size) this.fail(String(this.written));
    return new Uint8Array((alignment - (this.size % alignment)) % alignment);
  }
}

/** A Tensor's bytes in the spec's type (F32/F16/BF16 only). */
function tensorData(spec: GgufTensorSpec, t: Tensor): Uint8Array {
  if (t.shape.join() !== spec.shape.join()) {
    throw new LlamaError(`GGUF writer: tensor "${spec.name}" has shape [${t.shape.join(", ")}], planned [${spec.shape.join(", ")}]`);
  }
  if (spec.type !== GgmlType.F32 && spec.type !== GgmlType.F16 && spec.type !== GgmlType.BF16) {
    throw new LlamaError(`GGUF writer: tensor "${spec.name}" of type ${ggmlTypeName(spec.type)} must be given as bytes`);
  }
  return tensorBytes(t, spec.type);
}

/** Writes a GGUF v3 file with the metadata (in iteration order) and tensors. */
export function writeGguf(
  file: string,
  metadata: Iterable<readonly [string, GgufEntry]>,
  tensors: readonly GgufTensorSpec[],
  options: GgufWriteOptions = {},
): void {
  const alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const { header, sizes } = encodeHeader(metadata, tensors, alignment);
  writeFileAtomic(file, (fd) => {
    writeAll(fd, header);
    tensors.forEach((spec, i) => {
      const check = new SizeCheck(spec, sizes[i]!);
      const t = spec.data();
      const chunks = t instanceof Uint8Array ? [t] : "shape" in t ? [tensorData(spec, t)] : t;
      for (const chunk of chunks) writeAll(fd, check.add(chunk));
      writeAll(fd, check.end(alignment));
      options.onTensor?.(spec.name, sizes[i]!);
    });
  });
}

/** A tensor whose bytes may also come as an async stream of chunks (for `writeGgufAsync`). */
export interface GgufTensorSpecAsync extends Omit<GgufTensorSpec, "data"> {
  readonly data: () => Tensor | Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;
}

/**
 * `writeGguf` for long producers (e.g. quantizing): chunks may be produced
 * asynchronously, and the event loop gets a turn between chunks, so progress
 * can be shown and a kernel stays responsive while the file is written.
 */
export async function writeGgufAsync(
  file: string,
  metadata: Iterable<readonly [string, GgufEntry]>,
  tensors: readonly GgufTensorSpecAsync[],
  options: GgufWriteOptions = {},
): Promise<void> {
  const alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const { header, sizes } = encodeHeader(metadata, tensors, alignment);
  await writeFileAtomicAsync(file, async (fd) => {
    writeAll(fd, header);
    for (const [i, spec] of tensors.entries()) {
      const check = new SizeCheck(spec, sizes[i]!);
      const t = spec.data();
      const chunks = t instanceof Uint8Array ? [t] : "shape" in t ? [tensorData(spec as GgufTensorSpec, t)] : t;
      for await (const chunk of chunks) {
        writeAll(fd, check.add(chunk));
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      writeAll(fd, check.end(alignment));
      options.onTensor?.(spec.name, sizes[i]!);
    }
  });
}

/** The ggml type for a tensor written as `dtype` (norms and other 1-D tensors stay F32, as llama.cpp writes them). */
export function ggmlTypeFor(dtype: "f32" | "f16" | "bf16", shape: readonly number[]): GgufWritableType {
  if (shape.length === 1 || dtype === "f32") return GgmlType.F32;
  return dtype === "f16" ? GgmlType.F16 : GgmlType.BF16;
}
