/**
 * A scope for the temporaries of one block of the forward pass, so the model
 * code says what it computes and not when each intermediate dies.
 *
 * `Scope.run(be, body)` hands `body` a Scope: a Backend that records every
 * tensor its ops and uploads make. When the body returns, each recorded tensor
 * that is not part of its result is released, once. Ownership stays exact:
 *  - `release(t)` inside the body (a hook that replaces an activation) frees t
 *    now and forgets it, so the scope does not free it again;
 *  - tensors the scope did not make (inputs, weights) are never released by it;
 *  - kvAppend results are never recorded: they belong to a KV cache (which in
 *    the model works on the model's backend, not a scope, for the same reason);
 *  - scopes nest (`scope.within(body)`): what an inner scope returns stays
 *    recorded in the outer one, which frees it in turn unless it returns it too.
 * Freeing is only `release()`: the CPU backend ignores it, the WebGPU pool
 * reuses the buffer, the WebGPU tape defers it while a recorded op holds the
 * tensor. On an exception every recorded tensor is released.
 *
 * A scope also carries the forward's hook points under a prefix ("layers.3."):
 * `tap(name, t)` is t itself where no hook is set — no read-back, nothing to
 * free — so hook points cost a line's tail, not a block.
 */
import { LlamaError } from "../errors.js";
import type { AttentionMask, AttentionOptions, AttentionResult, Backend, DeviceTensor } from "../backend/backend.js";
import type { Tensor } from "../tensor/tensor.js";
import type { HookRunner } from "./hooks.js";

/** The forward's hooks and the prefix of a scope's hook point names ("layers.3."). */
export interface HookPoints {
  readonly hooks: HookRunner | undefined;
  readonly prefix: string;
}

const NO_HOOKS: HookPoints = { hooks: undefined, prefix: "" };

export class Scope implements Backend {
  /** Tensors made in (or adopted by) this scope and not yet released. */
  private readonly made = new Set<DeviceTensor>();

  private constructor(private readonly outer: Backend, private readonly points: HookPoints) {}

  /**
   * Runs `body` in a new scope over `be`, then releases what it made except
   * the body's result (a tensor, or the tensors of an array).
   */
  static run<R>(be: Backend, body: (s: Scope) => Promise<R>): Promise<R>;
  static run<R>(be: Backend, points: HookPoints, body: (s: Scope) => Promise<R>): Promise<R>;
  static async run<R>(
    be: Backend, a: HookPoints | ((s: Scope) => Promise<R>), b?: (s: Scope) => Promise<R>,
  ): Promise<R> {
    const [points, body] = typeof a === "function" ? [NO_HOOKS, a] : [a, b!];
    const s = new Scope(be, points);
    let result: R | undefined;
    try {
      result = await body(s);
      return result;
    } finally {
      s.close(result);
    }
  }

  /** `run` for a body without hook points or awaits (Linear's LoRA path). */
  static runSync<R>(be: Backend, body: (s: Scope) => R): R {
    const s = new Scope(be, NO_HOOKS);
    let result: R | undefined;
    try {
      result = body(s);
      return result;
    } finally {
      s.close(result);
    }
  }

  /** A nested scope with the same hook points (a module's own temporaries inside a layer). */
  within<R>(body: (s: Scope) => Promise<R>): Promise<R> {
    return Scope.run(this, this.points, body);
  }

  /**
   * The activation at hook point `prefix + name`: `t` itself when no hook is set
   * there, else what the hook makes of it (a replacement is recorded here and
   * `t` released, through this scope).
   */
  tap(name: string, t: DeviceTensor): DeviceTensor | Promise<DeviceTensor> {
    const { hooks, prefix } = this.points;
    return hooks ? hooks.run(prefix + name, t, this) : t;
  }

  /** Whether a hook is set at `prefix + name` (to build what only a hook needs: patterns, per-head z). */
  hooked(name: string): boolean {
    const { hooks, prefix } = this.points;
    return hooks?.has(prefix + name) ?? false;
  }

  /** Takes a tensor made elsewhere into this scope: freed with its temporaries unless returned. */
  adopt<T extends DeviceTensor>(t: T): T {
    this.made.add(t);
    return t;
  }

