/**
 * GGUF reader (versions 2 and 3): header, metadata key/values of every type,
 * tensor infos, alignment; tensor data read on demand and dequantized.
 *
 * Layout: magic "GGUF", u32 version, u64 tensor count, u64 kv count, the kvs
 * (string key, u32 type, value), the tensor infos (string name, u32 n_dims,
 * u64 ne[n_dims] innermost first, u32 ggml type, u64 offset), padding to
 * `general.alignment` (default 32), then the data section.
 *
 * Untrusted input: the header is parsed from a window of positioned reads
 * (never the whole file), and every count, length, dimension and offset is
 * checked against the file size before anything is allocated or read.
 */
import * as fs from "node:fs";
import { FormatError } from "../errors.js";
import { Tensor } from "../tensor/tensor.js";
import { dequantize } from "./gguf-dequant.js";
import { GGML_BLOCK, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_SCALAR_BYTES, GgmlType, GgufValueType, ggmlTypeName } from "./gguf-types.js";
import { readExact } from "./zip.js";
import type { ByteAlloc } from "./byte-alloc.js";

export type GgufScalar = number | bigint | boolean | string;
export interface GgufArray {
  readonly itemType: GgufValueType;
  readonly items: GgufValue[];
}
export type GgufValue = GgufScalar | GgufArray;
export interface GgufEntry {
  readonly type: GgufValueType;
  readonly value: GgufValue;
}

export interface GgufTensorInfo {
  readonly name: string;
  readonly type: GgmlType;
  /** ggml order: ne[0] is the innermost (contiguous) dimension. */
  readonly ne: readonly number[];
  /** Row-major shape (ne reversed), as torch/safetensors would say it. */
  readonly shape: readonly number[];
  /** Absolute file offset of the data. */
  readonly offset: number;
  readonly byteSize: number;
}

const MAX_DIMS = 4;
const MAX_ARRAY_DEPTH = 3;
const WINDOW = 1 << 20;

/** Sequential little-endian reads of the header through a sliding window of the file. */
class HeaderCursor {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private bufStart = 0;
  private readonly text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

  constructor(readonly file: string, private readonly fd: number, readonly size: number) {}

  fail(detail: string): never {
    throw new FormatError(this.file, detail);
  }

  private ensure(n: number, what: string): DataView {
    if (this.pos + n > this.size) this.fail(`${what}: needs ${n} bytes at offset ${this.pos}, the file has ${this.size}`);
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      const len = Math.min(this.size - this.pos, Math.max(n, WINDOW));
      this.buf = readExact(this.file, this.fd, this.size, this.pos, len, what);
      this.bufStart = this.pos;
    }
    return new DataView(this.buf.buffer, this.pos - this.bufStart, n);
  }

  u8(what: string): number { const v = this.ensure(1, what).getUint8(0); this.pos += 1; return v; }
  i8(what: string): number { const v = this.ensure(1, what).getInt8(0); this.pos += 1; return v; }
  u16(what: string): number { const v = this.ensure(2, what).getUint16(0, true); this.pos += 2; return v; }
  i16(what: string): number { const v = this.ensure(2, what).getInt16(0, true); this.pos += 2; return v; }
  u32(what: string): number { const v = this.ensure(4, what).getUint32(0, true); this.pos += 4; return v; }
  i32(what: string): number { const v = this.ensure(4, what).getInt32(0, true); this.pos += 4; return v; }
  f32(what: string): number { const v = this.ensure(4, what).getFloat32(0, true); this.pos += 4; return v; }
  f64(what: string): number { const v = this.ensure(8, what).getFloat64(0, true); this.pos += 8; return v; }
  u64big(what: string): bigint { const v = this.ensure(8, what).getBigUint64(0, true); this.pos += 8; return v; }
  i64big(what: string): bigint { const v = this.ensure(8, what).getBigInt64(0, true); this.pos += 8; return v; }

  /** A u64 that must be a count/offset no larger than `max`. */
  bounded(what: string, max: number): number {
    const v = this.u64big(what);
    if (v > BigInt(max)) this.fail(`${what} ${v} is larger than possible in a ${this.size}-byte file (at most ${max})`);
    return Number(v);
  }

  string(what: string): string {
    const len = this.bounded(`${what} length`, this.size - this.pos - 8);
    const view = this.ensure(len, what);
    try {
      return this.text.decode(new Uint8Array(view.buffer, view.byteOffset, len));
    } catch {
      return this.fail(`${what} at offset ${this.pos} is not valid UTF-8`);
    } finally {
      this.pos += len;
    }
  }
}

