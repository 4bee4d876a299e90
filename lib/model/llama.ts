/**
 * The LLaMA forward pass, top to bottom, as HF's modeling_llama:
 *
 *   h = embed_tokens(ids)                                   LlamaModel
 *   per layer:  h = h + self_attn(input_layernorm(h))       LlamaDecoderLayer
 *               h = h + mlp(post_attention_layernorm(h))
 *   hidden = norm(h);  logits = lm_head(hidden)             causalLmLogits (LlamaForCausalLM's last step)
 *
 *   self_attn(x) = o_proj(attention(rope(q_proj(x)), rope(k_proj(x)), v_proj(x)))   (GQA, KV cache)
 *   mlp(x)       = down_proj(silu(gate_proj(x)) * up_proj(x))
 *
 * The math runs on a Backend (CPU or WebGPU, or an autograd tape over one);
 * this file is the data flow. Each module's forward runs in a Scope
 * (scope.ts), which frees its temporaries when it returns and carries the
 * hook points: `s.tap(name, t)` is t itself where no hook is set.
 * Shapes: B batch, T new tokens, P cached tokens, S = P + T, n heads, k kv heads,
 * D head_dim, I intermediate size.
 */
import { LlamaError } from "../errors.js";
import type { LlamaConfig } from "../config.js";
import type { AttentionMask, Backend, DeviceTensor } from "../backend/backend.js";
import type { Tensor } from "../tensor/tensor.js";
import { DynamicCache } from "./kv-cache.js";
import { Embedding, Linear, RMSNorm, type ParameterRef, type WeightLoader } from "./modules.js";
import { RotaryEmbedding } from "./rope.js";
import { HookRunner } from "./hooks.js";
import { Scope } from "./scope.js";
import { prepareInputs, type PreparedInputs } from "./inputs.js";
import {
  buildFromCheckpoint, savePretrainedFolder, type FromPretrainedOptions, type GenerationConfig,
} from "./pretrained.js";
import type { BaseModelOutput, ForwardArgs } from "./types.js";

/** What the decoder stack hands to a head (device tensors stay on the device). */
export interface DecoderOutput {
  /** [B, T, hidden] after the final norm (the caller releases it). */
  hidden: DeviceTensor;
  inputs: PreparedInputs;
  hooks?: HookRunner;
  pastKeyValues?: DynamicCache;
  hiddenStates?: Tensor[];
  attentions?: Tensor[];
}

/** What every layer of one forward call shares. */
export interface ForwardStep {
  /** The model's backend: the KV cache keeps what it makes, so it works here, never in a scope. */
  readonly backend: Backend;
  readonly hooks: HookRunner | undefined;
  /** cos/sin [B, T, D/2] at this call's positions. */
  readonly rope: { cos: Float32Array; sin: Float32Array };
  readonly mask: AttentionMask;
  readonly cache: DynamicCache | undefined;
  /** outputAttentions: each layer's weights [B, n, T, S], read to the host. */
  readonly attentions: Tensor[] | undefined;
}

export class LlamaModel {
  /** [vocab, hidden] */
  readonly embed_tokens: Embedding;
  /** num_hidden_layers decoder layers (weights below, at LlamaDecoderLayer) */
  readonly layers: LlamaDecoderLayer[];
  /** final norm, [hidden] */
  readonly norm: RMSNorm;
  readonly rotary: RotaryEmbedding;
  generationConfig: GenerationConfig = {};

  constructor(readonly config: LlamaConfig, readonly backend: Backend, load: WeightLoader) {
    const c = config;
    this.embed_tokens = Embedding.load(load, "model.embed_tokens", c.vocab_size, c.hidden_size);
    this.layers = [];
    for (let i = 0; i < c.num_hidden_layers; i++) this.layers.push(LlamaDecoderLayer.load(load, i, c));
    this.norm = RMSNorm.load(load, "model.norm", c.hidden_size, c.rms_norm_eps);
    this.rotary = new RotaryEmbedding(c);
  }

