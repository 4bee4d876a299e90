/**
 * A tiny WebAssembly assembler: just enough of the binary format (types, one
 * imported shared memory, functions, exports) and of the instruction set
 * (locals, i32 arithmetic, loops, SIMD loads/stores/arithmetic) to emit the
 * matmul kernels in wasm-kernels.ts. No toolchain is installed on the build
 * machines, so the module is assembled from JavaScript at startup (< 1 ms).
 */
import * as v8 from "node:v8";
import { wasm } from "./wasm-api.js";

export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;
export const F64 = 0x7c;
export const I64 = 0x7e;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function str(s: string): number[] {
  const b = [...Buffer.from(s, "utf8")];
  return [...uleb(b.length), ...b];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

/** f32x4.relaxed_madd (relaxed SIMD): a·b + c, fused where the CPU has FMA. */
const RELAXED_MADD = 0x105;

/** Whether a module holding f32x4.relaxed_madd validates: (func (result v128) (relaxed_madd 0 0 0)). */
function maddValidates(): boolean {
  const zero = [0xfd, 0x0c, ...new Array<number>(16).fill(0)]; // v128.const 0
  const body = [0, ...zero, ...zero, ...zero, 0xfd, ...uleb(RELAXED_MADD), 0x0b];
  const bytes = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 0, 1, V128]), ...section(3, [1, 0]), ...section(10, [1, ...uleb(body.length), ...body])];
  return wasm?.validate(new Uint8Array(bytes)) ?? false;
}

let fused: boolean | undefined;

/**
 * Whether the kernels multiply-accumulate with f32x4.relaxed_madd (one fused
 * vfmadd on x86 with FMA3) rather than f32x4.mul + f32x4.add: decided once per
 * process, so every module assembled here (the one the worker threads are
 * handed included) makes the same choice and a product's bits do not depend
 * on which thread computed it. Relaxed SIMD is on by default from Node 22;
 * Node 20 (V8 11.3) has it behind a flag, which V8 reads when it validates and
 * compiles, so turning it on here, before the first kernel module is built,
 * is enough (worker threads share the process's flags).
 */
export function fusedMultiplyAdd(): boolean {
  if (fused !== undefined) return fused;
  fused = maddValidates();
  if (!fused && wasm) {
    try {
      v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
    } catch {
      // a runtime without V8 flags: keep mul + add
    }
    fused = maddValidates();
  }
  return fused;
}

/** Instruction emitter for one function body. Locals are numbered params first. */
export class Code {
  readonly bytes: number[] = [];
  private readonly localTypes: number[] = [];

  constructor(private readonly numParams: number) {}

  /** Declares a new local of `type`, returns its index. */
  local(type: number): number {
    this.localTypes.push(type);
    return this.numParams + this.localTypes.length - 1;
  }

  private op(...b: number[]): this {
    this.bytes.push(...b);
    return this;
  }

  private simd(opcode: number, ...imm: number[]): this {
    return this.op(0xfd, ...uleb(opcode), ...imm);
  }

  get(i: number): this { return this.op(0x20, ...uleb(i)); }
  set(i: number): this { return this.op(0x21, ...uleb(i)); }
  tee(i: number): this { return this.op(0x22, ...uleb(i)); }
  i32(v: number): this { return this.op(0x41, ...sleb(v | 0)); }
  add(): this { return this.op(0x6a); }
  sub(): this { return this.op(0x6b); }
  mul(): this { return this.op(0x6c); }
  shl(): this { return this.op(0x74); }
  divU(): this { return this.op(0x6e); }
  remU(): this { return this.op(0x70); }
  and32(): this { return this.op(0x71); }
  geU(): this { return this.op(0x4f); }
  gtU(): this { return this.op(0x4b); }
  call(fn: number): this { return this.op(0x10, ...uleb(fn)); }
  f32add(): this { return this.op(0x92); }
  f32store(offset = 0): this { return this.op(0x38, 2, ...uleb(offset)); }
  f32load(offset = 0): this { return this.op(0x2a, 2, ...uleb(offset)); }

  /** Pushes local a + local b (or + constant). */
  sum(a: number, b: number): this { return this.get(a).get(b).add(); }
  /** local dst = local dst + constant. */
  inc(dst: number, by: number): this { return this.get(dst).i32(by).add().set(dst); }