  /** Releases what this scope holds, except what `result` is or (an array) contains. */
  private close(result: unknown): void {
    const keep: readonly unknown[] = Array.isArray(result) ? result : [result];
    for (const t of this.made) if (!keep.includes(t)) this.outer.release(t);
    this.made.clear();
  }

  /** Records an op's output (an op that hands back one of its inputs made nothing new). */
  private own<T extends DeviceTensor>(t: T, ...inputs: DeviceTensor[]): T {
    if (!inputs.includes(t)) this.made.add(t);
    return t;
  }

  // ------------------------------------------------------------ the Backend, recording what it makes
  get device(): Backend["device"] {
    return this.outer.device;
  }

  get description(): string {
    return this.outer.description;
  }

  upload(t: Tensor): DeviceTensor {
    return this.own(this.outer.upload(t));
  }

  read(t: DeviceTensor): Promise<Tensor> {
    return this.outer.read(t);
  }

  release(t: DeviceTensor): void {
    this.made.delete(t);
    this.outer.release(t);
  }

  dispose(): void {
    throw new LlamaError("Scope.dispose(): a scope does not own its backend (dispose the backend itself)");
  }

  embedding(table: DeviceTensor, ids: Int32Array, batch: number, seqLen: number): DeviceTensor {
    return this.own(this.outer.embedding(table, ids, batch, seqLen), table);
  }

  rmsNorm(x: DeviceTensor, weight: DeviceTensor, eps: number): DeviceTensor {
    return this.own(this.outer.rmsNorm(x, weight, eps), x);
  }

  linear(x: DeviceTensor, weight: DeviceTensor, bias?: DeviceTensor): DeviceTensor {
    return this.own(this.outer.linear(x, weight, bias), x);
  }

  linearMany(x: DeviceTensor, weights: readonly DeviceTensor[], biases?: readonly (DeviceTensor | undefined)[]): DeviceTensor[] {
    return this.outer.linearMany(x, weights, biases).map((y) => this.own(y, x));
  }

  /** The outer backend's fused LoRA linears, where it has them. */
  get loraLinear(): Backend["loraLinear"] {
    const outer = this.outer;
    return outer.loraLinear && ((x, layers) => outer.loraLinear!(x, layers).map((y) => this.own(y, x)));
  }

  add(a: DeviceTensor, b: DeviceTensor): DeviceTensor {
    return this.own(this.outer.add(a, b), a, b);
  }

  scale(x: DeviceTensor, factor: number): DeviceTensor {
    return this.own(this.outer.scale(x, factor), x);
  }

  siluMul(gate: DeviceTensor, up: DeviceTensor): DeviceTensor {
    return this.own(this.outer.siluMul(gate, up), gate, up);
  }

  splitHeads(x: DeviceTensor, heads: number, rope?: { cos: Float32Array; sin: Float32Array }): DeviceTensor {
    return this.own(this.outer.splitHeads(x, heads, rope), x);
  }

  mergeHeads(x: DeviceTensor): DeviceTensor {
    return this.own(this.outer.mergeHeads(x), x);
  }

  kvAppend(cache: DeviceTensor | undefined, x: DeviceTensor, reserve?: number): DeviceTensor {
    // The cache argument is consumed (its storage may move to the result), and the result belongs to the cache.
    if (cache) this.made.delete(cache);
    return this.outer.kvAppend(cache, x, reserve);
  }

  attention(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, mask: AttentionMask, opts: AttentionOptions): AttentionResult {
    const res = this.outer.attention(q, k, v, mask, opts);
    this.own(res.out, q, k, v);
    if (res.weights) this.own(res.weights, q, k, v);
    return res;
  }

  attendWith(weights: DeviceTensor, v: DeviceTensor): DeviceTensor {
    return this.own(this.outer.attendWith(weights, v), weights, v);
  }

  selectPositions(x: DeviceTensor, index: Int32Array, perRow: number): DeviceTensor {
    return this.own(this.outer.selectPositions(x, index, perRow), x);
  }

  selectBatch(x: DeviceTensor, rows: Int32Array): DeviceTensor {
    return this.own(this.outer.selectBatch(x, rows), x);
  }
}
