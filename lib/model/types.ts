/**
 * Public types of the model forward pass: arguments, outputs and hooks.
 */
import type { Tensor } from "../tensor/tensor.js";
import type { DynamicCache } from "./kv-cache.js";

/**
 * An activation hook. It sees the activation as a host float32 tensor and the
 * hook point's name; returning a tensor of the same shape replaces the
 * activation (an intervention), returning nothing only observes it.
 */
export type HookFn = (value: Tensor, name: string) => Tensor | void | Promise<Tensor | void>;

/** Hooks by point name, or a function that picks a hook for a name (return undefined for none). */
export type HookMap = Record<string, HookFn> | ((name: string) => HookFn | undefined);

/**
 * Hook point names, in the order the forward pass reaches them. Residual-stream
 * points are [B, T, hidden]; per-head points are [B, heads, T, head_dim] (q/k
 * after RoPE, k/v with kv_heads, only this call's new tokens); `pattern` is
 * [B, heads, T, T_kv] post-softmax; `logits` is [B, T, V] (or as many positions
 * as logitsToKeep keeps).
 */
export function hookPointNames(numLayers: number): string[] {
  const names = ["embed"];
  for (let i = 0; i < numLayers; i++) {
    const p = `layers.${i}`;
    names.push(
      `${p}.input_layernorm`, `${p}.self_attn.q`, `${p}.self_attn.k`, `${p}.self_attn.v`, `${p}.self_attn.pattern`,
      `${p}.self_attn.z`, `${p}.self_attn.o_proj`, `${p}.resid_mid`, `${p}.post_attention_layernorm`,
      `${p}.mlp.act`, `${p}.mlp.down_proj`, `${p}.resid_post`,
    );
  }
  names.push("norm", "logits");
  return names;
}

export interface ForwardArgs {
  /** Token ids [B][T]; exactly one of inputIds / inputsEmbeds. */
  inputIds?: number[][];
  /** Input embeddings [B, T, hidden] (f32), instead of inputIds. */
  inputsEmbeds?: Tensor;
  /**
   * HF's 2-D mask [B][P+T] over cached + new tokens (1 = token, 0 = padding).
   * Omitted = all ones.
   */
  attentionMask?: number[][];
  /** Positions [B][T]; default P..P+T-1 for every row (as HF's plain forward; generate() derives them from the mask). */
  positionIds?: number[][];
  /** KV cache to extend (mutated in place and returned as pastKeyValues). */
  pastKeyValues?: DynamicCache;
  /** Build and return a cache (default true, as HF's config.use_cache). */
  useCache?: boolean;
  /**
   * When this call creates the cache (no pastKeyValues): allocate each layer's
   * keys/values for this many positions at once (HF StaticCache's
   * max_cache_len). Sizing only: results are the same with or without it.
   */
  cacheCapacity?: number;
  outputHiddenStates?: boolean;
  outputAttentions?: boolean;
  hooks?: HookMap;
  /** 0 (default) = logits for all positions; k > 0 = only the last k positions (decode uses 1). */
  logitsToKeep?: number;
}

export interface CausalLMOutput {
  /** [B, T, V] float32 ([B, logitsToKeep, V] when set; [B, num_labels] for sequence classification). */
  logits: Tensor;
  pastKeyValues?: DynamicCache;
  /** num_hidden_layers + 1 tensors [B, T, hidden]: embeddings, each layer's output, the last after the final norm. */
  hiddenStates?: Tensor[];
  /** Per layer [B, heads, T, P+T], post-softmax. */
  attentions?: Tensor[];
  /** Mean cross-entropy, when labels are given (reserved; set by training code). */
  loss?: number;
}

/** The base model's output: the last hidden state (after the final norm) instead of logits. */
export interface BaseModelOutput {
  /** [B, T, hidden] after the final norm (a device tensor is read only when asked). */
  lastHiddenState: Tensor;
  pastKeyValues?: DynamicCache;
  hiddenStates?: Tensor[];
  attentions?: Tensor[];
}