  /** `for (; i < end; i += step) body()` as block/loop; `end` is a local. */
  loop(i: number, end: number, step: number | (() => void), body: () => void): this {
    this.op(0x02, 0x40, 0x03, 0x40); // block, loop
    this.get(i).get(end).geU().op(0x0d, 1); // br_if 1 (exit) when i >= end
    body();
    if (typeof step === "number") this.inc(i, step);
    else step();
    this.op(0x0c, 0, 0x0b, 0x0b); // br 0; end loop; end block
    return this;
  }

  /** `if (cond on stack) body()`. */
  if(body: () => void): this {
    this.op(0x04, 0x40);
    body();
    return this.op(0x0b);
  }

  /** `if (cond on stack) then() else otherwise()`. */
  ifElse(then: () => void, otherwise: () => void): this {
    this.op(0x04, 0x40);
    then();
    this.op(0x05);
    otherwise();
    return this.op(0x0b);
  }

  /** Returns from the function (with the value on the stack, if it has a result). */
  ret(): this { return this.op(0x0f); }
  /** Pops cond, b, a; pushes cond ? a : b. */
  select(): this { return this.op(0x1b); }

  // i32 comparisons beyond the unsigned ones above
  eq(): this { return this.op(0x46); }
  eqz(): this { return this.op(0x45); }
  ltU(): this { return this.op(0x49); }
  geS(): this { return this.op(0x4e); }

  // Scalar float64 and int64, for the kernels that must equal JavaScript's double arithmetic bit for bit (wasm-exp.ts).
  f64const(v: number): this {
    const buf = Buffer.alloc(8);
    buf.writeDoubleLE(v);
    return this.op(0x44, ...buf);
  }
  f32const(v: number): this {
    const buf = Buffer.alloc(4);
    buf.writeFloatLE(v);
    return this.op(0x43, ...buf);
  }
  i64const(v: number): this { return this.op(0x42, ...sleb(v)); }
  f64load(offset = 0): this { return this.op(0x2b, 3, ...uleb(offset)); }
  f64store(offset = 0): this { return this.op(0x39, 3, ...uleb(offset)); }
  f64add(): this { return this.op(0xa0); }
  f64sub(): this { return this.op(0xa1); }
  f64mul(): this { return this.op(0xa2); }
  f64div(): this { return this.op(0xa3); }
  /** f64.sqrt: correctly rounded, as Math.sqrt. */
  f64sqrt(): this { return this.op(0x9f); }
  f64eq(): this { return this.op(0x61); }
  f64ne(): this { return this.op(0x62); }
  f64lt(): this { return this.op(0x63); }
  f64gt(): this { return this.op(0x64); }
  f32eq(): this { return this.op(0x5b); }
  /** f64.promote_f32: exact, as JavaScript reads a Float32Array element. */
  f64promote(): this { return this.op(0xbb); }
  /** f32.demote_f64: rounded to nearest, as JavaScript stores into a Float32Array (Math.fround). */
  f32demote(): this { return this.op(0xb6); }
  f64convertI32(): this { return this.op(0xb7); }
  /** i32.trunc_f64_s: toward zero, as JavaScript's `x | 0` for |x| < 2³¹. */
  i32truncF64(): this { return this.op(0xaa); }
  i32wrapI64(): this { return this.op(0xa7); }
  i64extendI32(): this { return this.op(0xac); }
  i64add(): this { return this.op(0x7c); }
  i64shl(): this { return this.op(0x86); }
  i64shrU(): this { return this.op(0x88); }
  i64reinterpretF64(): this { return this.op(0xbd); }
  f64reinterpretI64(): this { return this.op(0xbf); }

