/**
 * The LLaMA building blocks, named like the checkpoint's tensors: a module at
 * `model.layers[i].self_attn.q_proj` holds `model.layers.{i}.self_attn.q_proj.weight`.
 * Each module is built by `load(prefix, …)` from a WeightLoader, which fetches,
 * checks the shape of, and uploads one tensor by name. Modules hold device
 * tensors only; the math is in the backend, the data flow in llama.ts.
 */
import type { LlamaConfig } from "../config.js";
import type { Backend, DeviceTensor } from "../backend/backend.js";

/** Returns the device tensor for a checkpoint name with the expected shape (throws a FormatError otherwise). */
export type WeightLoader = (name: string, shape: readonly number[]) => DeviceTensor;

/** A named parameter slot (for saving, LoRA merging, inspection). */
export interface ParameterRef {
  readonly name: string;
  get(): DeviceTensor;
  set(t: DeviceTensor): void;
}

/** A LoRA path beside a Linear: y += scaling · (x · Aᵀ) · Bᵀ, A [r, in], B [out, r] (trained by lib/peft/lora-train.ts). */
export interface LowRankPath {
  readonly A: DeviceTensor;
  readonly B: DeviceTensor;
  readonly scaling: number;
}

export class Linear {
  /** Set while a LoRA adapter is trained (lib/peft/lora-train.ts): the forward adds the low-rank path. */
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

  forward(be: Backend, x: DeviceTensor): DeviceTensor {
    const y = be.linear(x, this.weight, this.bias);
    if (!this.lora) return y;
    const { A, B, scaling } = this.lora;
    const xa = be.linear(x, A);
    const low = be.linear(xa, B);
    be.release(xa);
    const scaled = be.scale(low, scaling);
    be.release(low);
    const out = be.add(y, scaled);
    be.release(y);
    be.release(scaled);
    return out;
  }

  /**
   * Several Linears over one input (q/k/v, gate/up): one fused pass over the
   * weights, unless one of them carries a LoRA path (then each on its own).
   */
  static forwardMany(be: Backend, x: DeviceTensor, linears: readonly Linear[]): DeviceTensor[] {
    if (linears.some((l) => l.lora)) return linears.map((l) => l.forward(be, x));
    return be.linearMany(x, linears.map((l) => l.weight), linears.map((l) => l.bias));
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

export class LlamaAttention {
  constructor(
    /** [heads*head_dim, hidden] */
    readonly q_proj: Linear,
    /** [kv_heads*head_dim, hidden] */
    readonly k_proj: Linear,
    /** [kv_heads*head_dim, hidden] */
    readonly v_proj: Linear,
    /** [hidden, heads*head_dim] */
    readonly o_proj: Linear,
  ) {}

  static load(load: WeightLoader, prefix: string, c: LlamaConfig): LlamaAttention {
    const H = c.hidden_size;
    const qDim = c.num_attention_heads * c.head_dim;
    const kvDim = c.num_key_value_heads * c.head_dim;
    return new LlamaAttention(
      Linear.load(load, `${prefix}.q_proj`, H, qDim, c.attention_bias),
      Linear.load(load, `${prefix}.k_proj`, H, kvDim, c.attention_bias),
      Linear.load(load, `${prefix}.v_proj`, H, kvDim, c.attention_bias),
      Linear.load(load, `${prefix}.o_proj`, qDim, H, c.attention_bias),
    );
  }

  parameters(prefix: string): ParameterRef[] {
    return [
      ...this.q_proj.parameters(`${prefix}.q_proj`), ...this.k_proj.parameters(`${prefix}.k_proj`),
      ...this.v_proj.parameters(`${prefix}.v_proj`), ...this.o_proj.parameters(`${prefix}.o_proj`),
    ];
  }
}

export class LlamaMLP {
  constructor(
    /** [intermediate, hidden] */
    readonly gate_proj: Linear,
    /** [intermediate, hidden] */
    readonly up_proj: Linear,
    /** [hidden, intermediate] */
    readonly down_proj: Linear,
  ) {}

  static load(load: WeightLoader, prefix: string, c: LlamaConfig): LlamaMLP {
    const H = c.hidden_size;
    const I = c.intermediate_size;
    return new LlamaMLP(
      Linear.load(load, `${prefix}.gate_proj`, H, I, c.mlp_bias),
      Linear.load(load, `${prefix}.up_proj`, H, I, c.mlp_bias),
      Linear.load(load, `${prefix}.down_proj`, I, H, c.mlp_bias),
    );
  }

  parameters(prefix: string): ParameterRef[] {
    return [
      ...this.gate_proj.parameters(`${prefix}.gate_proj`), ...this.up_proj.parameters(`${prefix}.up_proj`),
      ...this.down_proj.parameters(`${prefix}.down_proj`),
    ];
  }
}

export class LlamaDecoderLayer {
  constructor(
    readonly self_attn: LlamaAttention,
    readonly mlp: LlamaMLP,
    readonly input_layernorm: RMSNorm,
    readonly post_attention_layernorm: RMSNorm,
  ) {}

  static load(load: WeightLoader, prefix: string, c: LlamaConfig): LlamaDecoderLayer {
    return new LlamaDecoderLayer(
      LlamaAttention.load(load, `${prefix}.self_attn`, c),
      LlamaMLP.load(load, `${prefix}.mlp`, c),
      RMSNorm.load(load, `${prefix}.input_layernorm`, c.hidden_size, c.rms_norm_eps),
      RMSNorm.load(load, `${prefix}.post_attention_layernorm`, c.hidden_size, c.rms_norm_eps),
    );
  }

  parameters(prefix: string): ParameterRef[] {
    return [
      ...this.self_attn.parameters(`${prefix}.self_attn`), ...this.mlp.parameters(`${prefix}.mlp`),
      ...this.input_layernorm.parameters(`${prefix}.input_layernorm`),
      ...this.post_attention_layernorm.parameters(`${prefix}.post_attention_layernorm`),
    ];
  }
}
