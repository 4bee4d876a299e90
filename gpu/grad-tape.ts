/**
 * The recorded graph of the differentiable WebGPU backend (tape-backend.ts).
 * Tracked tensors are kept in creation order, a topological order, which the
 * sweep of lib/autograd/tape.ts walks backwards with GPU gradients (kernels in
 * ops/backward.ts), giving each node's saved activations back to the pool once
 * it has run. What reaches the differentiable uploads (leaves) is read back
 * once and continues on the host, into the Vars they came from.
 */
import type { DeviceTensor } from "../lib/backend/backend.js";
import { Var, backward as hostBackward } from "../lib/autograd/var.js";
import { sweep, type GradStore, type TapeGraph } from "../lib/autograd/tape.js";
import type { DType } from "../lib/tensor/dtype.js";
import type { QuantType } from "../lib/tensor/quantized.js";
import type { GpuTensor } from "./buffers.js";
import type { WebGpuBackend } from "./backend.js";
import { add } from "./ops/basic.js";
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
  private tape: (GradTensor | undefined)[] = [];
  /** Output gradients handed over by the host's backward (logits' gradient), waiting for the sweep. */
  private seeds: [GradTensor, GpuTensor][] = [];

  constructor(private readonly gpu: WebGpuBackend) {}

  /** Recorded tensors awaiting a backward pass (0 after it ran or was discarded). */
  get size(): number {
    return this.tape.length;
  }

  /** A host gradient for a tensor read from the device (the host's backward stops there). */
  seed(at: GradTensor, g: Float32Array): void {
    this.seeds.push([at, grad.fromHost(this.gpu.runtime, g, at.shape)]);
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

  /** The device part of the backward pass, from the seeds to the differentiable uploads, then on the host. */
  async backward(): Promise<void> {
    const rt = this.gpu.runtime;
    const store: GradStore<GpuTensor> = { sum: (a, b) => add(rt, a, b), copy: (g) => grad.copy(rt, g), release: (g) => rt.release(g) };
    const graph: TapeGraph<GradTensor, GpuTensor> = { op: (x) => x.node ?? null, drop: (x) => this.drop(x) };
    const seeds = this.seeds;
    this.seeds = [];
    try {
      const leaves = [...sweep(graph, store, this.tape, seeds)];
      // Read every leaf's gradient in one submit, then continue on the host.
      let values;
      try {
        values = await Promise.all(leaves.map(([, g]) => this.gpu.read(g)));
      } finally {
        for (const [, g] of leaves) rt.release(g);
      }
      // One host sweep from a node joining every leaf, so leaves that share host ancestry
      // (the same Var uploaded twice) accumulate before that ancestry is consumed.
      const inputs = leaves.map(([x]) => x.leaf!), leafGrads = values.map((v) => v.toFloat32());
      if (inputs.length) hostBackward(new Var(new Float32Array(1), [1], true, { name: "webgpu leaves", inputs, backward: () => leafGrads }));
    } finally {
      this.discard();
    }
  }

  /** Drops what was recorded (a forward whose loss will not be backpropagated) and frees what it kept. */
  discard(): void {
    for (const x of this.tape) if (x) this.drop(x);
    for (const [, g] of this.seeds) this.gpu.runtime.release(g);
    this.tape = [];
    this.seeds = [];
  }

  /** `x`'s node has run (or never will): its saved tensors go back to the pool unless another node still needs them. */
  private drop(x: GradTensor): void {
    const node = x.node;
    x.node = undefined;
    for (const s of node?.saved ?? []) {
      s.holds--;
      if (s.holds === 0 && s.releaseAsked) this.gpu.release(s.inner);
    }
  }
}