  // float64x2 / int64x2 SIMD (the two-lane exp, wasm-exp.ts)
  /** v128.load64_zero: one f64 into lane 0, lane 1 zero. */
  v128load64zero(offset = 0): this { return this.simd(0x5d, 3, ...uleb(offset)); }
  f64x2splat(): this { return this.simd(0x14); }
  f64x2extract(lane: number): this { return this.simd(0x21, lane); }
  f64x2replace(lane: number): this { return this.simd(0x22, lane); }
  f64x2const(a: number, b = a): this {
    const buf = Buffer.alloc(16);
    buf.writeDoubleLE(a, 0);
    buf.writeDoubleLE(b, 8);
    return this.simd(0x0c, ...buf);
  }
  i64x2const(a: number): this {
    const buf = Buffer.alloc(16);
    buf.writeBigInt64LE(BigInt(a), 0);
    buf.writeBigInt64LE(BigInt(a), 8);
    return this.simd(0x0c, ...buf);
  }
  f64x2add(): this { return this.simd(0xf0); }
  f64x2sub(): this { return this.simd(0xf1); }
  f64x2mul(): this { return this.simd(0xf2); }
  f64x2div(): this { return this.simd(0xf3); }
  f64x2eq(): this { return this.simd(0x47); }
  i64x2shl(): this { return this.simd(0xcb); }
  i64x2shrU(): this { return this.simd(0xcd); }
  i64x2add(): this { return this.simd(0xce); }
  i64x2sub(): this { return this.simd(0xd1); }
  i64x2ltS(): this { return this.simd(0xd8); }
  i64x2gtS(): this { return this.simd(0xd9); }
  i64x2geS(): this { return this.simd(0xdb); }
  /** v128.bitselect: pops c, b, a; pushes (a & c) | (b & ~c). */
  bitselect(): this { return this.simd(0x52); }
  /** i32x4.trunc_sat_f64x2_s_zero: two f64 lanes to i32 toward zero (lanes 2, 3 zero). */
  i32x4truncSatF64x2(): this { return this.simd(0xfc); }
  /** f64x2.convert_low_i32x4_s */
  f64x2convertLowI32x4(): this { return this.simd(0xfe); }
  /** f64x2.promote_low_f32x4 */
  f64x2promoteLow(): this { return this.simd(0x5f); }

  // SIMD (memarg: alignment log2, offset)
  v128load(offset = 0): this { return this.simd(0x00, 4, ...uleb(offset)); }
  load16x4s(offset = 0): this { return this.simd(0x03, 3, ...uleb(offset)); }
  load16x4u(offset = 0): this { return this.simd(0x04, 3, ...uleb(offset)); }
  v128store(offset = 0): this { return this.simd(0x0b, 4, ...uleb(offset)); }
  i32x4const(a: number, b = a, c = a, d = a): this {
    const buf = Buffer.alloc(16);
    [a, b, c, d].forEach((v, i) => buf.writeInt32LE(v | 0, i * 4));
    return this.simd(0x0c, ...buf);
  }
  f32x4extract(lane: number): this { return this.simd(0x1f, lane); }
  f32x4splat(): this { return this.simd(0x13); }
  and(): this { return this.simd(0x4e); }
  or(): this { return this.simd(0x50); }
  anyTrue(): this { return this.simd(0x53); }
  i16x8eq(): this { return this.simd(0x2d); }
  i16x8const(v: number): this {
    const buf = Buffer.alloc(16);
    for (let i = 0; i < 8; i++) buf.writeUInt16LE(v & 0xffff, i * 2);
    return this.simd(0x0c, ...buf);
  }
  i32x4shl(): this { return this.simd(0xab); }
  extendLowS(): this { return this.simd(0xa7); }
  extendHighS(): this { return this.simd(0xa8); }
  extendLowU(): this { return this.simd(0xa9); }
  extendHighU(): this { return this.simd(0xaa); }
  f32x4add(): this { return this.simd(0xe4); }
  f32x4mul(): this { return this.simd(0xe6); }
  f32x4sub(): this { return this.simd(0xe5); }
  f32x4div(): this { return this.simd(0xe7); }
  /**
   * local acc = acc + a·b, a and b the two f32x4 `operands` pushes: one fused
   * multiply-add (rounded once) where fusedMultiplyAdd(), else mul then add
   * (rounded twice). The kernels' multiply-accumulates all go through here.
   */
  mulAdd(acc: number, operands: () => void): this {
    if (fusedMultiplyAdd()) {
      operands();
      this.get(acc).simd(RELAXED_MADD);
    } else {
      this.get(acc);
      operands();
      this.f32x4mul().f32x4add();
    }
    return this.set(acc);
  }
  f32x4min(): this { return this.simd(0xe8); }
  f32x4max(): this { return this.simd(0xe9); }
  /** f32x4.pmin: b < a ? b : a per lane (one minps; NaN in a passes through). */
  f32x4pmin(): this { return this.simd(0xea); }
  /** f32x4.pmax: a < b ? b : a per lane (one maxps; NaN in a passes through). */
  f32x4pmax(): this { return this.simd(0xeb); }
  f32x4neg(): this { return this.simd(0xe1); }
  f32x4nearest(): this { return this.simd(0x6a); }
  /** i32x4.trunc_sat_f32x4_s */
  i32x4truncF32(): this { return this.simd(0xf8); }
  i32x4add(): this { return this.simd(0xae); }
  /** v128.const with the same float32 in all four lanes. */
  f32x4const(v: number): this {
    const buf = Buffer.alloc(16);
    for (let i = 0; i < 4; i++) buf.writeFloatLE(v, i * 4);
    return this.simd(0x0c, ...buf);
  }

