/**
 * Writes a state dict in torch.save's zip format (what `torch.load` and our
 * TorchCheckpoint read): `<name>/data.pkl` (a protocol-2 pickle of a dict of
 * `_rebuild_tensor_v2` calls), `<name>/byteorder`, `<name>/version` and one
 * stored entry `<name>/data/<i>` per tensor, its data 64-byte aligned as
 * torch aligns it. Tensors stream to disk one at a time. Used to make test
 * and benchmark checkpoints without Python; archives stay below 4 GiB (no zip64).
 */
import * as fs from "node:fs";
import { LlamaError } from "../errors.js";
import { writeAll, writeFileAtomic } from "./atomic.js";
import { TORCH_DTYPE_BYTES, type TorchDType } from "./pth-unpickle.js";
import { crc32 } from "./zip.js";

export interface TorchTensorSpec {
  readonly name: string;
  readonly dtype: TorchDType;
  readonly shape: readonly number[];
  /** The tensor's bytes, row-major little-endian (exactly numel × element size). */
  readonly data: () => Uint8Array;
}

const STORAGE_CLASS: Record<TorchDType, string> = {
  f16: "HalfStorage", bf16: "BFloat16Storage", f32: "FloatStorage", f64: "DoubleStorage", i64: "LongStorage",
  i32: "IntStorage", i16: "ShortStorage", i8: "CharStorage", u8: "ByteStorage", bool: "BoolStorage",
};

/** The protocol-2 pickle torch writes for a plain dict of tensors (storage i = tensor i). */
export function statedictPickle(tensors: readonly TorchTensorSpec[]): Uint8Array {
  const out: number[] = [0x80, 0x02, 0x7d, 0x28]; // PROTO 2, EMPTY_DICT, MARK
  const str = (s: string) => {
    const b = Buffer.from(s, "utf8");
    out.push(0x58, b.length & 0xff, (b.length >>> 8) & 0xff, (b.length >>> 16) & 0xff, b.length >>> 24, ...b); // BINUNICODE
  };
  const global = (mod: string, name: string) => out.push(0x63, ...Buffer.from(`${mod}\n${name}\n`, "latin1"));
  const int = (v: number) => {
    if (v >= 0 && v <= 0x7fffffff) out.push(0x4a, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24); // BININT
    else {
      const b = Buffer.alloc(8);
      b.writeBigInt64LE(BigInt(v));
      out.push(0x8a, 8, ...b); // LONG1
    }
  };
  const tuple = (xs: readonly number[]) => {
    out.push(0x28);
    for (const x of xs) int(x);
    out.push(0x74); // TUPLE
  };
  tensors.forEach((t, i) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    str(t.name);
    global("torch._utils", "_rebuild_tensor_v2");
    out.push(0x28); // MARK (args)
    out.push(0x28); // MARK (persistent id)
    str("storage");
    global("torch", STORAGE_CLASS[t.dtype]);
    str(String(i));
    str("cpu");
    int(n);
    out.push(0x74, 0x51); // TUPLE, BINPERSID
    int(0); // storage offset
    tuple(t.shape);
    const strides = t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1));
    tuple(strides);
    out.push(0x89); // requires_grad False
    global("collections", "OrderedDict");
    out.push(0x29, 0x52); // EMPTY_TUPLE, REDUCE: backward hooks
    out.push(0x74, 0x52); // TUPLE, REDUCE
  });
  out.push(0x75, 0x2e); // SETITEMS, STOP
  return Uint8Array.from(out);
}

interface Written {
  name: string;
  crc: number;
  size: number;
  offset: number;
}

/** Writes `tensors` to `file` as torch.save would (archive folder named after the file). */
export function saveTorchStateDict(file: string, tensors: readonly TorchTensorSpec[], archiveName = "archive"): void {
  writeFileAtomic(file, (fd) => {
    let pos = 0;
    const entries: Written[] = [];
    const put = (b: Uint8Array) => {
      writeAll(fd, b);
      pos += b.length;
    };
    /** A stored entry: local header (with padding so the data starts 64-byte aligned), then the data, then the CRC patched in. */
    const entry = (name: string, chunks: () => Iterable<Uint8Array>) => {
      const nameBytes = Buffer.from(name, "utf8");
      const headerAt = pos;
      let extra = 0;
      const base = headerAt + 30 + nameBytes.length;
      if (base % 64) extra = 64 - (base % 64);
      if (extra && extra < 4) extra += 64; // the padding is an extra field: 4-byte header + payload
      const header = Buffer.alloc(30 + nameBytes.length + extra);
      header.writeUInt32LE(0x04034b50, 0);
      header.writeUInt16LE(20, 4);
      header.writeUInt16LE(nameBytes.length, 26);
      header.writeUInt16LE(extra, 28);
      nameBytes.copy(header, 30);
      if (extra) {
        header.writeUInt16LE(0x4246, 30 + nameBytes.length); // "FB", torch's padding field id
        header.writeUInt16LE(extra - 4, 32 + nameBytes.length);
      }
      put(header);
      let crc = 0;
      let size = 0;
      for (const c of chunks()) {
        crc = crc32(c, crc);
        size += c.length;
        put(c);
      }
      if (pos > 0xfffffffe) throw new LlamaError(`${file}: torch archive over 4 GiB needs zip64, which this writer does not produce`);
      const patch = Buffer.alloc(12);
      patch.writeUInt32LE(crc, 0);
      patch.writeUInt32LE(size, 4);
      patch.writeUInt32LE(size, 8);
      fs.writeSync(fd, patch, 0, 12, headerAt + 14);
      entries.push({ name, crc, size, offset: headerAt });
    };
    const prefix = `${archiveName}/`;
    entry(`${prefix}data.pkl`, () => [statedictPickle(tensors)]);
    entry(`${prefix}byteorder`, () => [Buffer.from("little")]);
    tensors.forEach((t, i) => entry(`${prefix}data/${i}`, () => {
      const b = t.data();
      const want = t.shape.reduce((a, c) => a * c, 1) * TORCH_DTYPE_BYTES[t.dtype];
      if (b.length !== want) throw new LlamaError(`${file}: tensor "${t.name}" produced ${b.length} bytes, needs ${want}`);
      return [b];
    }));
    entry(`${prefix}version`, () => [Buffer.from("3\n")]);
    const cdStart = pos;
    for (const e of entries) {
      const nameBytes = Buffer.from(e.name, "utf8");
      const h = Buffer.alloc(46 + nameBytes.length);
      h.writeUInt32LE(0x02014b50, 0);
      h.writeUInt16LE(20, 4);
      h.writeUInt16LE(20, 6);
      h.writeUInt32LE(e.crc, 16);
      h.writeUInt32LE(e.size, 20);
      h.writeUInt32LE(e.size, 24);
      h.writeUInt16LE(nameBytes.length, 28);
      h.writeUInt32LE(e.offset, 42);
      nameBytes.copy(h, 46);
      put(h);
    }
    const eocd = Buffer.alloc(22);
    eocd.writeUInt32LE(0x06054b50, 0);
    eocd.writeUInt16LE(entries.length, 8);
    eocd.writeUInt16LE(entries.length, 10);
    eocd.writeUInt32LE(pos - cdStart, 12);
    eocd.writeUInt32LE(cdStart, 16);
    put(eocd);
  });
}
