/**
 * How each HF weight is assembled from Meta's model-parallel shards.
 *
 * Meta's checkpoints (fairscale model parallelism) hold a slice of every
 * weight in each `consolidated.NN.pth`: column-parallel layers (wq, wk, wv,
 * w1, w3, output) are split along dim 0 (output rows), row-parallel ones
 * (wo, w2) along dim 1 (input columns); the token embedding is split along
 * dim 1 in LLaMA 1/2 (ParallelEmbedding) and along dim 0 in Llama 3
 * (VocabParallelEmbedding); norms are replicated.
 */
import type { MetaParams } from "./params.js";

export interface MergeRule {
  /** HF key, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  readonly hf: string;
  /** Meta key, e.g. `layers.0.attention.wq.weight`. */
  readonly meta: string;
  /** Concatenation axis across shards; null = replicated (take shard 0). */
  readonly concatDim: 0 | 1 | null;
  /** For q/k: apply the interleaved → half-split rotary permutation with this many heads. */
  readonly rotaryHeads?: number;
  /** The shape the merged tensor must have. */
  readonly shape: readonly number[];
}

export function mergeRules(p: MetaParams, intermediateSize: number, vocabSize: number, hasOutput: boolean, llama3: boolean): MergeRule[] {
  const headDim = p.dim / p.n_heads;
  const kvDim = headDim * p.n_kv_heads;
  const rules: MergeRule[] = [
    { hf: "model.embed_tokens.weight", meta: "tok_embeddings.weight", concatDim: llama3 ? 0 : 1, shape: [vocabSize, p.dim] },
  ];
  for (let i = 0; i < p.n_layers; i++) {
    const m = `layers.${i}`;
    const h = `model.layers.${i}`;
    rules.push(
      { hf: `${h}.self_attn.q_proj.weight`, meta: `${m}.attention.wq.weight`, concatDim: 0, rotaryHeads: p.n_heads, shape: [p.dim, p.dim] },
      { hf: `${h}.self_attn.k_proj.weight`, meta: `${m}.attention.wk.weight`, concatDim: 0, rotaryHeads: p.n_kv_heads, shape: [kvDim, p.dim] },
      { hf: `${h}.self_attn.v_proj.weight`, meta: `${m}.attention.wv.weight`, concatDim: 0, shape: [kvDim, p.dim] },
      { hf: `${h}.self_attn.o_proj.weight`, meta: `${m}.attention.wo.weight`, concatDim: 1, shape: [p.dim, p.dim] },
      { hf: `${h}.mlp.gate_proj.weight`, meta: `${m}.feed_forward.w1.weight`, concatDim: 0, shape: [intermediateSize, p.dim] },
      { hf: `${h}.mlp.down_proj.weight`, meta: `${m}.feed_forward.w2.weight`, concatDim: 1, shape: [p.dim, intermediateSize] },
      { hf: `${h}.mlp.up_proj.weight`, meta: `${m}.feed_forward.w3.weight`, concatDim: 0, shape: [intermediateSize, p.dim] },
      { hf: `${h}.input_layernorm.weight`, meta: `${m}.attention_norm.weight`, concatDim: null, shape: [p.dim] },
      { hf: `${h}.post_attention_layernorm.weight`, meta: `${m}.ffn_norm.weight`, concatDim: null, shape: [p.dim] },
    );
  }
  rules.push({ hf: "model.norm.weight", meta: "norm.weight", concatDim: null, shape: [p.dim] });
  if (hasOutput) rules.push({ hf: "lm_head.weight", meta: "output.weight", concatDim: 0, shape: [vocabSize, p.dim] });
  return rules;
}

/** Meta keys a checkpoint may carry that HF does not store (recomputed at load). */
export const IGNORED_META_KEYS = new Set(["rope.freqs"]);