  /** The decoder stack: ids or embeddings → [B, T, hidden] after the final norm; heads finish on the device. */
  async decode(args: ForwardArgs): Promise<DecoderOutput> {
    const be = this.backend;
    const past = args.pastKeyValues;
    const P = past?.getSeqLength() ?? 0;
    const inputs = prepareInputs(args, this.config, P);
    const { B, T } = inputs;
    if (past && past.numLayers > 0 && past.batchSize !== B) {
      throw new LlamaError(`past_key_values holds batch size ${past.batchSize}, inputs have ${B}`);
    }
    const hooks = HookRunner.create(be, args.hooks);
    const step: ForwardStep = {
      backend: be,
      hooks,
      rope: this.rotary.tables(inputs.positions),
      // Query row i sits at absolute position P + i: the causal mask's offset once a cache holds P tokens.
      mask: { queryOffset: P, keyMask: inputs.keyMask },
      cache: past ?? (args.useCache === false ? undefined : new DynamicCache(be, { reserve: args.cacheCapacity })),
      attentions: args.outputAttentions ? [] : undefined,
    };
    // HF's hidden_states: the embeddings, each layer's output but the last, then the final normed output.
    const hiddenStates: Tensor[] | undefined = args.outputHiddenStates ? [] : undefined;

    const hidden = await Scope.run(be, { hooks, prefix: "" }, async (s) => {
      let h = await s.tap("embed", inputs.ids ? s.embedding(this.embed_tokens.weight, inputs.ids, B, T) : s.upload(args.inputsEmbeds!.float()));
      for (const layer of this.layers) {
        if (hiddenStates) hiddenStates.push(await s.read(h));
        const x = h;
        h = await layer.forward(s, x, step);
        s.release(x); // the residual stream moves on: a layer's input is dead once its output exists
      }
      return s.tap("norm", this.norm.forward(s, h)); // [B, T, hidden]
    });
    if (hiddenStates) hiddenStates.push(await be.read(hidden));
    return { hidden, inputs, hooks, pastKeyValues: step.cache, hiddenStates, attentions: step.attentions };
  }

  async forward(args: ForwardArgs): Promise<BaseModelOutput> {
    const out = await this.decode(args);
    const lastHiddenState = await Scope.run(this.backend, async (s) => s.read(s.adopt(out.hidden)));
    return { lastHiddenState, pastKeyValues: out.pastKeyValues, hiddenStates: out.hiddenStates, attentions: out.attentions };
  }

  get device(): Backend["device"] {
    return this.backend.device;
  }

  /** Loads a base model (from a base or a causal-LM checkpoint). */
  static async fromPretrained(pathOrHubId: string, opts: FromPretrainedOptions = {}): Promise<LlamaModel> {
    return buildFromCheckpoint(pathOrHubId, opts, (config, backend, load) => new LlamaModel(config, backend, load));
  }

  /** Parameters under their checkpoint names ("model.layers.0…"). */
  parameters(): ParameterRef[] {
    return [
      ...this.embed_tokens.parameters("model.embed_tokens"),
      ...this.layers.flatMap((l, i) => l.parameters(`model.layers.${i}`)),
      ...this.norm.parameters("model.norm"),
    ];
  }

  /** Saves as HF's LlamaModel does (keys without the "model." prefix). */
  async savePretrained(dir: string): Promise<void> {
    const params = this.parameters().map((p) => ({ ...p, name: p.name.slice("model.".length) }));
    const config = Object.assign(Object.create(Object.getPrototypeOf(this.config) as object) as LlamaConfig, this.config);
    config.architectures = ["LlamaModel"];
    await savePretrainedFolder(dir, config, this.generationConfig, this.backend, params);
  }

  /** Token embeddings [B, T, hidden] float32 (for prompt tuning / inputsEmbeds). */
  async getInputEmbeddings(ids: number[][]): Promise<Tensor> {
    const inp = prepareInputs({ inputIds: ids, useCache: false }, this.config, 0);
    return Scope.run(this.backend, async (s) => s.read(s.embedding(this.embed_tokens.weight, inp.ids!, inp.B, inp.T)));
  }
}

