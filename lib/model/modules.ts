/**
 * The generic building blocks (Linear, RMSNorm, Embedding), named like the
 * checkpoint's tensors: a Linear at `model.layers[i].self_attn.q_proj` holds
 * `model.layers.{i}.self_attn.q_proj.weight`. Each is built by `load(prefix, …)`
 * from a WeightLoader, which fetches, checks the shape of, and uploads one
 * tensor by name. Modules hold device tensors only; the math is in the backend,
 * the LLaMA-specific modules and the data flow in llama.ts.
 */
import { loraLinearByParts, type Backend, type DeviceTensor, type LowRankPath } from "../backend/backend.js";
import { Scope } from "./scope.js";

/** Returns the device tensor for a checkpoint name with the expected shape (throws a FormatError otherwise). */
export type WeightLoader = (name: string, shape: readonly number[]) => DeviceTensor;

/** A named parameter slot (for saving, LoRA merging, inspection). */
export interface ParameterRef {
  readonly name: string;
  get(): DeviceTensor;
  set(t: DeviceTensor): void;
}

export class Linear {
  /** Set while a LoRA adapter is trained (lib/peft/lora-train.ts): the forward adds the low-rank path (y += scaling · (x · Aᵀ) · Bᵀ). */
  lora?: LowRankPath;

  constructor(
    /** [out, in] */
    public weight: DeviceTensor,
    /** [out] */
    public bias?: DeviceTensor,
  ) {}

  static load(load: WeightLoader, prefix: string, inFeatures: number, outFeatures: number, bias: boolean): Linear {
    return new Linear(
      load(`${prefix}.weight`, [outFeatures, inFeatures]),
      bias ? load(`${prefix}.bias`, [outFeatures]) : undefined,
    );
  }

  get outFeatures(): number {
    return this.weight.shape[0]!;
  }

  /** x [..., in] → [..., out] = x·Wᵀ + bias, plus the LoRA path when one is set. */
  forward(be: Backend, x: DeviceTensor): DeviceTensor {
    const lora = this.lora;
    if (!lora) return be.linear(x, this.weight, this.bias);
    if (be.loraLinear) return be.loraLinear(x, [{ weight: this.weight, bias: this.bias, lora }])[0]!;
    return Scope.runSync(be, (s) => loraLinearByParts(s, x, this.weight, this.bias, lora));
  }

  /**
   * Several Linears over one input (q/k/v, gate/up): one fused pass over the
   * weights; with LoRA paths on all of them, one fused LoRA call where the
   * backend has one, else each on its own.
   * One output per Linear, in order (a tuple in gives a tuple out).
   */
  static forwardMany<const L extends readonly Linear[]>(be: Backend, x: DeviceTensor, linears: L): { -readonly [K in keyof L]: DeviceTensor } {
    const ys = !linears.some((l) => l.lora)
      ? be.linearMany(x, linears.map((l) => l.weight), linears.map((l) => l.bias))
      : be.loraLinear && linears.every((l) => l.lora)
        ? be.loraLinear(x, linears.map((l) => ({ weight: l.weight, bias: l.bias, lora: l.lora! })))
        : linears.map((l) => l.forward(be, x));
    return ys as { -readonly [K in keyof L]: DeviceTensor };
  }

  parameters(prefix: string): ParameterRef[] {
    const refs: ParameterRef[] = [{ name: `${prefix}.weight`, get: () => this.weight, set: (t) => { this.weight = t; } }];
    if (this.bias) refs.push({ name: `${prefix}.bias`, get: () => this.bias!, set: (t) => { this.bias = t; } });
    return refs;
  }
}

export class RMSNorm {
  constructor(
    /** [hidden] */
    public weight: DeviceTensor,
    readonly eps: number,
  ) {}

  static load(load: WeightLoader, prefix: string, size: number, eps: number): RMSNorm {
    return new RMSNorm(load(`${prefix}.weight`, [size]), eps);
  }

  forward(be: Backend, x: DeviceTensor): DeviceTensor {
    return be.rmsNorm(x, this.weight, this.eps);
  }

  parameters(prefix: string): ParameterRef[] {
    return [{ name: `${prefix}.weight`, get: () => this.weight, set: (t) => { this.weight = t; } }];
  }
}

export class Embedding {
  constructor(
    /** [vocab, hidden] */
    public weight: DeviceTensor,
  ) {}

  static load(load: WeightLoader, prefix: string, vocab: number, hidden: number): Embedding {
    return new Embedding(load(`${prefix}.weight`, [vocab, hidden]));
  }

  parameters(prefix: string): ParameterRef[] {
    return [{ name: `${prefix}.weight`, get: () => this.weight, set: (t) => { this.weight = t; } }];
  }
}
