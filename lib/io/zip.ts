/**
 * A read-only zip reader for the archives `torch.save` writes (PyTorch's
 * "zip file" serialization: `<name>/data.pkl`, `<name>/data/<key>` storages,
 * all stored uncompressed, zip64 when large). Only the central directory is
 * parsed up front; entry bytes are read on demand with positioned reads, so a
 * multi-GB checkpoint is never loaded whole.
 *
 * Untrusted input: every count, length and offset is checked against the
 * file size before anything is allocated or read.
 */
import * as fs from "node:fs";
import * as zlib from "node:zlib";
import { FormatError } from "../errors.js";
import { type ByteAlloc, freshBytes } from "./byte-alloc.js";

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflate. */
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  /** Offset of the entry's local header. */
  readonly localHeaderOffset: number;
  /** CRC-32 of the uncompressed bytes (checked by whole-entry reads). */
  readonly crc: number;
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const EOCD_MIN = 22;
const CENTRAL_MIN = 46;
const LOCAL_MIN = 30;
/** A zip comment is at most 65535 bytes, so the EOCD lies within this tail. */
const EOCD_SEARCH = EOCD_MIN + 0xffff;
/** Deflated entries are only for small metadata (pickles); refuse to inflate beyond this. */
const MAX_INFLATED = 256 * 1024 * 1024;

