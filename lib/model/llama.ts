/**
 * LlamaModel: embeddings → N decoder layers → final RMSNorm, as HF's
 * LlamaModel. Per layer:
 *
 *   h = h + o_proj(attention(rope(q_proj(norm(h))), rope(k_proj(…)), v_proj(…)))
 *   h = h + down_proj(silu(gate_proj(norm(h))) * up_proj(norm(h)))
 *
 * The math runs on a Backend (CPU or WebGPU); this file is the data flow,
 * the KV cache bookkeeping and the hook points.
 */
import { LlamaError } from "../errors.js";
import type { LlamaConfig } from "../config.js";
import type { AttentionMask, Backend, DeviceTensor } from "../backend/backend.js";
import { Tensor } from "../tensor/tensor.js";
import { DynamicCache } from "./kv-cache.js";
import { Embedding, Linear, LlamaDecoderLayer, RMSNorm, type ParameterRef, type WeightLoader } from "./modules.js";
import { RotaryEmbedding } from "./rope.js";
import { HookRunner } from "./hooks.js";
import { prepareInputs, type PreparedInputs } from "./inputs.js";
import {
  buildFromCheckpoint, savePretrainedFolder, type FromPretrainedOptions, type GenerationConfig,
} from "./pretrained.js";
import type { BaseModelOutput, ForwardArgs } from "./types.js";

/** What the decoder stack hands to a head (device tensors stay on the device). */
export interface DecoderOutput {
  /** [B, T, hidden] after the final norm. */
  hidden: DeviceTensor;
  inputs: PreparedInputs;
  hooks?: HookRunner;
  pastKeyValues?: DynamicCache;
  hiddenStates?: Tensor[];
  attentions?: Tensor[];
}

export class LlamaModel {
  /** [vocab, hidden] */
  readonly embed_tokens: Embedding;
  readonly layers: LlamaDecoderLayer[];
  /** final norm, [hidden] */
  readonly norm: RMSNorm;
  readonly rotary: RotaryEmbedding;
  generationConfig: GenerationConfig = {};

  constructor(readonly config: LlamaConfig, readonly backend: Backend, load: WeightLoader) {
    const c = config;
    this.embed_tokens = Embedding.load(load, "model.embed_tokens", c.vocab_size, c.hidden_size);
    this.layers = [];
    for (let i = 0; i < c.num_hidden_layers; i++) this.layers.push(LlamaDecoderLayer.load(load, `model.layers.${i}`, c));
    this.norm = RMSNorm.load(load, "model.norm", c.hidden_size, c.rms_norm_eps);
    this.rotary = new RotaryEmbedding(c);
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
    const t = this.backend.embedding(this.embed_tokens.weight, inp.ids!, inp.B, inp.T);
    const host = await this.backend.read(t);
    this.backend.release(t);
    return host;
  }

  async forward(args: ForwardArgs): Promise<BaseModelOutput> {
    const out = await this.decode(args);
    const lastHiddenState = await this.backend.read(out.hidden);
    this.backend.release(out.hidden);
    return { lastHiddenState, pastKeyValues: out.pastKeyValues, hiddenStates: out.hiddenStates, attentions: out.attentions };
  }

  /** The decoder stack; heads call this and finish on the device. */
  async decode(args: ForwardArgs): Promise<DecoderOutput> {
    const be = this.backend;
    const c = this.config;
    const past = args.pastKeyValues;
    const P = past?.getSeqLength() ?? 0;
    const inputs = prepareInputs(args, c, P);
    const { B, T } = inputs;
    if (past && past.numLayers > 0 && past.batchSize !== B) {
      throw new LlamaError(`past_key_values holds batch size ${past.batchSize}, inputs have ${B}`);
    }
    const cache = past ?? (args.useCache === false ? undefined : new DynamicCache(be));
    const hooks = HookRunner.create(be, args.hooks);

    let h = inputs.ids ? be.embedding(this.embed_tokens.weight, inputs.ids, B, T) : be.upload(args.inputsEmbeds!.float());
    if (hooks) h = await hooks.run("embed", h);

    const rope = this.rotary.tables(inputs.positions);
    const mask: AttentionMask = { queryOffset: P, keyMask: inputs.keyMask };
    const kept: DeviceTensor[] | undefined = args.outputHiddenStates ? [] : undefined;
    const attentions: Tensor[] | undefined = args.outputAttentions ? [] : undefined;

    for (let i = 0; i < this.layers.length; i++) {
      if (kept) kept.push(h);
      const next = await this.layerForward(i, h, rope, mask, cache, hooks, attentions);
      if (!kept) be.release(h);
      h = next;
    }
    let hidden = this.norm.forward(be, h);
    if (!kept) be.release(h);
    if (hooks) hidden = await hooks.run("norm", hidden);

    let hiddenStates: Tensor[] | undefined;
    if (kept) {
      // HF: the embeddings, each layer's input after the first, and the final normed output.
      kept.push(hidden);
      hiddenStates = [];
      for (const t of kept) hiddenStates.push(await be.read(t));
      for (const t of kept.slice(0, -1)) be.release(t);
    }
    return { hidden, inputs, hooks, pastKeyValues: cache, hiddenStates, attentions };
  }

