/**
 * safetensors: an 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`,
 * then the raw little-endian data. Files are read tensor by tensor with
 * positioned reads, so a multi-GB checkpoint is never held in memory twice.
 * Every length and offset is checked against the file size before reading.
 */
import * as fs from "node:fs";
import { FormatError, LlamaError } from "../errors.js";
import { Tensor, numel } from "../tensor/tensor.js";
import { type DType, f32ToF16, f32ToBf16 } from "../tensor/dtype.js";
import { writeAll, writeFileAtomic } from "./atomic.js";
import { type ByteAlloc, freshBytes } from "./byte-alloc.js";

export type SafetensorsDType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Absolute byte range in the file. */
  readonly begin: number;
  readonly end: number;
}

const ELEMENT_BYTES: Record<SafetensorsDType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** Headers beyond this are refused (the format's reference reader uses 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly fileSize: number,
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  static open(file: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(file, "r");
    } catch (err) {
      throw new FormatError(file, `cannot open safetensors file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < 8) throw new FormatError(file, `truncated safetensors file: ${size} bytes, need at least 8 for the header length`);
      const lenBuf = Buffer.alloc(8);
      fs.readSync(fd, lenBuf, 0, 8, 0);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen > MAX_HEADER_BYTES) throw new FormatError(file, `safetensors header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      if (8 + headerLen > size) {
        throw new FormatError(file, `safetensors header length ${headerLen} points past the end of the file (${size} bytes)`);
      }
      const headerBuf = Buffer.alloc(headerLen);
      fs.readSync(fd, headerBuf, 0, headerLen, 8);
      let header: unknown;
      try {
        header = JSON.parse(headerBuf.toString("utf8"));
      } catch (err) {
        throw new FormatError(file, `safetensors header is not valid JSON (${(err as Error).message})`);
      }
      if (typeof header !== "object" || header === null || Array.isArray(header)) {
        throw new FormatError(file, "safetensors header must be a JSON object");
      }
      const dataStart = 8 + headerLen;
      const dataSize = size - dataStart;
      const tensors = new Map<string, TensorInfo>();
      let metadata: Record<string, string> = {};
      for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
        if (name === "__metadata__") {
          if (raw && typeof raw === "object") metadata = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, String(v)]));
          continue;
        }
        tensors.set(name, parseInfo(file, name, raw, dataStart, dataSize));
      }
      return new SafetensorsFile(file, fd, size, tensors, metadata);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new FormatError(this.path, `no tensor named "${name}"`);
    return info;
  }

  /** Raw bytes of one tensor (in a fresh buffer, or where `alloc` says; aligned for typed-array views). */
  readBytes(name: string, alloc: ByteAlloc = freshBytes): Uint8Array {
    const info = this.info(name);
    const len = info.end - info.begin;
    const buf = alloc(len);
    let off = 0;
    while (off < len) {
      const n = fs.readSync(this.fd, buf, off, len - off, info.begin + off);
      if (n === 0) throw new FormatError(this.path, `unexpected end of file reading tensor "${name}"`);
      off += n;
    }
    return buf;
  }

  /**
   * Reads one tensor. F16/BF16 stay 16-bit (the kernels widen them); F32 is
   * f32; F64 and integer types are converted to f32 (fine for ids and masks).
   * `alloc` places the bytes of an F32/F16/BF16 tensor, which become its data.
   */
  read(name: string, alloc?: ByteAlloc): Tensor {
    const info = this.info(name);
    const direct = info.dtype === "F32" || info.dtype === "F16" || info.dtype === "BF16";
    const bytes = this.readBytes(name, direct ? alloc : undefined);
    const n = numel(info.shape);
    const at = bytes.byteOffset;
    switch (info.dtype) {
      case "F32": return new Tensor(new Float32Array(bytes.buffer, at, n), info.shape, "f32");
      case "F16": return new Tensor(new Uint16Array(bytes.buffer, at, n), info.shape, "f16");
      case "BF16": return new Tensor(new Uint16Array(bytes.buffer, at, n), info.shape, "bf16");
      case "F64": return new Tensor(Float32Array.from(new Float64Array(bytes.buffer, 0, n)), info.shape, "f32");
      case "I64": return new Tensor(Float32Array.from(new BigInt64Array(bytes.buffer, 0, n), (v) => Number(v)), info.shape, "f32");
      case "I32": return new Tensor(Float32Array.from(new Int32Array(bytes.buffer, 0, n)), info.shape, "f32");
      case "I16": return new Tensor(Float32Array.from(new Int16Array(bytes.buffer, 0, n)), info.shape, "f32");
      case "I8": return new Tensor(Float32Array.from(new Int8Array(bytes.buffer, 0, n)), info.shape, "f32");
      case "U8": case "BOOL": return new Tensor(Float32Array.from(bytes), info.shape, "f32");
    }
  }

  /** Reads an integer tensor (I64/I32/…) exactly, as numbers. */
  readInts(name: string): { values: number[]; shape: readonly number[] } {
    const info = this.info(name);
    const bytes = this.readBytes(name);
    const n = numel(info.shape);
    let values: number[];
    switch (info.dtype) {
      case "I64": values = Array.from(new BigInt64Array(bytes.buffer, 0, n), (v) => Number(v)); break;
      case "I32": values = Array.from(new Int32Array(bytes.buffer, 0, n)); break;
      default: values = Array.from(this.read(name).toFloat32());
    }
    return { values, shape: info.shape };
  }

  close(): void {
    try { fs.closeSync(this.fd); } catch { /* already closed */ }
  }
}

