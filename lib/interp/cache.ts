/**
 * ActivationCache: the activations one forward pass produced, by hook point
 * name, as host float32 tensors (TransformerLens's `ActivationCache`).
 * Layouts: residual-stream points [B, T, hidden]; q/k/v/z [B, heads, T,
 * head_dim] (k/v with kv_heads); pattern [B, heads, T, T_kv]; logits [B, T, V].
 */
import { InputError } from "../errors.js";
import { saveSafetensors } from "../io/safetensors.js";
import type { Tensor } from "../tensor/tensor.js";
import { actName, residPreName, type LayerPoint } from "./hook-points.js";

export class ActivationCache {
  private readonly store: Map<string, Tensor>;

  constructor(
    entries: Iterable<[string, Tensor]>,
    /** Number of decoder layers of the model that produced it. */
    readonly numLayers: number,
  ) {
    this.store = new Map(entries);
  }

  /** The activation at a hook point; a clear error lists what was captured if it is missing. */
  get(name: string): Tensor {
    const t = this.store.get(name);
    if (!t) {
      const have = [...this.store.keys()];
      const shown = have.length > 8 ? `${have.slice(0, 8).join(", ")}, … (${have.length} in all)` : have.join(", ") || "nothing";
      throw new InputError(`activation "${name}" is not in the cache (captured: ${shown}); pass it in \`names\` to runWithCache`);
    }
    return t;
  }

  has(name: string): boolean {
    return this.store.has(name);
  }

  /** Captured names, in forward order. */
  keys(): string[] {
    return [...this.store.keys()];
  }

  entries(): [string, Tensor][] {
    return [...this.store.entries()];
  }

  get size(): number {
    return this.store.size;
  }

  /** A per-layer point: `cache.layer("self_attn.pattern", 2)`. */
  layer(point: LayerPoint, layer: number): Tensor {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.numLayers) {
      throw new InputError(`layer ${layer} out of range 0..${this.numLayers - 1}`);
    }
    return this.get(actName(point, layer));
  }

  /** The same per-layer point for every layer, e.g. all attention patterns. */
  allLayers(point: LayerPoint): Tensor[] {
    return Array.from({ length: this.numLayers }, (_, i) => this.layer(point, i));
  }

  /** Post-softmax attention [B, heads, T, T_kv] of one layer. */
  pattern(layer: number): Tensor {
    return this.layer("self_attn.pattern", layer);
  }

  /** The residual stream entering layer i (i = numLayers gives the last resid_post, before the final norm). */
  residPre(layer: number): Tensor {
    if (layer === this.numLayers) return this.layer("resid_post", layer - 1);
    return this.get(residPreName(layer));
  }

  /**
   * The residual stream after the embeddings and after each layer, before the
   * final norm (TransformerLens's accumulated_resid): numLayers + 1 tensors with labels.
   */
  accumulatedResid(): { labels: string[]; tensors: Tensor[] } {
    const labels = ["embed", ...Array.from({ length: this.numLayers }, (_, i) => `layer ${i}`)];
    const tensors = [this.get("embed"), ...this.allLayers("resid_post")];
    return { labels, tensors };
  }

  /** Bytes held by the cached tensors. */
  memoryBytes(): number {
    let n = 0;
    for (const t of this.store.values()) n += t.data.byteLength;
    return n;
  }

  /** Saves every activation to one safetensors file (float32), atomically (nothing half-written on failure). */
  save(file: string): void {
    saveSafetensors(file, this.store, { metadata: { format: "llama-ts activation cache", num_layers: String(this.numLayers) } });
  }

  toString(): string {
    return `ActivationCache(${this.size} activations, ${(this.memoryBytes() / 2 ** 20).toFixed(1)} MiB)`;
  }
}