  // Byte-level ops for the quantized-block kernels (wasm-quant.ts).
  i32load(offset = 0): this { return this.op(0x28, 0, ...uleb(offset)); }
  i32load8u(offset = 0): this { return this.op(0x2d, 0, ...uleb(offset)); }
  i32load16u(offset = 0): this { return this.op(0x2f, 0, ...uleb(offset)); }
  shrU(): this { return this.op(0x76); }
  shrS(): this { return this.op(0x75); }
  or32(): this { return this.op(0x72); }
  f32mul(): this { return this.op(0x94); }
  f32sub(): this { return this.op(0x93); }
  f32div(): this { return this.op(0x95); }
  i32x4extract(lane: number): this { return this.simd(0x1b, lane); }
  i16x8extaddPairwiseI8S(): this { return this.simd(0x7c); }
  f32convertI32(): this { return this.op(0xb2); }
  /** v128.const from 16 bytes. */
  bytes16(b: readonly number[]): this { return this.simd(0x0c, ...b.map((v) => v & 0xff)); }
  i8x16splat(): this { return this.simd(0x0f); }
  i32x4splat(): this { return this.simd(0x11); }
  i8x16swizzle(): this { return this.simd(0x0e); }
  i8x16shl(): this { return this.simd(0x6b); }
  i8x16shrU(): this { return this.simd(0x6d); }
  i8x16sub(): this { return this.simd(0x71); }
  i8x16minU(): this { return this.simd(0x77); }
  i16x8extendLowS(): this { return this.simd(0x87); }
  i16x8extendHighS(): this { return this.simd(0x88); }
  f32x4convertI32(): this { return this.simd(0xfa); }
  /** i32x4.dot_i16x8_s: pairwise products of i16 lanes summed into i32 lanes. */
  i32x4dotI16(): this { return this.simd(0xba); }
  i16x8extmulLowS(): this { return this.simd(0x9c); }
  i16x8extmulHighS(): this { return this.simd(0x9d); }
  i16x8add(): this { return this.simd(0x8e); }
  i32x4extaddPairwiseI16S(): this { return this.simd(0x7e); }

  /** Pops a v128 and pushes the f32 sum of its four lanes (((l0 + l1) + l2) + l3). */
  hsum(tmp: number): this {
    this.set(tmp);
    return this.get(tmp).f32x4extract(0).get(tmp).f32x4extract(1).f32add()
      .get(tmp).f32x4extract(2).f32add().get(tmp).f32x4extract(3).f32add();
  }

  /** The function body: locals declaration + instructions + end. */
  encode(): number[] {
    const groups: number[][] = [];
    for (const t of this.localTypes) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]!++;
      else groups.push([1, t]);
    }
    const body = [...uleb(groups.length), ...groups.flatMap(([n, t]) => [...uleb(n!), t!]), ...this.bytes, 0x0b];
    return [...uleb(body.length), ...body];
  }
}

export interface FunctionDef {
  name?: string;
  params: number[];
  results: number[];
  code: Code;
}

/** A module importing `env.memory` (shared, up to `maxPages`) with the given functions. */
export function assembleModule(functions: FunctionDef[], minPages: number, maxPages: number): Uint8Array {
  const types = functions.map((f) => [0x60, ...uleb(f.params.length), ...f.params, ...uleb(f.results.length), ...f.results]);
  const typeSec = section(1, [...uleb(types.length), ...types.flat()]);
  const importSec = section(2, [...uleb(1), ...str("env"), ...str("memory"), 0x02, 0x03, ...uleb(minPages), ...uleb(maxPages)]);
  const funcSec = section(3, [...uleb(functions.length), ...functions.flatMap((_, i) => uleb(i))]);
  const exported = functions.map((f, i) => [f.name, i] as const).filter(([n]) => n !== undefined);
  const exportSec = section(7, [...uleb(exported.length), ...exported.flatMap(([n, i]) => [...str(n!), 0x00, ...uleb(i)])]);
  const codeSec = section(10, [...uleb(functions.length), ...functions.flatMap((f) => f.code.encode())]);
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...typeSec, ...importSec, ...funcSec, ...exportSec, ...codeSec]);
}
