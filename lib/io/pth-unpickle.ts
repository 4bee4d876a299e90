/**
 * A bounded unpickler for the subset of Python's pickle format that
 * `torch.save(state_dict)` produces (protocol 2, also the opcodes of 3–5).
 *
 * It never executes anything: GLOBAL/STACK_GLOBAL resolve only a fixed
 * allow-list of names (OrderedDict, torch's tensor/parameter rebuild
 * functions, the typed storage classes, `_codecs.encode`), each mapped to a
 * small pure function here. Any other global is a FormatError naming it.
 * Tensors come out as `TorchTensorRef` descriptors (storage key, offset,
 * shape, strides); their bytes are read later, lazily, by pth.ts.
 *
 * Bounds: every length is checked against the bytes left, the stack and memo
 * only grow by one entry per input byte, and integers are capped at 64 bits.
 */
import { FormatError } from "../errors.js";

/** Element types of torch's typed storages (by the legacy class name torch pickles). */
export type TorchDType = "f16" | "bf16" | "f32" | "f64" | "i64" | "i32" | "i16" | "i8" | "u8" | "bool";

export const TORCH_STORAGE_TYPES: Readonly<Record<string, TorchDType>> = {
  HalfStorage: "f16",
  BFloat16Storage: "bf16",
  FloatStorage: "f32",
  DoubleStorage: "f64",
  LongStorage: "i64",
  IntStorage: "i32",
  ShortStorage: "i16",
  CharStorage: "i8",
  ByteStorage: "u8",
  BoolStorage: "bool",
};

export const TORCH_DTYPE_BYTES: Readonly<Record<TorchDType, number>> = {
  f16: 2, bf16: 2, f32: 4, f64: 8, i64: 8, i32: 4, i16: 2, i8: 1, u8: 1, bool: 1,
};

/** A storage referenced by a persistent id: its bytes are the zip entry `<prefix>/data/<key>`. */
export class TorchStorageRef {
  constructor(readonly dtype: TorchDType, readonly key: string, readonly location: string, readonly numel: number) {}
}

/** A tensor view of a storage, as `_rebuild_tensor_v2` describes it. */
export class TorchTensorRef {
  constructor(
    readonly storage: TorchStorageRef,
    readonly storageOffset: number, // in elements
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {}
}

/** A resolved allow-listed global (a class or function we know how to "call" safely). */
class PickleGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

/** The storage class (dtype marker) that appears inside a persistent id. */
class StorageType {
  constructor(readonly dtype: TorchDType) {}
}

/** A Python tuple (kept apart from lists so that argument lists are recognizable). */
export class PickleTuple {
  constructor(readonly items: PickleValue[]) {}
}

export type PickleKey = string | number | bigint | boolean | null;
export type PickleValue =
  | null | boolean | number | bigint | string | Uint8Array
  | PickleValue[] | PickleTuple | Map<PickleKey, PickleValue>
  | TorchTensorRef | TorchStorageRef | PickleGlobal | StorageType | Set<PickleKey>;

/** ISO-8859-1 as Python means it (WHATWG's "latin1" label is windows-1252, which remaps 0x80–0x9f). */
function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

const MARK = Symbol("mark");
type StackItem = PickleValue | typeof MARK;

const ALLOWED_GLOBALS = new Set([
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_tensor",
  "torch._utils._rebuild_parameter",
  "torch._utils._rebuild_parameter_with_state",
  "torch._tensor._rebuild_from_type_v2",
  "torch.Tensor",
  "torch.nn.parameter.Parameter",
  "_codecs.encode",
  "builtins.set",
  "builtins.frozenset",
]);

/**
 * Unpickles `data` (the bytes of `data.pkl`); `file` names the source in errors.
 */
export function unpickle(data: Uint8Array, file: string): PickleValue {
  return new Unpickler(data, file).run();
}

class Unpickler {
  private pos = 0;
  private stack: StackItem[] = [];
  private readonly metastack: StackItem[][] = [];
  private readonly memo = new Map<number, PickleValue>();
  private readonly view: DataView;
  private readonly text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