export class LlamaDecoderLayer {
  private readonly hookPrefix: string;

  constructor(
    readonly self_attn: LlamaAttention,
    readonly mlp: LlamaMLP,
    /** [hidden] */
    readonly input_layernorm: RMSNorm,
    /** [hidden] */
    readonly post_attention_layernorm: RMSNorm,
    /** HF's layer_idx: this layer's slot in the KV cache and its hook points ("layers.{i}.…"). */
    readonly layerIdx: number,
  ) {
    this.hookPrefix = `layers.${layerIdx}.`;
  }

  static load(load: WeightLoader, layerIdx: number, c: LlamaConfig): LlamaDecoderLayer {
    const prefix = `model.layers.${layerIdx}`;
    return new LlamaDecoderLayer(
      LlamaAttention.load(load, `${prefix}.self_attn`, c, layerIdx),
      LlamaMLP.load(load, `${prefix}.mlp`, c),
      RMSNorm.load(load, `${prefix}.input_layernorm`, c.hidden_size, c.rms_norm_eps),
      RMSNorm.load(load, `${prefix}.post_attention_layernorm`, c.hidden_size, c.rms_norm_eps),
      layerIdx,
    );
  }

  /** x [B, T, hidden] → [B, T, hidden]. */
  forward(be: Backend, x: DeviceTensor, step: ForwardStep): Promise<DeviceTensor> {
    return Scope.run(be, { hooks: step.hooks, prefix: this.hookPrefix }, async (s) => {
      const a = await this.self_attn.forward(s, await s.tap("input_layernorm", this.input_layernorm.forward(s, x)), step);
      const h = await s.tap("resid_mid", s.add(x, a));
      const m = await this.mlp.forward(s, await s.tap("post_attention_layernorm", this.post_attention_layernorm.forward(s, h)));
      return s.tap("resid_post", s.add(h, m));
    });
  }

  parameters(prefix: string): ParameterRef[] {
    return [
      ...this.self_attn.parameters(`${prefix}.self_attn`), ...this.mlp.parameters(`${prefix}.mlp`),
      ...this.input_layernorm.parameters(`${prefix}.input_layernorm`),
      ...this.post_attention_layernorm.parameters(`${prefix}.post_attention_layernorm`),
    ];
  }
}

export class LlamaAttention {
  constructor(
    /** [n*D, hidden] */
    readonly q_proj: Linear,
    /** [k*D, hidden] */
    readonly k_proj: Linear,
    /** [k*D, hidden] */
    readonly v_proj: Linear,
    /** [hidden, n*D] */
    readonly o_proj: Linear,
    readonly numHeads: number,
    readonly numKeyValueHeads: number,
    /** HF: head_dim ** -0.5, rounded to float32 as torch's sdpa scale. */
    readonly scale: number,
    /** The KV-cache slot. */
    readonly layerIdx: number,
  ) {}

  static load(load: WeightLoader, prefix: string, c: LlamaConfig, layerIdx: number): LlamaAttention {
    const H = c.hidden_size;
    const qDim = c.num_attention_heads * c.head_dim;
    const kvDim = c.num_key_value_heads * c.head_dim;
    return new LlamaAttention(
      Linear.load(load, `${prefix}.q_proj`, H, qDim, c.attention_bias),
      Linear.load(load, `${prefix}.k_proj`, H, kvDim, c.attention_bias),
      Linear.load(load, `${prefix}.v_proj`, H, kvDim, c.attention_bias),
      Linear.load(load, `${prefix}.o_proj`, qDim, H, c.attention_bias),
      c.num_attention_heads, c.num_key_value_heads, Math.fround(1 / Math.sqrt(c.head_dim)), layerIdx,
    );
  }