function parseInfo(file: string, name: string, raw: unknown, dataStart: number, dataSize: number): TensorInfo {
  const bad = (what: string) => new FormatError(file, `tensor "${name}": ${what}`);
  if (!raw || typeof raw !== "object") throw bad("header entry must be an object");
  const r = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof r.dtype !== "string" || !(r.dtype in ELEMENT_BYTES)) {
    throw bad(`unsupported dtype ${JSON.stringify(r.dtype)} (expected one of ${Object.keys(ELEMENT_BYTES).join(", ")})`);
  }
  if (!Array.isArray(r.shape) || !r.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw bad(`shape must be a list of non-negative integers, got ${JSON.stringify(r.shape)}`);
  }
  const off = r.data_offsets;
  if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1]) {
    throw bad(`data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(off)}`);
  }
  const [b, e] = off as [number, number];
  if (e > dataSize) throw bad(`data_offsets [${b}, ${e}] point past the end of the data (${dataSize} bytes)`);
  const dtype = r.dtype as SafetensorsDType;
  const shape = r.shape as number[];
  const expected = numel(shape) * ELEMENT_BYTES[dtype];
  if (e - b !== expected) throw bad(`has ${e - b} bytes, but ${dtype} [${shape.join(", ")}] needs ${expected}`);
  return { name, dtype, shape, begin: dataStart + b, end: dataStart + e };
}

export interface SaveOptions {
  metadata?: Record<string, string>;
  /** Convert f32 tensors to this dtype on save (default: keep each tensor's dtype). */
  dtype?: DType;
}

const TO_SAFETENSORS: Record<DType, SafetensorsDType> = { f32: "F32", f16: "F16", bf16: "BF16" };

function tensorBytes(t: Tensor, dtype: DType): Uint8Array {
  let data = t.data;
  if (dtype !== t.dtype) {
    const f = t.toFloat32();
    data = dtype === "f32" ? f : dtype === "f16" ? f32ToF16(f) : f32ToBf16(f);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Writes tensors to a safetensors file atomically, tensor by tensor. Names
 * are written in sorted order, as the reference implementation does.
 */
export function saveSafetensors(file: string, tensors: Record<string, Tensor> | Map<string, Tensor>, options: SaveOptions = {}): void {
  const entries = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (options.metadata) header.__metadata__ = options.metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === "__metadata__") throw new LlamaError(`saveSafetensors: "__metadata__" is not a valid tensor name`);
    const dtype = options.dtype && t.dtype === "f32" ? options.dtype : t.dtype;
    const bytes = numel(t.shape) * (dtype === "f32" ? 4 : 2);
    header[name] = { dtype: TO_SAFETENSORS[dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned (as the reference writer does).
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  writeFileAtomic(file, (fd) => {
    writeAll(fd, len);
    writeAll(fd, headerBytes);
    for (const [, t] of entries) {
      const dtype = options.dtype && t.dtype === "f32" ? options.dtype : t.dtype;
      writeAll(fd, tensorBytes(t, dtype));
    }
  });
}