  constructor(private readonly data: Uint8Array, private readonly file: string) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  private fail(detail: string): never {
    throw new FormatError(this.file, `pickle: ${detail}`);
  }

  private need(n: number, what: string): void {
    if (!Number.isSafeInteger(n) || n < 0 || this.pos + n > this.data.length) {
      this.fail(`${what}: needs ${n} bytes at offset ${this.pos}, only ${this.data.length - this.pos} left`);
    }
  }
  private u8(): number { this.need(1, "opcode argument"); return this.data[this.pos++]!; }
  private u16(): number { this.need(2, "uint16"); const v = this.view.getUint16(this.pos, true); this.pos += 2; return v; }
  private u32(): number { this.need(4, "uint32"); const v = this.view.getUint32(this.pos, true); this.pos += 4; return v; }
  private i32(): number { this.need(4, "int32"); const v = this.view.getInt32(this.pos, true); this.pos += 4; return v; }
  private u64(what: string): number {
    this.need(8, what);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(this.data.length)) this.fail(`${what} ${v} exceeds the pickle's ${this.data.length} bytes`);
    return Number(v);
  }
  private bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const b = this.data.slice(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  private utf8(n: number, what: string): string {
    const b = this.bytes(n, what);
    try {
      return this.text.decode(b);
    } catch {
      return this.fail(`${what} at offset ${this.pos - n} is not valid UTF-8`);
    }
  }
  private line(what: string): string {
    const end = this.data.indexOf(0x0a, this.pos);
    if (end < 0) this.fail(`${what}: missing newline`);
    const s = latin1(this.data.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }

  private push(v: PickleValue): void { this.stack.push(v); }
  private pop(what: string): PickleValue {
    if (this.stack.length === 0) this.fail(`stack underflow at offset ${this.pos} (${what})`);
    const v = this.stack.pop()!;
    if (v === MARK) this.fail(`unexpected MARK on the stack at offset ${this.pos} (${what})`);
    return v;
  }
  private top(what: string): PickleValue {
    const v = this.stack[this.stack.length - 1];
    if (v === undefined || v === MARK) this.fail(`empty stack at offset ${this.pos} (${what})`);
    return v;
  }
  /** Pops everything down to the last MARK. */
  private popMark(what: string): PickleValue[] {
    const items = this.stack as PickleValue[];
    const prev = this.metastack.pop();
    if (!prev) this.fail(`no MARK for ${what} at offset ${this.pos}`);
    this.stack = prev;
    return items;
  }
  private memoPut(idx: number): void {
    if (this.memo.size > this.data.length) this.fail("memo grew beyond the pickle's size");
    this.memo.set(idx, this.top("memo put"));
  }
  private memoGet(idx: number): void {
    const v = this.memo.get(idx);
    if (v === undefined) this.fail(`memo key ${idx} is not defined (offset ${this.pos})`);
    this.push(v);
  }

  run(): PickleValue {
    const ops = this.data.length;
    while (this.pos < ops) {
      const at = this.pos;
      const op = this.data[this.pos++]!;
      switch (op) {
        case 0x80: { // PROTO
          const proto = this.u8();
          if (proto < 2 || proto > 5) this.fail(`unsupported pickle protocol ${proto} (expected 2..5)`);
          break;
        }
        case 0x95: this.u64("FRAME length"); break; // FRAME: a framing hint, ignored
        case 0x2e: { // STOP
          const v = this.pop("STOP");
          return v;
        }
        case 0x28: this.metastack.push(this.stack); this.stack = []; if (this.metastack.length > ops) this.fail("MARK nesting too deep"); break; // MARK
        case 0x7d: this.push(new Map()); break; // EMPTY_DICT
        case 0x5d: this.push([]); break; // EMPTY_LIST
        case 0x29: this.push(new PickleTuple([])); break; // EMPTY_TUPLE
        case 0x8f: this.push(new Set()); break; // EMPTY_SET
        case 0x74: this.push(new PickleTuple(this.popMark("TUPLE"))); break; // TUPLE
        case 0x85: this.push(new PickleTuple([this.pop("TUPLE1")])); break;
        case 0x86: { const b = this.pop("TUPLE2"), a = this.pop("TUPLE2"); this.push(new PickleTuple([a, b])); break; }
        case 0x87: { const c = this.pop("TUPLE3"), b = this.pop("TUPLE3"), a = this.pop("TUPLE3"); this.push(new PickleTuple([a, b, c])); break; }
        case 0x6c: this.push(this.popMark("LIST")); break; // LIST
        case 0x64: { // DICT
          const items = this.popMark("DICT");
          const d = new Map<PickleKey, PickleValue>();
          this.setItems(d, items);
          this.push(d);
          break;
        }
        case 0x71: this.memoPut(this.u8()); break; // BINPUT
        case 0x72: this.memoPut(this.u32()); break; // LONG_BINPUT
        case 0x94: this.memoPut(this.memo.size); break; // MEMOIZE
        case 0x68: this.memoGet(this.u8()); break; // BINGET
        case 0x6a: this.memoGet(this.u32()); break; // LONG_BINGET
        case 0x4a: this.push(this.i32()); break; // BININT
        case 0x4b: this.push(this.u8()); break; // BININT1
        case 0x4d: this.push(this.u16()); break; // BININT2
        case 0x8a: this.push(this.long(this.u8())); break; // LONG1
        case 0x8b: { // LONG4
          const n = this.i32();
          if (n < 0 || n > 8) this.fail(`LONG4 of ${n} bytes is out of range (at most 8 supported)`);
          this.push(this.long(n));
          break;
        }
        case 0x47: { this.need(8, "BINFLOAT"); const v = this.view.getFloat64(this.pos, false); this.pos += 8; this.push(v); break; }
        case 0x88: this.push(true); break; // NEWTRUE
        case 0x89: this.push(false); break; // NEWFALSE
        case 0x4e: this.push(null); break; // NONE
        case 0x58: this.push(this.utf8(this.u32(), "BINUNICODE")); break;
        case 0x8c: this.push(this.utf8(this.u8(), "SHORT_BINUNICODE")); break;
        case 0x8d: this.push(this.utf8(this.u64("BINUNICODE8 length"), "BINUNICODE8")); break;
        case 0x43: this.push(this.bytes(this.u8(), "SHORT_BINBYTES")); break;
        case 0x42: this.push(this.bytes(this.u32(), "BINBYTES")); break;
        case 0x8e: this.push(this.bytes(this.u64("BINBYTES8 length"), "BINBYTES8")); break;
        case 0x55: this.push(latin1(this.bytes(this.u8(), "SHORT_BINSTRING"))); break;
        case 0x54: this.push(latin1(this.bytes(this.u32(), "BINSTRING"))); break;
        case 0x63: { // GLOBAL "module\nname\n"
          const mod = this.line("GLOBAL module");
          const name = this.line("GLOBAL name");
          this.push(this.resolveGlobal(mod, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.pop("STACK_GLOBAL"), mod = this.pop("STACK_GLOBAL");
          if (typeof mod !== "string" || typeof name !== "string") this.fail("STACK_GLOBAL needs two strings");
          this.push(this.resolveGlobal(mod, name));
          break;
        }
        case 0x52: { // REDUCE
          const args = this.pop("REDUCE args"), fn = this.pop("REDUCE callable");
          if (!(args instanceof PickleTuple)) this.fail(`REDUCE arguments must be a tuple (offset ${at})`);
          this.push(this.call(fn, args.items));
          break;
        }
        case 0x81: { // NEWOBJ
          const args = this.pop("NEWOBJ args"), cls = this.pop("NEWOBJ class");
          if (!(args instanceof PickleTuple)) this.fail(`NEWOBJ arguments must be a tuple (offset ${at})`);
          this.push(this.call(cls, args.items));
          break;
        }
        case 0x62: { // BUILD: set state on an object; state of dicts/tensors is metadata we do not need
          this.pop("BUILD state");
          const obj = this.top("BUILD");
          if (!(obj instanceof Map || obj instanceof TorchTensorRef)) this.fail(`BUILD on an unsupported object at offset ${at}`);
          break;
        }
        case 0x73: { // SETITEM
          const v = this.pop("SETITEM"), k = this.pop("SETITEM");
          this.setItems(this.top("SETITEM"), [k, v]);
          break;
        }
        case 0x75: { const items = this.popMark("SETITEMS"); this.setItems(this.top("SETITEMS"), items); break; }
        case 0x61: { const v = this.pop("APPEND"); this.appendTo(this.top("APPEND"), [v]); break; }
        case 0x65: { const items = this.popMark("APPENDS"); this.appendTo(this.top("APPENDS"), items); break; }
        case 0x90: { // ADDITEMS
          const items = this.popMark("ADDITEMS");
          const s = this.top("ADDITEMS");
          if (!(s instanceof Set)) this.fail("ADDITEMS on a non-set");
          for (const it of items) s.add(this.key(it));
          break;
        }
        case 0x91: this.push(new Set(this.popMark("FROZENSET").map((v) => this.key(v)))); break;
        case 0x51: this.push(this.persistentLoad(this.pop("BINPERSID"))); break; // BINPERSID
        case 0x30: this.pop("POP"); break; // POP
        case 0x31: this.popMark("POP_MARK"); break; // POP_MARK
        case 0x32: this.push(this.top("DUP")); break; // DUP
        default:
          this.fail(`unsupported opcode 0x${op.toString(16).padStart(2, "0")} at offset ${at} (torch state dicts use pickle protocol 2)`);
      }
      if (this.stack.length > ops) this.fail("stack grew beyond the pickle's size");
    }
    return this.fail("missing STOP opcode (truncated pickle)");
  }

  /** A little-endian two's-complement integer of n ≤ 8 bytes. */
  private long(n: number): number | bigint {
    if (n > 8) this.fail(`LONG1 of ${n} bytes is out of range (at most 8 supported)`);
    const b = this.bytes(n, "LONG1");
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (n > 0 && b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  private key(v: PickleValue): PickleKey {
    if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return v;
    if (v instanceof PickleTuple) return this.fail("tuple dictionary keys are not supported");
    return this.fail("dictionary keys must be strings or numbers");
  }

  private setItems(target: PickleValue, items: PickleValue[]): void {
    if (!(target instanceof Map)) this.fail(`SETITEM(S) on a non-dict at offset ${this.pos}`);
    if (items.length % 2) this.fail("SETITEMS with an odd number of items");
    for (let i = 0; i < items.length; i += 2) target.set(this.key(items[i]!), items[i + 1]!);
  }

  private appendTo(target: PickleValue, items: PickleValue[]): void {
    if (!Array.isArray(target)) this.fail(`APPEND(S) on a non-list at offset ${this.pos}`);
    for (const it of items) target.push(it);
  }

  private resolveGlobal(mod: string, name: string): PickleValue {
    if (mod === "torch" && name in TORCH_STORAGE_TYPES) return new StorageType(TORCH_STORAGE_TYPES[name]!);
    const q = `${mod}.${name}`;
    if (!ALLOWED_GLOBALS.has(q)) {
      this.fail(`refusing global "${q}": only torch state dicts (tensors, OrderedDict) are read, and nothing is executed`);
    }
    return new PickleGlobal(mod, name);
  }

  /** persistent id ('storage', StorageType, key, location, numel). */
  private persistentLoad(pid: PickleValue): TorchStorageRef {
    if (!(pid instanceof PickleTuple) || pid.items.length < 5 || pid.items[0] !== "storage") {
      this.fail("persistent id must be a tuple ('storage', type, key, location, numel)");
    }
    const [, type, key, location, numel] = pid.items;
    if (!(type instanceof StorageType)) this.fail("persistent id: storage type must be a torch *Storage class");
    if (typeof key !== "string" || !/^[A-Za-z0-9_.-]{1,64}$/.test(key)) this.fail(`persistent id: bad storage key ${JSON.stringify(String(key))}`);
    if (typeof numel !== "number" || !Number.isSafeInteger(numel) || numel < 0) this.fail(`persistent id: bad element count for storage ${key}`);
    return new TorchStorageRef(type.dtype, key, typeof location === "string" ? location : "cpu", numel);
  }

  private call(fn: PickleValue, args: PickleValue[]): PickleValue {
    if (!(fn instanceof PickleGlobal)) this.fail("REDUCE/NEWOBJ on something that is not an allowed global");
    switch (fn.qualified) {
      case "collections.OrderedDict":
        if (args.length !== 0) this.fail("OrderedDict(...) with arguments is not supported");
        return new Map();
      case "torch._utils._rebuild_tensor_v2":
      case "torch._utils._rebuild_tensor":
        return this.rebuildTensor(args);
      case "torch._utils._rebuild_parameter":
      case "torch._utils._rebuild_parameter_with_state":
        if (!(args[0] instanceof TorchTensorRef)) this.fail("_rebuild_parameter: first argument must be a tensor");
        return args[0];
      case "torch._tensor._rebuild_from_type_v2": {
        // (func, new_type, args, state): a tensor subclass; the data is func(*args).
        const [inner, , innerArgs] = args;
        if (!(innerArgs instanceof PickleTuple)) this.fail("_rebuild_from_type_v2: arguments must be a tuple");
        return this.call(inner ?? null, innerArgs.items);
      }
      case "_codecs.encode": {
        const [s] = args;
        if (typeof s !== "string") this.fail("_codecs.encode needs a string");
        return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff); // protocol 2 pickles bytes as latin-1 text
      }
      case "builtins.set":
      case "builtins.frozenset": {
        const [items] = args;
        return new Set(Array.isArray(items) ? items.map((v) => this.key(v)) : []);
      }
      default:
        return this.fail(`global "${fn.qualified}" cannot be called here`);
    }
  }

  private rebuildTensor(args: PickleValue[]): TorchTensorRef {
    const [storage, offset, size, stride] = args;
    if (!(storage instanceof TorchStorageRef)) this.fail("_rebuild_tensor: first argument must be a storage");
    const ints = (v: PickleValue | undefined, what: string): number[] => {
      if (!(v instanceof PickleTuple)) this.fail(`_rebuild_tensor: ${what} must be a tuple`);
      if (v.items.length > 8) this.fail(`_rebuild_tensor: ${what} has ${v.items.length} dimensions (at most 8)`);
      return v.items.map((d) => {
        if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) this.fail(`_rebuild_tensor: ${what} entries must be non-negative integers`);
        return d;
      });
    };
    const shape = ints(size, "size");
    const strides = ints(stride, "stride");
    if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0) this.fail("_rebuild_tensor: bad storage offset");
    if (strides.length !== shape.length) this.fail(`_rebuild_tensor: size [${shape}] and stride [${strides}] differ in rank`);
    // The last element reached must lie inside the storage.
    let last = offset;
    let empty = false;
    for (let i = 0; i < shape.length; i++) {
      if (shape[i] === 0) empty = true;
      else last += (shape[i]! - 1) * strides[i]!;
    }
    if (!empty && last >= storage.numel) {
      this.fail(`tensor view (offset ${offset}, size [${shape}], stride [${strides}]) reaches element ${last} of storage ${storage.key}, which has ${storage.numel}`);
    }
    return new TorchTensorRef(storage, offset, shape, strides);
  }
}
