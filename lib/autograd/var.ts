/**
 * Reverse-mode automatic differentiation on float32 host arrays.
 *
 * A `Var` is a value plus, when it depends on something that needs a
 * gradient, the `GradFn` that made it. The graph is implicit in those links
 * (as in torch): an op whose inputs need no gradient records nothing and keeps
 * no activations alive, so a frozen model run under this engine costs what a
 * plain forward costs. `backward(loss)` runs the sweep of tape.ts over the
 * graph, detaching each node once its backward ran, so activation memory
 * shrinks layer by layer during the backward pass.
 */
import { LlamaError } from "../errors.js";
import { numel } from "../tensor/tensor.js";
import { sweep, type GradStore, type TapeGraph } from "./tape.js";

/**
 * The backward of one op: given d(loss)/d(output), returns d(loss)/d(input)
 * for each input (null where the input needs no gradient). A returned array
 * may be `gradOut` itself (ownership passes to the engine). When `owned`,
 * nothing else holds `gradOut`: the op may overwrite it with an input's
 * gradient instead of allocating one (a training step's main garbage).
 */
export interface GradFn {
  readonly name: string;
  readonly inputs: readonly Var[];
  backward(gradOut: Float32Array, owned: boolean): (Float32Array | null)[];
}

export class Var {
  /** d(loss)/d(this), filled by `backward` for leaves that require it (and for `retainGrad` vars). */
  grad: Float32Array | null = null;
  /** Keep `grad` on this non-leaf var after backward (like torch's `retain_grad`). */
  retainGrad = false;
  readonly shape: readonly number[];

  constructor(
    /** The value, row-major, float32. */
    public value: Float32Array,
    shape: readonly number[],
    /** True when a gradient must flow to or through this var. */
    readonly requiresGrad = false,
    /** The op that produced this var (null for leaves and for vars that need no gradient). */
    public gradFn: GradFn | null = null,
  ) {
    this.shape = Object.freeze([...shape]);
    if (numel(shape) !== value.length) {
      throw new LlamaError(`Var: shape [${shape.join(", ")}] needs ${numel(shape)} elements, value has ${value.length}`);
    }
  }

  /** A leaf that accumulates a gradient (a trainable parameter). */
  static param(value: Float32Array, shape: readonly number[]): Var {
    return new Var(value, shape, true, null);
  }

  /** A constant: no gradient flows into it. */
  static constant(value: Float32Array, shape: readonly number[]): Var {
    return new Var(value, shape, false, null);
  }

  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  get size(): number {
    return this.value.length;
  }

  /** The single element of a one-element var (a loss). */
  item(): number {
    if (this.value.length !== 1) throw new LlamaError(`Var.item: var has ${this.value.length} elements, expected 1`);
    return this.value[0]!;
  }
}

/**
 * Builds the output of an op: a var that records `makeGradFn()` only when one
 * of `inputs` requires a gradient. `makeGradFn` is called lazily so ops save
 * activations for backward only when a backward will happen.
 */
export function result(value: Float32Array, shape: readonly number[], inputs: readonly Var[], makeGradFn: () => GradFn): Var {
  if (!inputs.some((v) => v.requiresGrad)) return new Var(value, shape, false, null);
  return new Var(value, shape, true, makeGradFn());
}

/** Vars reachable from `root` through grad-requiring links, inputs before the vars that use them. */
function topoOrder(root: Var): Var[] {
  const order: Var[] = [];
  const seen = new Set<Var>();
  // Iterative DFS (a deep model has long chains; recursion could overflow).
  const stack: { v: Var; next: number }[] = [{ v: root, next: 0 }];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const inputs = top.v.gradFn?.inputs ?? [];
    if (top.next < inputs.length) {
      const child = inputs[top.next++]!;
      if (child.requiresGrad && !seen.has(child)) {
        seen.add(child);
        stack.push({ v: child, next: 0 });
      }
    } else {
      order.push(top.v);
      stack.pop();
    }
  }
  return order;
}

/** Host arrays as gradient storage: sums in place where the engine owns the array; nothing to release. */
const hostGrads: GradStore<Float32Array> = {
  sum: (a, b) => {
    const s = new Float32Array(a.length);
    for (let i = 0; i < a.length; i++) s[i] = a[i]! + b[i]!;
    return s;
  },
  addInPlace: (acc, g) => { for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + g[i]!; },
  copy: (g) => g.slice(),
  release: () => {},
};

/** The implicit graph as the sweep reads it: a var's gradFn is its op; detaching it frees the activations. */
const hostGraph: TapeGraph<Var, Float32Array> = {
  op: (v) => v.gradFn,
  retains: (v) => v.retainGrad,
  drop: (v) => {
    if (v.gradFn && !v.retainGrad) v.grad = null;
    v.gradFn = null;
  },
  check: (v, g) => {
    if (g.length !== v.value.length) throw new LlamaError(`backward: gradient of ${g.length} elements for a var of shape [${v.shape.join(", ")}]`);
  },
};

/** Called when a backward pass ends (kernels drop the scratch buffers they reuse within a pass). */
const afterBackwardHooks: (() => void)[] = [];

export function onBackwardEnd(hook: () => void): void {
  afterBackwardHooks.push(hook);
}

/**
 * Backpropagates from `loss` (a one-element var unless `gradOutput` is given).
 * Leaves that require a gradient accumulate into `.grad` (call
 * `zeroGrad`/set `.grad = null` between steps); the graph is consumed: every
 * visited node is detached after its backward ran, freeing its activations.
 */
export function backward(loss: Var, gradOutput?: Float32Array): void {
  if (!loss.requiresGrad) throw new LlamaError("backward: the loss does not depend on anything that requires a gradient");
  if (!gradOutput && loss.value.length !== 1) {
    throw new LlamaError(`backward: loss has shape [${loss.shape.join(", ")}]; pass gradOutput for a non-scalar output`);
  }
  const g = gradOutput?.slice() ?? new Float32Array([1]); // the caller's array is neither written nor kept
  hostGraph.check!(loss, g);
  const order = topoOrder(loss);
  // A grad already there (a leaf's, from an earlier backward) is the buffer the new gradient adds into.
  const seeds = order.filter((v) => v.grad).map((v) => [v, v.grad!] as const);
  for (const [v, kept] of sweep(hostGraph, hostGrads, order, [...seeds, [loss, g]])) v.grad = kept;
  for (const hook of afterBackwardHooks) hook();
}

/** Shape check with a readable message. */
export function expectShape(op: string, what: string, shape: readonly number[], expected: readonly (number | null)[]): void {
  const ok = shape.length === expected.length && expected.every((d, i) => d === null || d === shape[i]);
  if (!ok) {
    const exp = expected.map((d) => (d === null ? "*" : String(d))).join(", ");
    throw new LlamaError(`${op}: ${what} has shape [${shape.join(", ")}], expected [${exp}]`);
  }
}
