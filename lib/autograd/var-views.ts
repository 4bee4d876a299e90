/**
 * The link between host Tensors and the Vars they show, shared by the
 * differentiable backends: a Tensor handed out for a Var (by `asTensor` or by
 * `read`) finds its Var again when uploaded or passed to `varOf`, keyed by its
 * storage, so a reshaped view of the same array still finds it.
 */
import { Tensor } from "../tensor/tensor.js";
import { reshape } from "./ops.js";
import type { Var } from "./var.js";

export class VarViews {
  private readonly map = new WeakMap<Float32Array, Var>();

  /** A host Tensor showing `v`'s values (the same array, not a copy). */
  show(v: Var): Tensor {
    this.map.set(v.value, v);
    return new Tensor(v.value, v.shape, "f32");
  }

  /** The Var behind `t`, reshaped to `t`'s shape; undefined for a tensor no Var was shown as. */
  find(t: Tensor): Var | undefined {
    const v = t.data instanceof Float32Array ? this.map.get(t.data) : undefined;
    if (!v) return undefined;
    const same = v.shape.length === t.shape.length && v.shape.every((d, i) => d === t.shape[i]);
    return same ? v : reshape(v, t.shape);
  }
}