  /** One decoder layer: h [B, T, hidden] → [B, T, hidden]. */
  private async layerForward(
    i: number, h: DeviceTensor, rope: { cos: Float32Array; sin: Float32Array }, mask: AttentionMask,
    cache: DynamicCache | undefined, hooks: HookRunner | undefined, attentions: Tensor[] | undefined,
  ): Promise<DeviceTensor> {
    const be = this.backend;
    const c = this.config;
    const layer = this.layers[i]!;
    const attn = layer.self_attn;
    const p = `layers.${i}`;

    // --- attention block
    let x = layer.input_layernorm.forward(be, h); // [B, T, hidden]
    if (hooks) x = await hooks.run(`${p}.input_layernorm`, x);
    const [qf, kf, vf] = Linear.forwardMany(be, x, [attn.q_proj, attn.k_proj, attn.v_proj]) as [DeviceTensor, DeviceTensor, DeviceTensor];
    be.release(x);
    let q = be.splitHeads(qf, c.num_attention_heads, rope); // [B, heads, T, head_dim]
    let k = be.splitHeads(kf, c.num_key_value_heads, rope); // [B, kv_heads, T, head_dim]
    let v = be.splitHeads(vf, c.num_key_value_heads); // [B, kv_heads, T, head_dim]
    be.release(qf); be.release(kf); be.release(vf);
    if (hooks) {
      q = await hooks.run(`${p}.self_attn.q`, q);
      k = await hooks.run(`${p}.self_attn.k`, k);
      v = await hooks.run(`${p}.self_attn.v`, v);
    }
    let keys = k;
    let values = v;
    if (cache) {
      // The cache copies this step's k/v and returns [B, kv_heads, P+T, head_dim] views.
      ({ keys, values } = cache.update(be, i, k, v));
      be.release(k); be.release(v);
    }
    const wantPattern = hooks?.has(`${p}.self_attn.pattern`) ?? false;
    const res = be.attention(q, keys, values, mask, {
      scale: Math.fround(1 / Math.sqrt(c.head_dim)),
      returnWeights: !!attentions || wantPattern,
    });
    be.release(q);
    let z = res.out; // [B, T, heads*head_dim]
    let weights = res.weights;
    if (hooks && weights && wantPattern) {
      const replaced = await hooks.run(`${p}.self_attn.pattern`, weights);
      if (replaced !== weights) {
        be.release(z);
        z = be.attendWith(replaced, values);
        weights = replaced;
      }
    }
    if (attentions && weights) attentions.push(await be.read(weights));
    if (weights) be.release(weights);
    if (!cache) { be.release(keys); be.release(values); }
    if (hooks?.has(`${p}.self_attn.z`)) {
      const heads = be.splitHeads(z, c.num_attention_heads); // [B, heads, T, head_dim]
      const hooked = await hooks.run(`${p}.self_attn.z`, heads);
      if (hooked !== heads) {
        be.release(z);
        z = be.mergeHeads(hooked);
      }
      be.release(hooked);
    }
    let a = attn.o_proj.forward(be, z); // [B, T, hidden]
    be.release(z);
    if (hooks) a = await hooks.run(`${p}.self_attn.o_proj`, a);
    let mid = be.add(h, a);
    be.release(a);
    if (hooks) mid = await hooks.run(`${p}.resid_mid`, mid);

    // --- MLP block
    let x2 = layer.post_attention_layernorm.forward(be, mid);
    if (hooks) x2 = await hooks.run(`${p}.post_attention_layernorm`, x2);
    const mlp = layer.mlp;
    const [g, u] = Linear.forwardMany(be, x2, [mlp.gate_proj, mlp.up_proj]) as [DeviceTensor, DeviceTensor];
    be.release(x2);
    let act = be.siluMul(g, u); // [B, T, intermediate]
    be.release(g); be.release(u);
    if (hooks) act = await hooks.run(`${p}.mlp.act`, act);
    let down = mlp.down_proj.forward(be, act);
    be.release(act);
    if (hooks) down = await hooks.run(`${p}.mlp.down_proj`, down);
    let out = be.add(mid, down);
    be.release(mid); be.release(down);
    if (hooks) out = await hooks.run(`${p}.resid_post`, out);
    return out;
  }
}
