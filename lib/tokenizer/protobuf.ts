/**
 * A minimal protobuf wire-format reader, enough to parse sentencepiece's
 * ModelProto. It trusts nothing in the bytes: every varint is bounded to 10
 * bytes, every length-delimited field is checked against the end of its
 * enclosing message before it is sliced, and any overrun becomes a
 * FormatError naming the file and the byte offset.
 */
import { FormatError } from "../errors.js";

/** Wire types of the protobuf encoding. */
export enum WireType {
  Varint = 0,
  Fixed64 = 1,
  LengthDelimited = 2,
  StartGroup = 3,
  EndGroup = 4,
  Fixed32 = 5,
}

export interface Field {
  readonly number: number;
  readonly wireType: WireType;
  /** Varint fields: the low 32 bits as a signed int32 (protobuf int32/enum/bool semantics). */
  readonly int32: number;
  /** Varint fields: the value as an unsigned number when it fits in 2^53; otherwise NaN. */
  readonly uint: number;
  /** Fixed32 fields: the raw 4 bytes as a little-endian float. */
  readonly float32: number;
  /** Length-delimited fields: a view of the payload (no copy). */
  readonly bytes: Uint8Array;
  /** Byte offset of the field's payload in the top-level buffer (for error messages). */
  readonly offset: number;
}

const EMPTY = new Uint8Array(0);

/**
 * Iterates over the fields of one message occupying `buf[start, end)`.
 * `base` is the offset of `buf[0]` in the file, so errors point at the right byte.
 */
export function* readFields(file: string, buf: Uint8Array, base = 0): Generator<Field> {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  const end = buf.length;
  while (pos < end) {
    const tagAt = pos;
    const [tag, afterTag] = readVarint(file, buf, pos, base);
    pos = afterTag;
    const number = Math.floor(tag / 8);
    const wireType = (tag % 8) as WireType;
    if (number === 0) throw new FormatError(file, `protobuf field number 0 at byte ${base + tagAt} (corrupt or not a protobuf file)`);
    switch (wireType) {
      case WireType.Varint: {
        const [value, next, lo] = readVarintLo(file, buf, pos, base);
        yield { number, wireType, int32: lo | 0, uint: value, float32: NaN, bytes: EMPTY, offset: base + pos };
        pos = next;
        break;
      }
      case WireType.Fixed64: {
        if (pos + 8 > end) throw truncated(file, base + pos, 8, end - pos);
        yield { number, wireType, int32: 0, uint: NaN, float32: NaN, bytes: buf.subarray(pos, pos + 8), offset: base + pos };
        pos += 8;
        break;
      }
      case WireType.LengthDelimited: {
        const [len, next] = readVarint(file, buf, pos, base);
        if (!Number.isSafeInteger(len) || next + len > end) {
          throw new FormatError(file, `protobuf field ${number} at byte ${base + tagAt} declares ${len} bytes but only ${end - next} remain in its message (truncated or corrupt file)`);
        }
        yield { number, wireType, int32: 0, uint: NaN, float32: NaN, bytes: buf.subarray(next, next + len), offset: base + next };
        pos = next + len;
        break;
      }
      case WireType.Fixed32: {
        if (pos + 4 > end) throw truncated(file, base + pos, 4, end - pos);
        yield { number, wireType, int32: view.getInt32(pos, true), uint: view.getUint32(pos, true), float32: view.getFloat32(pos, true), bytes: buf.subarray(pos, pos + 4), offset: base + pos };
        pos += 4;
        break;
      }
      default:
        // Groups are deprecated and never used by sentencepiece; wire types 6 and 7 do not exist.
        throw new FormatError(file, `unsupported protobuf wire type ${wireType} for field ${number} at byte ${base + tagAt} (corrupt or not a sentencepiece model)`);
    }
  }
}

function truncated(file: string, at: number, need: number, have: number): FormatError {
  return new FormatError(file, `truncated protobuf field at byte ${at}: needs ${need} bytes, ${have} remain`);
}

/** Reads a varint as a JS number (exact below 2^53). Returns [value, nextPos]. */
function readVarint(file: string, buf: Uint8Array, pos: number, base: number): [number, number] {
  const [value, next] = readVarintLo(file, buf, pos, base);
  return [value, next];
}

/** Reads a varint; returns [value (NaN if ≥ 2^53), nextPos, low 32 bits]. */
function readVarintLo(file: string, buf: Uint8Array, pos: number, base: number): [number, number, number] {
  let value = 0;
  let lo = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos + i >= buf.length) throw new FormatError(file, `truncated protobuf varint at byte ${base + pos}`);
    const b = buf[pos + i]!;
    if (i < 5) lo |= (b & 0x7f) << (7 * i);
    value += (b & 0x7f) * scale;
    scale *= 128;
    if ((b & 0x80) === 0) return [value < 2 ** 53 ? value : NaN, pos + i + 1, lo];
  }
  throw new FormatError(file, `protobuf varint longer than 10 bytes at byte ${base + pos} (corrupt file)`);
}

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decodes a string field, rejecting invalid UTF-8 with an error that names the field. */
export function utf8Field(file: string, field: Field, what: string): string {
  if (field.wireType !== WireType.LengthDelimited) throw new FormatError(file, `${what} at byte ${field.offset} has wire type ${field.wireType}, expected a length-delimited string`);
  try {
    return STRICT_UTF8.decode(field.bytes);
  } catch {
    throw new FormatError(file, `${what} at byte ${field.offset} is not valid UTF-8`);
  }
}

/** Checks a field has the wire type a schema expects. */
export function expectWire(file: string, field: Field, wire: WireType, what: string): void {
  if (field.wireType !== wire) {
    throw new FormatError(file, `${what} (field ${field.number}) at byte ${field.offset} has wire type ${field.wireType}, expected ${wire}`);
  }
}