export class GgufFile {
  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly fileSize: number,
    readonly version: number,
    readonly metadata: ReadonlyMap<string, GgufEntry>,
    readonly tensors: ReadonlyMap<string, GgufTensorInfo>,
    readonly alignment: number,
    readonly dataOffset: number,
  ) {}

  static open(file: string): GgufFile {
    let fd: number;
    try {
      fd = fs.openSync(file, "r");
    } catch (err) {
      throw new FormatError(file, `cannot open GGUF file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    try {
      return GgufFile.parse(file, fd, fs.fstatSync(fd).size);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  private static parse(file: string, fd: number, size: number): GgufFile {
    const c: HeaderCursor = new HeaderCursor(file, fd, size);
    if (size < 24) c.fail(`not a GGUF file: ${size} bytes is too short for the header`);
    if (c.u32("magic") !== GGUF_MAGIC) c.fail("not a GGUF file (magic is not \"GGUF\")");
    const version = c.u32("version");
    if (version === 1) c.fail("GGUF version 1 is not supported (re-convert the model with a current llama.cpp)");
    if (version > 0xffff) c.fail(`GGUF version ${version}: big-endian GGUF files are not supported`);
    if (version !== 2 && version !== 3) c.fail(`GGUF version ${version} is not supported (expected 2 or 3)`);
    // Lower bounds on the bytes each entry needs bound the counts.
    const tensorCount = c.bounded("tensor count", Math.floor(size / 24));
    const kvCount = c.bounded("metadata count", Math.floor(size / 13));
    const metadata = new Map<string, GgufEntry>();
    for (let i = 0; i < kvCount; i++) {
      const key = c.string(`metadata key ${i}`);
      if (metadata.has(key)) c.fail(`duplicate metadata key "${key}"`);
      const type = c.u32(`type of "${key}"`);
      metadata.set(key, { type, value: readValue(c, type, key, 0) });
    }
    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const al = metadata.get("general.alignment");
    if (al) {
      if (al.type !== GgufValueType.UINT32 || typeof al.value !== "number" || al.value === 0 || (al.value & (al.value - 1)) !== 0) {
        c.fail(`general.alignment must be a power-of-two u32, got ${String(al.value)}`);
      }
      alignment = al.value;
    }
    const infos: { name: string; type: number; ne: number[]; rel: number }[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < tensorCount; i++) {
      const name = c.string(`tensor ${i} name`);
      if (seen.has(name)) c.fail(`duplicate tensor name "${name}"`);
      seen.add(name);
      const nDims = c.u32(`tensor "${name}" n_dims`);
      if (nDims < 1 || nDims > MAX_DIMS) c.fail(`tensor "${name}": n_dims ${nDims} (expected 1..${MAX_DIMS})`);
      const ne: number[] = [];
      for (let d = 0; d < nDims; d++) ne.push(c.bounded(`tensor "${name}" dimension ${d}`, Number.MAX_SAFE_INTEGER));
      const type = c.u32(`tensor "${name}" type`);
      const rel = c.bounded(`tensor "${name}" offset`, size);
      infos.push({ name, type, ne, rel });
    }
    const dataOffset = Math.ceil(c.pos / alignment) * alignment;
    const tensors = new Map<string, GgufTensorInfo>();
    for (const t of infos) {
      const where = `tensor "${t.name}"`;
      const block = GGML_BLOCK[t.type as GgmlType];
      if (!block) c.fail(`${where}: unknown or unsupported ggml type ${ggmlTypeName(t.type)}`);
      let n = 1;
      for (const d of t.ne) {
        n *= d;
        if (n > size * 8) c.fail(`${where}: shape [${t.ne.join(", ")}] has more elements than the file could hold`);
      }
      if (t.ne[0]! % block.elems !== 0) c.fail(`${where}: first dimension ${t.ne[0]} is not a multiple of the ${ggmlTypeName(t.type)} block size ${block.elems}`);
      const byteSize = (n / block.elems) * block.bytes;
      if (t.rel % alignment !== 0) c.fail(`${where}: offset ${t.rel} is not a multiple of the alignment ${alignment}`);
      const offset = dataOffset + t.rel;
      if (offset + byteSize > size) c.fail(`${where}: ${byteSize} bytes at offset ${offset} run past the end of the file (${size} bytes)`);
      tensors.set(t.name, { name: t.name, type: t.type, ne: t.ne, shape: [...t.ne].reverse(), offset, byteSize });
    }
    return new GgufFile(file, fd, size, version, metadata, tensors, alignment, dataOffset);
  }

  has(key: string): boolean {
    return this.metadata.has(key);
  }

  /** A metadata value, or undefined. */
  get(key: string): GgufValue | undefined {
    return this.metadata.get(key)?.value;
  }

  /** A numeric metadata value (any integer or float type); `fallback` when absent. */
  number(key: string, fallback?: number): number {
    const v = this.get(key);
    if (v === undefined) {
      if (fallback === undefined) throw new FormatError(this.path, `missing metadata key "${key}"`);
      return fallback;
    }
    if (typeof v === "bigint" && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER)) return Number(v);
    if (typeof v !== "number") throw new FormatError(this.path, `metadata "${key}": expected a number, got ${describe(v)}`);
    return v;
  }

  string(key: string, fallback?: string): string {
    const v = this.get(key);
    if (v === undefined) {
      if (fallback === undefined) throw new FormatError(this.path, `missing metadata key "${key}"`);
      return fallback;
    }
    if (typeof v !== "string") throw new FormatError(this.path, `metadata "${key}": expected a string, got ${describe(v)}`);
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== "boolean") throw new FormatError(this.path, `metadata "${key}": expected a bool, got ${describe(v)}`);
    return v;
  }

  /** An array's items, checked to be of the given JS kind; undefined when absent. */
  array<K extends "string" | "number">(key: string, kind: K): (K extends "string" ? string : number)[] | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== "object" || !("items" in v)) throw new FormatError(this.path, `metadata "${key}": expected an array, got ${describe(v)}`);
    for (let i = 0; i < v.items.length; i++) {
      if (typeof v.items[i] !== kind) throw new FormatError(this.path, `metadata "${key}"[${i}]: expected a ${kind}`);
    }
    return v.items as (K extends "string" ? string : number)[];
  }

  tensorNames(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): GgufTensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new FormatError(this.path, `no tensor named "${name}"`);
    return t;
  }

  /** The raw (possibly quantized) bytes of a tensor (in a new buffer, or where `alloc` says). */
  readRaw(name: string, alloc?: ByteAlloc): Uint8Array {
    const t = this.info(name);
    return readExact(this.path, this.fd, this.fileSize, t.offset, t.byteSize, `tensor "${name}"`, alloc);
  }

  /**
   * A tensor in row-major shape: F16/BF16 stay 16-bit, F32 is f32, quantized
   * and integer types are dequantized/converted to f32.
   */
  read(name: string, alloc?: ByteAlloc): Tensor {
    const t = this.info(name);
    const direct = t.type === GgmlType.F32 || t.type === GgmlType.F16 || t.type === GgmlType.BF16; // the bytes are the data
    return dequantize(this.readRaw(name, direct ? alloc : undefined), t.type, t.shape, `${this.path}: tensor "${name}"`);
  }

  close(): void {
    try { fs.closeSync(this.fd); } catch { /* already closed */ }
  }
}

function describe(v: GgufValue): string {
  if (typeof v === "object") return `an array of ${v.items.length}`;
  return `${typeof v} ${JSON.stringify(typeof v === "bigint" ? String(v) : v)}`;
}

function readValue(c: HeaderCursor, type: number, key: string, depth: number): GgufValue {
  const what = `metadata "${key}"`;
  switch (type) {
    case GgufValueType.UINT8: return c.u8(what);
    case GgufValueType.INT8: return c.i8(what);
    case GgufValueType.UINT16: return c.u16(what);
    case GgufValueType.INT16: return c.i16(what);
    case GgufValueType.UINT32: return c.u32(what);
    case GgufValueType.INT32: return c.i32(what);
    case GgufValueType.FLOAT32: return c.f32(what);
    case GgufValueType.FLOAT64: return c.f64(what);
    case GgufValueType.BOOL: {
      const b = c.u8(what);
      if (b > 1) c.fail(`${what}: bool byte ${b} is not 0 or 1`);
      return b === 1;
    }
    case GgufValueType.UINT64: return safeNumber(c.u64big(what));
    case GgufValueType.INT64: return safeNumber(c.i64big(what));
    case GgufValueType.STRING: return c.string(what);
    case GgufValueType.ARRAY: {
      if (depth >= MAX_ARRAY_DEPTH) c.fail(`${what}: arrays nested deeper than ${MAX_ARRAY_DEPTH}`);
      const itemType = c.u32(`${what} array type`);
      const minBytes = itemType === GgufValueType.STRING ? 8 : itemType === GgufValueType.ARRAY ? 12 : GGUF_SCALAR_BYTES[itemType as GgufValueType];
      if (minBytes === undefined) c.fail(`${what}: unknown array item type ${itemType}`);
      const count = c.bounded(`${what} array length`, Math.floor((c.size - c.pos - 8) / minBytes));
      const items: GgufValue[] = new Array(count);
      for (let i = 0; i < count; i++) items[i] = readValue(c, itemType, key, depth + 1);
      return { itemType, items };
    }
    default:
      return c.fail(`${what}: unknown value type ${type}`);
  }
}

function safeNumber(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
}
