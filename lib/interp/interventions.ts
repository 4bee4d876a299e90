/**
 * Ready-made intervention hooks for runWithHooks / runWithCache:
 *  - `ablateHead`: zero (or mean-) ablate one head's output z before o_proj;
 *  - `patchActivation`: copy values from another run's cache (activation
 *    patching), optionally only at some positions / heads;
 *  - `steer`: add a vector to a residual-stream point (activation steering).
 * Each returns a HookSpec; hooks never modify the tensor they are given in
 * place beyond their own copy, so the caller's cached tensors stay intact.
 */
import { InputError } from "../errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { actName } from "./hook-points.js";
import { cloneTensor } from "./math.js";
import type { HookSpec } from "./run.js";

/** Validates a list of positions against T. */
function checkPositions(positions: readonly number[] | undefined, T: number, what: string): readonly number[] | undefined {
  if (!positions) return undefined;
  for (const p of positions) if (!Number.isInteger(p) || p < 0 || p >= T) throw new InputError(`${what}: position ${p} out of range 0..${T - 1}`);
  return positions;
}

/**
 * Ablates head `head` of layer `layer` at its z ([B, heads, T, head_dim],
 * the head's output before o_proj): "zero" sets it to 0 (the same as
 * removing the head's columns from o_proj); "mean" replaces it by its mean
 * over positions (a softer ablation that keeps the average contribution).
 */
export function ablateHead(layer: number, head: number, mode: "zero" | "mean" = "zero", positions?: readonly number[]): HookSpec {
  const name = actName("self_attn.z", layer);
  return {
    name,
    fn: (z) => {
      if (z.rank !== 4) throw new InputError(`${name}: expected [B, heads, T, head_dim], got [${z.shape.join(", ")}]`);
      const [B, H, T, D] = z.shape as [number, number, number, number];
      if (!Number.isInteger(head) || head < 0 || head >= H) throw new InputError(`ablateHead: head ${head} out of range 0..${H - 1} at layer ${layer}`);
      const pos = checkPositions(positions, T, "ablateHead") ?? Array.from({ length: T }, (_, t) => t);
      const out = cloneTensor(z);
      const d = out.data as Float32Array;
      for (let b = 0; b < B; b++) {
        const base = (b * H + head) * T * D;
        const mean = new Float32Array(D);
        if (mode === "mean") {
          for (let t = 0; t < T; t++) for (let i = 0; i < D; i++) mean[i]! += d[base + t * D + i]! / T;
        }
        for (const t of pos) d.set(mean, base + t * D);
      }
      return out;
    },
  };
}

export interface PatchOptions {
  /** Only these positions (default: all). */
  positions?: readonly number[];
  /** For per-head points (q/k/v/z/pattern): only these heads (default: all). */
  heads?: readonly number[];
}

/**
 * Replaces the activation at `name` by `source` (same shape: typically the
 * clean run's cached value), at the chosen positions and heads only.
 */
export function patchActivation(name: string, source: Tensor, options: PatchOptions = {}): HookSpec {
  return {
    name,
    fn: (value) => {
      if (value.shape.join() !== source.shape.join()) {
        throw new InputError(`patch ${name}: source [${source.shape.join(", ")}] does not match the activation [${value.shape.join(", ")}] (clean and corrupted inputs must have the same length)`);
      }
      if (!options.positions && !options.heads) return cloneTensor(source);
      const out = cloneTensor(value);
      const d = out.data as Float32Array;
      const s = source.toFloat32();
      if (value.rank === 3) {
        if (options.heads) throw new InputError(`patch ${name}: \`heads\` only applies to per-head points`);
        const [B, T, X] = value.shape as [number, number, number];
        const pos = checkPositions(options.positions, T, `patch ${name}`)!;
        for (let b = 0; b < B; b++) for (const t of pos) d.set(s.subarray((b * T + t) * X, (b * T + t + 1) * X), (b * T + t) * X);
        return out;
      }
      if (value.rank === 4) {
        const [B, H, T, X] = value.shape as [number, number, number, number];
        const heads = options.heads ?? Array.from({ length: H }, (_, h) => h);
        for (const h of heads) if (!Number.isInteger(h) || h < 0 || h >= H) throw new InputError(`patch ${name}: head ${h} out of range 0..${H - 1}`);
        const pos = checkPositions(options.positions, T, `patch ${name}`) ?? Array.from({ length: T }, (_, t) => t);
        for (let b = 0; b < B; b++) {
          for (const h of heads) {
            for (const t of pos) {
              const off = ((b * H + h) * T + t) * X;
              d.set(s.subarray(off, off + X), off);
            }
          }
        }
        return out;
      }
      throw new InputError(`patch ${name}: unexpected activation rank ${value.rank}`);
    },
  };
}

/**
 * Adds `scale * vector` to a residual-stream point ([B, T, hidden]) at the
 * given positions (default: all): activation steering.
 */
export function steer(name: string, vector: ArrayLike<number>, options: { positions?: readonly number[]; scale?: number } = {}): HookSpec {
  const scale = options.scale ?? 1;
  return {
    name,
    fn: (value) => {
      if (value.rank !== 3) throw new InputError(`steer ${name}: expected a residual-stream point [B, T, hidden], got [${value.shape.join(", ")}]`);
      const [B, T, X] = value.shape as [number, number, number];
      if (vector.length !== X) throw new InputError(`steer ${name}: vector has ${vector.length} entries, the activation has ${X}`);
      const pos = checkPositions(options.positions, T, `steer ${name}`) ?? Array.from({ length: T }, (_, t) => t);
      const out = cloneTensor(value);
      const d = out.data as Float32Array;
      for (let b = 0; b < B; b++) for (const t of pos) for (let i = 0; i < X; i++) d[(b * T + t) * X + i]! += scale * vector[i]!;
      return out;
    },
  };
}

/** The difference of two cached activations' rows, e.g. a steering vector "love" − "hate" at one position. */
export function activationDifference(a: Tensor, b: Tensor, posA: number, posB: number): Float32Array {
  if (a.rank !== 3 || b.rank !== 3 || a.shape[2] !== b.shape[2]) {
    throw new InputError(`activationDifference: expected two [B, T, hidden] tensors of the same width, got [${a.shape.join(", ")}] and [${b.shape.join(", ")}]`);
  }
  const X = a.shape[2]!;
  const da = a.toFloat32();
  const db = b.toFloat32();
  if (posA < 0 || posA >= a.shape[1]! || posB < 0 || posB >= b.shape[1]!) throw new InputError("activationDifference: position out of range");
  const out = new Float32Array(X);
  for (let i = 0; i < X; i++) out[i] = da[posA * X + i]! - db[posB * X + i]!;
  return out;
}