  /** x [B, T, hidden] (normed) → [B, T, hidden]; hook points "self_attn.…" of the layer's scope. */
  forward(layer: Scope, x: DeviceTensor, step: ForwardStep): Promise<DeviceTensor> {
    return layer.within(async (s) => {
      const [qf, kf, vf] = Linear.forwardMany(s, x, [this.q_proj, this.k_proj, this.v_proj]);
      const q = await s.tap("self_attn.q", s.splitHeads(qf, this.numHeads, step.rope)); // [B, n, T, D]
      const k = await s.tap("self_attn.k", s.splitHeads(kf, this.numKeyValueHeads, step.rope)); // [B, k, T, D]
      const v = await s.tap("self_attn.v", s.splitHeads(vf, this.numKeyValueHeads)); // [B, k, T, D]
      // A cache keeps its own copy of k/v and hands back all S = P + T keys/values [B, k, S, D].
      const { keys, values } = step.cache?.update(step.backend, this.layerIdx, k, v) ?? { keys: k, values: v };
      const wantPattern = s.hooked("self_attn.pattern");
      const res = s.attention(q, keys, values, step.mask, { scale: this.scale, returnWeights: wantPattern || !!step.attentions });
      let z = res.out; // [B, T, n*D]
      let weights = res.weights; // [B, n, T, S], when asked
      if (weights && wantPattern) {
        const pattern = await s.tap("self_attn.pattern", weights);
        if (pattern !== weights) z = s.attendWith((weights = pattern), values); // a replaced pattern mixes the values anew
      }
      if (weights && step.attentions) step.attentions.push(await s.read(weights));
      if (s.hooked("self_attn.z")) z = await this.tapPerHead(s, z);
      return s.tap("self_attn.o_proj", this.o_proj.forward(s, z));
    });
  }

  /** The "self_attn.z" hook sees per-head outputs [B, n, T, D], built only for it (TransformerLens's hook_z). */
  private async tapPerHead(s: Scope, z: DeviceTensor): Promise<DeviceTensor> {
    const heads = s.splitHeads(z, this.numHeads);
    const hooked = await s.tap("self_attn.z", heads);
    return hooked === heads ? z : s.mergeHeads(hooked); // [B, T, n*D]
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
    /** [I, hidden] */
    readonly gate_proj: Linear,
    /** [I, hidden] */
    readonly up_proj: Linear,
    /** [hidden, I] */
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

  /** x [B, T, hidden] (normed) → [B, T, hidden] (SwiGLU); hook points "mlp.…" of the layer's scope. */
  forward(layer: Scope, x: DeviceTensor): Promise<DeviceTensor> {
    return layer.within(async (s) => {
      const [gate, up] = Linear.forwardMany(s, x, [this.gate_proj, this.up_proj]); // [B, T, I] each
      const act = await s.tap("mlp.act", s.siluMul(gate, up)); // [B, T, I]
      return s.tap("mlp.down_proj", this.down_proj.forward(s, act));
    });
  }

  parameters(prefix: string): ParameterRef[] {
    return [
      ...this.gate_proj.parameters(`${prefix}.gate_proj`), ...this.up_proj.parameters(`${prefix}.up_proj`),
      ...this.down_proj.parameters(`${prefix}.down_proj`),
    ];
  }
}

/**
 * LlamaForCausalLM's last step: logits = lm_head(hidden), lm_head [vocab, hidden],
 * for every position or only the last `keep` (HF's logits_to_keep: decoding
 * needs one row, not T). Takes `out.hidden` over; the caller releases the logits
 * [B, T or keep, vocab].
 */
export function causalLmLogits(be: Backend, lmHead: Linear, out: DecoderOutput, keep: number): Promise<DeviceTensor> {
  const { B, T } = out.inputs;
  return Scope.run(be, { hooks: out.hooks, prefix: "" }, async (s) => {
    let hidden = s.adopt(out.hidden);
    if (keep > 0 && keep < T) hidden = s.selectPositions(hidden, lastPositions(B, T, keep), keep); // [B, keep, hidden]
    return s.tap("logits", lmHead.forward(s, hidden));
  });
}

/** Row-major [B*keep] indices of each row's last `keep` positions. */
function lastPositions(B: number, T: number, keep: number): Int32Array {
  const index = new Int32Array(B * keep);
  for (let b = 0; b < B; b++) for (let j = 0; j < keep; j++) index[b * keep + j] = T - keep + j;
  return index;
}
