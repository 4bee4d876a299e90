/**
 * Worker-pool tasks: a kernel split over the engine's threads by units (rows,
 * columns, groups of four elements). A task function is (params, first, end,
 * thread): it reads the problem from the parameter block at `params` (i32
 * fields, and floats where a kernel takes them: readParams) and runs its kernel on units
 * first..end−1, which write their own part of the output only. So every
 * output element is computed exactly as on one thread, whatever the split.
 * The pool (wasm-pool.ts) calls them by their index in TASKS.
 */
import { Code, F32, F64, I32, type FunctionDef } from "./wasm-asm.js";

/** Every task function's name, in the order jobs name them (wasm-pool.ts). */
export const TASKS = ["attn_fwd_groups", "attn_bwd_groups", "gemm_nn_rows", "gemm_tn_cols", "silu_mul_span", "silu_mul_backward_span",
  "softmax_rows", "rms_norm_rows"] as const;
export type TaskName = (typeof TASKS)[number];

/**
 * Each task's parameter block fields (4 bytes each, in order; `s` a float32, `scale` and `eps` float64s over
 * their own and the next field; the attention tasks are in wasm-attention-forward.ts and wasm-attention-backward.ts,
 * softmax_rows in wasm-softmax-rows.ts, rms_norm_rows in wasm-elementwise.ts).
 */
export const TASK_PARAMS = {
  attn_fwd_groups: ["Q", "K", "V", "P", "Os", "out", "mask", "R", "S", "D", "T", "kvHeads", "kStride", "vStride", "queryOffset", "pPerGroup",
    "scale", "scaleHigh"],
  attn_bwd_groups: ["P", "dO", "Q", "K", "V", "dQ", "dK", "dV", "dS", "rowScale", "R", "S", "D", "parts", "kvHeads"],
  gemm_nn_rows: ["a", "M", "J", "b", "N", "s", "out"],
  gemm_tn_cols: ["a", "R", "S", "b", "D", "out"],
  silu_mul_span: ["g", "u", "out"],
  silu_mul_backward_span: ["g", "u", "d"],
  softmax_rows: ["x", "V", "probs", "stats"],
  rms_norm_rows: ["x", "w", "out", "rstd", "H", "eps", "epsHigh"],
} as const;

/** Fields that hold a float64 over their own 4 bytes and the next field's, `<name>High`; `s` holds a float32. */
export const FLOAT64_FIELDS: readonly string[] = ["scale", "eps"];
export type HighField = "scaleHigh" | "epsHigh";
type Fields<T extends keyof typeof TASK_PARAMS> = Exclude<(typeof TASK_PARAMS)[T][number], HighField>;

/**
 * Emits the loads of task `task`'s parameter block at `params` into new locals of `c`, one per field
 * (float64 fields as F64, `s` as F32, the rest I32), and returns them by name.
 */
export function readParams<T extends keyof typeof TASK_PARAMS>(c: Code, task: T, params: number): Record<Fields<T>, number> {
  const locals: Record<string, number> = {};
  (TASK_PARAMS[task] as readonly string[]).forEach((name, i) => {
    if (name.endsWith("High")) return;
    if (FLOAT64_FIELDS.includes(name)) c.get(params).f64load(4 * i).set(locals[name] = c.local(F64));
    else if (name === "s") c.get(params).f32load(4 * i).set(locals[name] = c.local(F32));
    else c.get(params).i32load(4 * i).set(locals[name] = c.local(I32));
  });
  return locals as Record<Fields<T>, number>;
}

/** The field's offset in its task's parameter block. */
function field<T extends keyof typeof TASK_PARAMS>(task: T, name: (typeof TASK_PARAMS)[T][number]): number {
  return 4 * (TASK_PARAMS[task] as readonly string[]).indexOf(name);
}

/** A task's function: `body(c, params, first, end)` emits the kernel call for units first..end−1. */
function taskFn(name: TaskName, body: (c: Code, params: number, first: number, end: number) => void): FunctionDef {
  const c = new Code(4);
  body(c, 0, 1, 2);
  return { name, params: [I32, I32, I32, I32], results: [], code: c };
}

/** gemm_nn_rows: out[m] += s · a[m] · b for rows m of a [M, J] (gemm_nn at index `gemmNn`). */
export function gemmNnRowsFn(gemmNn: number): FunctionDef {
  const f = (n: (typeof TASK_PARAMS)["gemm_nn_rows"][number]) => field("gemm_nn_rows", n);
  return taskFn("gemm_nn_rows", (c, p, first, end) => {
    const J = c.local(I32), N = c.local(I32);
    c.get(p).i32load(f("J")).set(J).get(p).i32load(f("N")).set(N);
    c.get(p).i32load(f("a")).get(first).get(J).mul().i32(2).shl().add(); // a + first·J floats
    c.get(end).get(first).sub().get(J).get(p).i32load(f("b")).get(N).get(p).f32load(f("s"));
    c.get(p).i32load(f("out")).get(first).get(N).mul().i32(2).shl().add().call(gemmNn);
  });
}

/** gemm_tn_cols: rows s of out [S, D] += a[:, s]ᵀ · b for columns s of a [R, S] (gemm_tn at index `gemmTn`). */
export function gemmTnColsFn(gemmTn: number): FunctionDef {
  const f = (n: (typeof TASK_PARAMS)["gemm_tn_cols"][number]) => field("gemm_tn_cols", n);
  return taskFn("gemm_tn_cols", (c, p, first, end) => {
    c.get(p).i32load(f("a")).get(first).i32(2).shl().add(); // column `first` of a
    c.get(p).i32load(f("R")).get(end).get(first).sub().get(p).i32load(f("S")); // its rows stay S floats apart
    c.get(p).i32load(f("b")).get(p).i32load(f("D"));
    c.get(p).i32load(f("out")).get(first).get(p).i32load(f("D")).mul().i32(2).shl().add().call(gemmTn);
  });
}

/** An elementwise kernel k(x, y, z, count) on groups of four elements first..end−1 of its three arrays. */
function spanFn(name: "silu_mul_span" | "silu_mul_backward_span", kernel: number): FunctionDef {
  return taskFn(name, (c, p, first, end) => {
    for (let i = 0; i < 3; i++) c.get(p).i32load(4 * i).get(first).i32(4).shl().add();
    c.get(end).get(first).sub().i32(2).shl().call(kernel);
  });
}

/** silu_mul_span: silu_mul (at index `siluMul`) on groups of four elements. */
export const siluMulSpanFn = (siluMul: number): FunctionDef => spanFn("silu_mul_span", siluMul);

/** silu_mul_backward_span: silu_mul_backward (at index `siluMulBackward`) on groups of four elements. */
export const siluMulBackwardSpanFn = (siluMulBackward: number): FunctionDef => spanFn("silu_mul_backward_span", siluMulBackward);
