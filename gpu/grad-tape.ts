/**
 * The recorded graph of the differentiable WebGPU backend (tape-backend.ts)
 * and its backward sweep. Tracked tensors are kept in creation order, which
 * is a topological order, so the sweep walks it backwards: each node turns
 * its output gradient into its inputs' (WGSL kernels in ops/backward.ts),
 * gradients reaching a tensor from several uses are summed, and a node's
 * saved activations go back to the pool as soon as it has run. What reaches
 * the differentiable uploads (leaves) is read back once and continues on the
 * host, into the Vars they came from.
 */
import type { DeviceTensor } from "../lib/backend/backend.js";
import { Var, backward as hostBackward } from "../lib/autograd/var.js";
import type { DType } from "../lib/tensor/dtype.js";
import type { QuantType } from "../lib/tensor/quantized.js";
import type { GpuTensor } from "./buffers.js";
import type { WebGpuBackend } from "./backend.js";
import * as grad from "./ops/backward.js";

/** One recorded op: which tape tensors it read, and how to turn its output gradient into theirs. */
export interface Node {
  readonly name: string;
  readonly inputs: readonly GradTensor[];
  /** Tensors kept for backward (released when this node has run). */
  readonly saved: readonly GradTensor[];
  backward(gOut: GpuTensor): (GpuTensor | null)[];
}

/** A device tensor of the differentiable WebGPU backend: a GPU tensor plus its place in the graph. */
export class GradTensor implements DeviceTensor {
  /** The recorded op that made it (tracked tensors that are not leaves). */
  node?: Node;
  /** For a differentiable upload: the host Var whose gradient this tensor's gradient is. */
  leaf?: Var;
  /** Recorded ops that still need this tensor's values for their backward. */
  holds = 0;
  /** The model called release(): give the buffer back once `holds` drops to 0. */
  releaseAsked = false;

  constructor(readonly inner: GpuTensor, readonly requiresGrad: boolean) {}

  get shape(): readonly number[] {
    return this.inner.shape;
  }

  get dtype(): DType {
    return this.inner.dtype;
  }

  get quant(): QuantType | undefined {
    return this.inner.quant;
  }
}

export class GradTape {
  /** Tracked tensors in creation order (a topological order of the graph), for the backward sweep. */
  private tape: GradTensor[] = [];
  /** Output gradients handed over by the host's backward (logits' gradient), waiting for the sweep. */
  private seeds: { at: GradTensor; grad: Float32Array }[] = [];

  constructor(private readonly gpu: WebGpuBackend) {}

  /** Recorded tensors awaiting a backward pass (0 after it ran or was discarded). */
  get size(): number {
    return this.tape.length;
  }

  /** A host gradient for a tensor read from the device (the host's backward stops there). */
  seed(at: GradTensor, g: Float32Array): void {
    this.seeds.push({ at, grad: g });
  }

  /** A differentiable upload: its gradient continues on the host into `v`. */
  leaf(inner: GpuTensor, v: Var): GradTensor {
    const r = new GradTensor(inner, v.requiresGrad);
    if (v.requiresGrad) {
      r.leaf = v;
      this.tape.push(r);
    }
    return r;
  }

  /** Wraps an op's output; records `node` when an input needs a gradient. */
  record(inner: GpuTensor, inputs: readonly GradTensor[], makeNode: () => Omit<Node, "inputs">): GradTensor {
    const tracked = inputs.some((x) => x.requiresGrad);
    const r = new GradTensor(inner, tracked);
    if (tracked) {
      const node = { ...makeNode(), inputs };
      for (const s of node.saved) s.holds++;
      r.node = node;
      this.tape.push(r);
    }
    return r;
  }

  /**
   * The device part of the backward pass: from the gradients the host's
   * `backward(loss)` left at the tensors read from this backend, back through
   * every recorded op to the differentiable uploads, whose gradients then
   * continue on the host (into e.g. the soft prompt's `.grad`).
   */
  async backward(): Promise<void> {
    const rt = this.gpu.runtime;
    const grads = new Map<GradTensor, GpuTensor>();
    const accumulate = (x: GradTensor, g: GpuTensor) => {
      const prev = grads.get(x);
      if (!prev) return void grads.set(x, g);
      grads.set(x, grad.addInto(rt, prev, g));
    };
    try {
      for (const { at, grad: g } of this.seeds) accumulate(at, grad.fromHost(rt, g, at.shape));
      this.seeds = [];
      const leaves: GradTensor[] = [];
      for (let i = this.tape.length - 1; i >= 0; i--) {
        const x = this.tape[i]!;
        if (x.leaf) leaves.push(x);
        const node = x.node;
        const gOut = grads.get(x);
        if (!node || !gOut) continue;
        grads.delete(x);
        const ins = node.backward(gOut);
        // Assign before accumulating: accumulation gives tensors back to the pool, and one
        // gradient tensor may go to two inputs (add), the second getting its own copy.
        const handed = new Set<GpuTensor>();
        const assigned: [GradTensor, GpuTensor][] = [];
        node.inputs.forEach((inp, k) => {
          const g = ins[k];
          if (!g || !inp.requiresGrad) return;
          assigned.push([inp, handed.has(g) ? grad.copy(rt, g) : g]);
          handed.add(g);
        });
        for (const g of new Set([...ins, gOut])) if (g && !handed.has(g)) rt.release(g);
        for (const [inp, g] of assigned) accumulate(inp, g);
        x.node = undefined;
        this.unhold(node);
      }
      // Read every leaf's gradient in one submit, then continue on the host.
      const reads = leaves.map((x) => {
        const g = grads.get(x);
        return g ? this.gpu.read(g) : Promise.resolve(undefined);
      });
      const values = await Promise.all(reads);
      const inputs: Var[] = [], leafGrads: Float32Array[] = [];
      leaves.forEach((x, k) => {
        const g = values[k];
        if (g) { inputs.push(x.leaf!); leafGrads.push(g.toFloat32()); }
      });
      // One host sweep from a node joining every leaf, so leaves that share host ancestry
      // (the same Var uploaded twice) accumulate before that ancestry is consumed.
      if (inputs.length) hostBackward(new Var(new Float32Array(1), [1], true, { name: "webgpu leaves", inputs, backward: () => leafGrads }));
    } finally {
      for (const g of grads.values()) rt.release(g);
      this.discard();
    }
  }

  /** Drops what was recorded (a forward whose loss will not be backpropagated) and frees what it kept. */
  discard(): void {
    for (const x of this.tape) {
      if (x.node) this.unhold(x.node);
      x.node = undefined;
    }
    this.tape = [];
    this.seeds = [];
  }

  private unhold(node: Node): void {
    for (const s of node.saved) {
      s.holds--;
      if (s.holds === 0 && s.releaseAsked) this.gpu.release(s.inner);
    }
  }
}
