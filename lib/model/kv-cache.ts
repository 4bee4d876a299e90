/**
 * DynamicCache: the explicit key/value cache (HF's DynamicCache). Per layer,
 * keys and values [B, kv_heads, T, head_dim] (keys after RoPE) live on the
 * model's backend; `forward` appends this call's keys/values in place, so
 * decoding one token costs O(T), not O(T²).
 */
import { LlamaError } from "../errors.js";
import type { Backend, DeviceTensor } from "../backend/backend.js";
import type { Tensor } from "../tensor/tensor.js";

/**
 * At most this many bytes per layer's keys (and as many for its values) are
 * allocated up front for `reserve`; past that the cache grows as it fills.
 * A generate asked for thousands of new tokens that stops at an early EOS
 * should not hold a full-length cache (2 GiB for Llama-3-8B at 8192 tokens).
 */
const RESERVE_MAX_BYTES = 8 * 1024 * 1024;

export class DynamicCache {
  /** Per layer [B, kv_heads, T, head_dim]; undefined until the layer's first update. */
  private readonly keys: (DeviceTensor | undefined)[] = [];
  private readonly values: (DeviceTensor | undefined)[] = [];
  private backendRef: Backend | undefined;
  /** Positions to allocate room for on each layer's first append (0: grow as needed). */
  private readonly reserve: number;

  /**
   * `reserve`: the sequence length the cache will reach, when known (generate
   * knows it: prompt + max new tokens). Each layer's keys and values are then
   * allocated once at that length (up to RESERVE_MAX_BYTES each), as HF's
   * StaticCache does, and a decode step never stops to copy the cache into a
   * larger buffer. It only sizes storage: the cache still holds exactly the
   * appended positions.
   */
  constructor(backend?: Backend, opts: { reserve?: number } = {}) {
    this.backendRef = backend;
    this.reserve = Math.max(0, Math.floor(opts.reserve ?? 0));
  }

  /** The backend the cache lives on (set by the first update). */
  get backend(): Backend | undefined {
    return this.backendRef;
  }

  /** Number of layers with cached entries. */
  get numLayers(): number {
    return this.keys.length;
  }

  /** Cached sequence length (of layer `layer`, default 0). */
  getSeqLength(layer = 0): number {
    const k = this.keys[layer];
    return k ? k.shape[2]! : 0;
  }

  /** Batch size of the cached tensors (0 when empty). */
  get batchSize(): number {
    const k = this.keys[0];
    return k ? k.shape[0]! : 0;
  }

  /**
   * Appends this step's keys/values for one layer, k/v [B, kv_heads, T, head_dim],
   * and returns the full cached tensors [B, kv_heads, P+T, head_dim].
   */
  update(backend: Backend, layer: number, k: DeviceTensor, v: DeviceTensor): { keys: DeviceTensor; values: DeviceTensor } {
    if (this.backendRef && this.backendRef !== backend) {
      throw new LlamaError(`DynamicCache: this cache lives on ${this.backendRef.device}, the model on ${backend.device}`);
    }
    this.backendRef = backend;
    const prevK = this.keys[layer];
    if (prevK && (prevK.shape[0] !== k.shape[0] || prevK.shape[1] !== k.shape[1] || prevK.shape[3] !== k.shape[3])) {
      throw new LlamaError(
        `DynamicCache: layer ${layer} holds [${prevK.shape.join(", ")}], cannot append [${k.shape.join(", ")}] (batch or heads differ)`,
      );
    }
    const bytesPerPosition = k.shape[0]! * k.shape[1]! * k.shape[3]! * 4;
    const reserve = Math.min(this.reserve, Math.floor(RESERVE_MAX_BYTES / bytesPerPosition));
    const keys = backend.kvAppend(prevK, k, reserve);
    const values = backend.kvAppend(this.values[layer], v, reserve);
    this.keys[layer] = keys;
    this.values[layer] = values;
    return { keys, values };
  }

  /** The cached keys/values of one layer (undefined before its first update). */
  layer(layer: number): { keys: DeviceTensor; values: DeviceTensor } | undefined {
    const keys = this.keys[layer];
    const values = this.values[layer];
    return keys && values ? { keys, values } : undefined;
  }

  /**
   * Reorders (or repeats) the batch rows in place: row b of the new cache is
   * row beamIndices[b] of the old one (beam search; expanding prompts for
   * num_return_sequences).
   */
  reorder(beamIndices: readonly number[]): void {
    const be = this.backendRef;
    if (!be) return;
    const rows = Int32Array.from(beamIndices);
    const B = this.batchSize;
    for (const r of rows) {
      if (!(r >= 0 && r < B)) throw new LlamaError(`DynamicCache.reorder: index ${r} out of range for batch size ${B}`);
    }
    for (let i = 0; i < this.keys.length; i++) {
      const k = this.keys[i];
      const v = this.values[i];
      if (k) { this.keys[i] = be.selectBatch(k, rows); be.release(k); }
      if (v) { this.values[i] = be.selectBatch(v, rows); be.release(v); }
    }
  }

  /** Host copies: keys[i] / values[i] [B, kv_heads, T, head_dim] float32. */
  async toHost(): Promise<{ keys: Tensor[]; values: Tensor[] }> {
    const be = this.backendRef;
    const keys: Tensor[] = [];
    const values: Tensor[] = [];
    if (!be) return { keys, values };
    for (let i = 0; i < this.keys.length; i++) {
      keys.push(await be.read(this.keys[i]!));
      values.push(await be.read(this.values[i]!));
    }
    return { keys, values };
  }

  /** Frees the device memory. The cache is empty afterwards. */
  release(): void {
    const be = this.backendRef;
    for (const t of [...this.keys, ...this.values]) if (t && be) be.release(t);
    this.keys.length = 0;
    this.values.length = 0;
  }
}
