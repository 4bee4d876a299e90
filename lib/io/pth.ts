/**
 * Reader for `torch.save` checkpoints in the zip format (PyTorch ≥ 1.6), e.g.
 * Meta's `consolidated.00.pth`: `<prefix>/data.pkl` holds the state dict as a
 * pickle whose tensors point at storages `<prefix>/data/<key>`.
 *
 * Opening parses only the zip directory and the pickle (a few KB); each
 * tensor's bytes are read when asked for, honoring its storage offset and
 * strides, so converting a checkpoint holds about one tensor in memory.
 */
import { FormatError } from "../errors.js";
import { Tensor, numel } from "../tensor/tensor.js";
import { ZipFile } from "./zip.js";
import {
  type PickleValue,
  type TorchDType,
  TORCH_DTYPE_BYTES,
  TorchTensorRef,
  unpickle,
} from "./pth-unpickle.js";

export type { TorchDType } from "./pth-unpickle.js";

export interface TorchTensorInfo {
  readonly name: string;
  readonly dtype: TorchDType;
  readonly shape: readonly number[];
}

/** Pickles beyond this are not state dicts of LLaMA checkpoints. */
const MAX_PICKLE_BYTES = 64 * 1024 * 1024;

export class TorchCheckpoint {
  private constructor(
    readonly path: string,
    private readonly zip: ZipFile,
    private readonly prefix: string,
    private readonly refs: ReadonlyMap<string, TorchTensorRef>,
  ) {}

  static open(file: string): TorchCheckpoint {
    const zip = ZipFile.open(file);
    try {
      const pkl = zip.names().find((n) => n.endsWith("/data.pkl") && n.split("/").length === 2) ?? (zip.entries.has("data.pkl") ? "data.pkl" : undefined);
      if (!pkl) throw new FormatError(file, "not a torch checkpoint: the zip archive has no <name>/data.pkl entry");
      const prefix = pkl.slice(0, pkl.length - "data.pkl".length);
      const order = zip.entries.get(`${prefix}byteorder`);
      if (order) {
        const bo = new TextDecoder().decode(zip.read(`${prefix}byteorder`)).trim();
        if (bo !== "little") throw new FormatError(file, `storages are "${bo}"-endian; only little-endian checkpoints are supported`);
      }
      const entry = zip.entry(pkl);
      if (entry.size > MAX_PICKLE_BYTES) throw new FormatError(file, `${pkl} is ${entry.size} bytes, over the ${MAX_PICKLE_BYTES}-byte limit for a state-dict pickle`);
      const root = unpickle(zip.read(pkl), `${file}:${pkl}`);
      const refs = collectTensors(file, root);
      // Check each storage exists and is large enough before anyone reads it.
      for (const [name, ref] of refs) {
        const key = `${prefix}data/${ref.storage.key}`;
        const e = zip.entries.get(key);
        if (!e) throw new FormatError(file, `tensor "${name}": storage entry "${key}" is missing from the archive`);
        const need = ref.storage.numel * TORCH_DTYPE_BYTES[ref.storage.dtype];
        if (e.size < need) throw new FormatError(file, `tensor "${name}": storage "${key}" has ${e.size} bytes, its ${ref.storage.numel} ${ref.storage.dtype} elements need ${need}`);
      }
      return new TorchCheckpoint(file, zip, prefix, refs);
    } catch (err) {
      zip.close();
      throw err;
    }
  }

  names(): string[] {
    return [...this.refs.keys()];
  }

  has(name: string): boolean {
    return this.refs.has(name);
  }

  info(name: string): TorchTensorInfo {
    const ref = this.ref(name);
    return { name, dtype: ref.storage.dtype, shape: ref.shape };
  }

  private ref(name: string): TorchTensorRef {
    const ref = this.refs.get(name);
    if (!ref) throw new FormatError(this.path, `no tensor named "${name}" (has: ${[...this.refs.keys()].slice(0, 8).join(", ")}${this.refs.size > 8 ? ", …" : ""})`);
    return ref;
  }