export class ZipFile {
  private readonly dataStarts = new Map<string, number>();

  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly fileSize: number,
    readonly entries: ReadonlyMap<string, ZipEntry>,
  ) {}

  static open(file: string): ZipFile {
    let fd: number;
    try {
      fd = fs.openSync(file, "r");
    } catch (err) {
      throw new FormatError(file, `cannot open file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      return new ZipFile(file, fd, size, readCentralDirectory(file, fd, size));
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  entry(name: string): ZipEntry {
    const e = this.entries.get(name);
    if (!e) throw new FormatError(this.path, `zip archive has no entry "${name}"`);
    return e;
  }

  /** Absolute file offset of an entry's first data byte (after its local header). */
  dataStart(name: string): number {
    const cached = this.dataStarts.get(name);
    if (cached !== undefined) return cached;
    const e = this.entry(name);
    const head = readExact(this.path, this.fd, this.fileSize, e.localHeaderOffset, LOCAL_MIN, `local header of "${name}"`);
    const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
    if (v.getUint32(0, true) !== LOCAL_SIG) {
      throw new FormatError(this.path, `zip entry "${name}": bad local header signature at offset ${e.localHeaderOffset}`);
    }
    const start = e.localHeaderOffset + LOCAL_MIN + v.getUint16(26, true) + v.getUint16(28, true);
    if (start + e.compressedSize > this.fileSize) {
      throw new FormatError(this.path, `zip entry "${name}": data (${e.compressedSize} bytes at ${start}) runs past the end of the file (${this.fileSize} bytes)`);
    }
    this.dataStarts.set(name, start);
    return start;
  }

  /** A byte range of a stored (uncompressed) entry, without reading the rest. */
  readRange(name: string, offset: number, length: number): Uint8Array {
    return this.readRangeInto(name, offset, new Uint8Array(new ArrayBuffer(length)));
  }

  /** Fills `target` with the entry's bytes from `offset` on (a caller-owned buffer: no allocation). */
  readRangeInto(name: string, offset: number, target: Uint8Array): Uint8Array {
    const e = this.entry(name);
    const length = target.length;
    if (e.method !== 0) throw new FormatError(this.path, `zip entry "${name}" is compressed (method ${e.method}); tensor data must be stored uncompressed`);
    if (!(Number.isSafeInteger(offset) && offset >= 0 && offset + length <= e.size)) {
      throw new FormatError(this.path, `zip entry "${name}": range [${offset}, ${offset + length}) is outside its ${e.size} bytes`);
    }
    return readExactInto(this.path, this.fd, this.fileSize, this.dataStart(name) + offset, target, `entry "${name}"`);
  }

  /** A whole entry, inflated when deflated, its CRC-32 checked (for metadata such as data.pkl, not bulk tensor data). */
  read(name: string): Uint8Array {
    const e = this.entry(name);
    const bytes = this.readUnchecked(e);
    if (crc32(bytes) !== e.crc) throw new FormatError(this.path, `zip entry "${name}" is corrupt (CRC-32 mismatch)`);
    return bytes;
  }

  private readUnchecked(e: ZipEntry): Uint8Array {
    const name = e.name;
    if (e.method === 0) return this.readRange(name, 0, e.size);
    if (e.method !== 8) throw new FormatError(this.path, `zip entry "${name}": unsupported compression method ${e.method} (expected 0 stored or 8 deflate)`);
    if (e.size > MAX_INFLATED) throw new FormatError(this.path, `zip entry "${name}": ${e.size} bytes uncompressed exceeds the ${MAX_INFLATED}-byte limit`);
    const raw = readExact(this.path, this.fd, this.fileSize, this.dataStart(name), e.compressedSize, `entry "${name}"`);
    let out: Buffer;
    try {
      out = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) });
    } catch (err) {
      throw new FormatError(this.path, `zip entry "${name}": cannot inflate (${(err as Error).message})`);
    }
    if (out.length !== e.size) throw new FormatError(this.path, `zip entry "${name}": inflated to ${out.length} bytes, the directory says ${e.size}`);
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }

  close(): void {
    try { fs.closeSync(this.fd); } catch { /* already closed */ }
  }
}

/** Reads exactly `length` bytes at `pos` into a fresh, aligned buffer. */
export function readExact(file: string, fd: number, fileSize: number, pos: number, length: number, what: string, alloc: ByteAlloc = freshBytes): Uint8Array {
  if (pos < 0 || length < 0 || pos + length > fileSize) {
    throw new FormatError(file, `${what}: ${length} bytes at offset ${pos} run past the end of the file (${fileSize} bytes)`);
  }
  return readExactInto(file, fd, fileSize, pos, alloc(length), what);
}

/** Fills `buf` from file position `pos` (bounds checked first). */
export function readExactInto(file: string, fd: number, fileSize: number, pos: number, buf: Uint8Array, what: string): Uint8Array {
  const length = buf.length;
  if (pos < 0 || pos + length > fileSize) {
    throw new FormatError(file, `${what}: ${length} bytes at offset ${pos} run past the end of the file (${fileSize} bytes)`);
  }
  let off = 0;
  while (off < length) {
    const n = fs.readSync(fd, buf, off, length - off, pos + off);
    if (n === 0) throw new FormatError(file, `${what}: unexpected end of file at offset ${pos + off}`);
    off += n;
  }
  return buf;
}

function readCentralDirectory(file: string, fd: number, size: number): Map<string, ZipEntry> {
  if (size < EOCD_MIN) throw new FormatError(file, `not a zip archive: ${size} bytes is too short for an end-of-central-directory record`);
  const tailLen = Math.min(size, EOCD_SEARCH);
  const tail = readExact(file, fd, size, size - tailLen, tailLen, "zip end of central directory");
  const tv = new DataView(tail.buffer);
  let eocd = -1;
  for (let i = tailLen - EOCD_MIN; i >= 0; i--) {
    if (tv.getUint32(i, true) === EOCD_SIG) { eocd = i; break; }
  }
  if (eocd < 0) {
    throw new FormatError(file, "not a zip archive (no end-of-central-directory record); torch.save files from before PyTorch 1.6 (legacy format) are not supported");
  }
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  const eocdAbs = size - tailLen + eocd;
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    // zip64: a locator right before the EOCD points at the zip64 EOCD record.
    if (eocdAbs < 20) throw new FormatError(file, "zip64 archive without a zip64 locator");
    const loc = readExact(file, fd, size, eocdAbs - 20, 20, "zip64 locator");
    const lv = new DataView(loc.buffer);
    if (lv.getUint32(0, true) !== ZIP64_LOCATOR_SIG) throw new FormatError(file, "zip64 archive: bad zip64 locator signature");
    const recOff = safeU64(file, lv, 8, "zip64 EOCD offset");
    const rec = readExact(file, fd, size, recOff, 56, "zip64 end of central directory");
    const rv = new DataView(rec.buffer);
    if (rv.getUint32(0, true) !== ZIP64_EOCD_SIG) throw new FormatError(file, "zip64 archive: bad zip64 end-of-central-directory signature");
    count = safeU64(file, rv, 32, "zip64 entry count");
    cdSize = safeU64(file, rv, 40, "zip64 central directory size");
    cdOffset = safeU64(file, rv, 48, "zip64 central directory offset");
  }
  if (cdOffset + cdSize > size) {
    throw new FormatError(file, `zip central directory (${cdSize} bytes at ${cdOffset}) runs past the end of the file (${size} bytes)`);
  }
  if (count * CENTRAL_MIN > cdSize) {
    throw new FormatError(file, `zip central directory claims ${count} entries, more than fit in its ${cdSize} bytes`);
  }
  const cd = readExact(file, fd, size, cdOffset, cdSize, "zip central directory");
  const v = new DataView(cd.buffer);
  const entries = new Map<string, ZipEntry>();
  const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + CENTRAL_MIN > cdSize || v.getUint32(p, true) !== CENTRAL_SIG) {
      throw new FormatError(file, `zip central directory entry ${i} is malformed (bad signature or truncated at ${cdOffset + p})`);
    }
    const method = v.getUint16(p + 10, true);
    const crc = v.getUint32(p + 16, true);
    let compressedSize = v.getUint32(p + 20, true);
    let uncompressedSize = v.getUint32(p + 24, true);
    const nameLen = v.getUint16(p + 28, true);
    const extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true);
    let localOffset = v.getUint32(p + 42, true);
    const varEnd = p + CENTRAL_MIN + nameLen + extraLen + commentLen;
    if (varEnd > cdSize) throw new FormatError(file, `zip central directory entry ${i} runs past the directory's end`);
    const name = decoder.decode(cd.subarray(p + CENTRAL_MIN, p + CENTRAL_MIN + nameLen));
    // zip64 extended info (header id 1) holds the 64-bit values of fields set to 0xffffffff, in this order.
    let x = p + CENTRAL_MIN + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = v.getUint16(x, true);
      const len = v.getUint16(x + 2, true);
      if (x + 4 + len > xEnd) throw new FormatError(file, `zip entry "${name}": extra field runs past its end`);
      if (id === 1) {
        let q = x + 4;
        const next = (what: string): number => {
          if (q + 8 > x + 4 + len) throw new FormatError(file, `zip entry "${name}": zip64 extra field too short for ${what}`);
          const val = safeU64(file, v, q, what);
          q += 8;
          return val;
        };
        if (uncompressedSize === 0xffffffff) uncompressedSize = next("size");
        if (compressedSize === 0xffffffff) compressedSize = next("compressed size");
        if (localOffset === 0xffffffff) localOffset = next("local header offset");
      }
      x += 4 + len;
    }
    if (localOffset + LOCAL_MIN + compressedSize > size) {
      throw new FormatError(file, `zip entry "${name}": ${compressedSize} bytes at offset ${localOffset} run past the end of the file (${size} bytes)`);
    }
    if (method === 0 && compressedSize !== uncompressedSize) {
      throw new FormatError(file, `zip entry "${name}": stored entry with compressed size ${compressedSize} != size ${uncompressedSize}`);
    }
    entries.set(name, { name, method, compressedSize, size: uncompressedSize, localHeaderOffset: localOffset, crc });
    p = varEnd;
  }
  return entries;
}

let crcTable: Uint32Array | undefined;
/** CRC-32 (zip's polynomial), continuing from `crc`. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

function safeU64(file: string, v: DataView, at: number, what: string): number {
  const n = v.getBigUint64(at, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(file, `${what} ${n} is too large`);
  return Number(n);
}