  /**
   * The tensor's elements in row-major order as raw little-endian bytes of
   * its own dtype (a fresh, aligned buffer). Non-contiguous views are gathered.
   */
  readBytes(name: string): Uint8Array {
    const ref = this.ref(name);
    return this.readBytesInto(name, new Uint8Array(new ArrayBuffer(numel(ref.shape) * TORCH_DTYPE_BYTES[ref.storage.dtype])));
  }

  /** Like readBytes, into a caller-owned buffer of exactly the tensor's byte size (streaming converters reuse one). */
  readBytesInto(name: string, target: Uint8Array): Uint8Array {
    const ref = this.ref(name);
    const esize = TORCH_DTYPE_BYTES[ref.storage.dtype];
    const n = numel(ref.shape);
    if (target.length !== n * esize) throw new FormatError(this.path, `tensor "${name}": target buffer has ${target.length} bytes, needs ${n * esize}`);
    const entry = `${this.prefix}data/${ref.storage.key}`;
    if (n === 0) return target;
    const contiguous = isContiguous(ref.shape, ref.stride);
    if (contiguous) return this.zip.readRangeInto(entry, ref.storageOffset * esize, target);
    // Read the span the view touches, then gather element by element.
    let span = 1;
    for (let i = 0; i < ref.shape.length; i++) span += (ref.shape[i]! - 1) * ref.stride[i]!;
    const src = this.zip.readRange(entry, ref.storageOffset * esize, span * esize);
    const out = target;
    const idx = new Array<number>(ref.shape.length).fill(0);
    let srcOff = 0;
    for (let k = 0; k < n; k++) {
      out.set(src.subarray(srcOff * esize, srcOff * esize + esize), k * esize);
      // Advance the multi-index (last dimension fastest) and the source offset with it.
      for (let d = ref.shape.length - 1; d >= 0; d--) {
        idx[d]!++;
        srcOff += ref.stride[d]!;
        if (idx[d]! < ref.shape[d]!) break;
        srcOff -= idx[d]! * ref.stride[d]!;
        idx[d] = 0;
      }
    }
    return out;
  }

  /**
   * Reads one tensor: f16/bf16/f32 keep their dtype; f64 and integer types
   * become f32 (fine for the rare buffers a checkpoint carries).
   */
  read(name: string): Tensor {
    const { dtype, shape } = this.info(name);
    const bytes = this.readBytes(name);
    const n = numel(shape);
    const b = bytes.buffer;
    switch (dtype) {
      case "f16": return new Tensor(new Uint16Array(b, 0, n), shape, "f16");
      case "bf16": return new Tensor(new Uint16Array(b, 0, n), shape, "bf16");
      case "f32": return new Tensor(new Float32Array(b, 0, n), shape, "f32");
      case "f64": return new Tensor(Float32Array.from(new Float64Array(b, 0, n)), shape, "f32");
      case "i64": return new Tensor(Float32Array.from(new BigInt64Array(b, 0, n), (v) => Number(v)), shape, "f32");
      case "i32": return new Tensor(Float32Array.from(new Int32Array(b, 0, n)), shape, "f32");
      case "i16": return new Tensor(Float32Array.from(new Int16Array(b, 0, n)), shape, "f32");
      case "i8": return new Tensor(Float32Array.from(new Int8Array(b, 0, n)), shape, "f32");
      case "u8": case "bool": return new Tensor(Float32Array.from(bytes), shape, "f32");
    }
  }

  close(): void {
    this.zip.close();
  }
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i]!;
  }
  return true;
}

/** The tensors of a state dict: the top-level dict's tensor values, by key. */
function collectTensors(file: string, root: PickleValue): Map<string, TorchTensorRef> {
  if (!(root instanceof Map)) throw new FormatError(file, "the pickle's top-level object is not a dict (expected a state dict)");
  const out = new Map<string, TorchTensorRef>();
  for (const [k, v] of root) {
    if (v instanceof TorchTensorRef) {
      if (typeof k !== "string") throw new FormatError(file, `state dict key ${String(k)} is not a string`);
      out.set(k, v);
    }
  }
  if (out.size === 0) throw new FormatError(file, "the state dict holds no tensors at its top level");
  return out;
}
