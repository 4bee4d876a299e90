/**
 * Prompt preparation for generation, as HF's `generate` does it: validate the
 * ids, infer the attention mask from the pad id when none is given, derive
 * positions from the mask (left padding), and expand rows for beams /
 * num_return_sequences.
 */
import { InputError } from "../errors.js";
import { Tensor } from "../tensor/tensor.js";
import type { Prepared } from "./generate.js";
import type { GenerationForwardArgs } from "./types.js";

/** Checks a [B, T] batch of token ids (rectangular, integer, in [0, V)). */
export function checkPrompts(inputIds: unknown, vocabSize: number): asserts inputIds is number[][] {
  if (!Array.isArray(inputIds) || inputIds.length === 0) {
    throw new InputError("generate: inputIds is empty: expected at least one prompt of token ids ([B, T])");
  }
  const T = Array.isArray(inputIds[0]) ? inputIds[0].length : -1;
  if (T <= 0) throw new InputError("generate: inputIds[0] is empty: expected at least one token per prompt");
  inputIds.forEach((row: unknown, b) => {
    if (!Array.isArray(row) || row.length !== T) {
      throw new InputError(
        `generate: inputIds[${b}] has ${Array.isArray(row) ? row.length : typeof row} tokens, expected ${T} (left-pad prompts to one length)`,
      );
    }
    row.forEach((id: unknown, t) => {
      if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new InputError(`generate: inputIds[${b}][${t}] = ${JSON.stringify(id)}: expected a token id in [0, ${vocabSize})`);
      }
    });
  });
}

/**
 * The attention mask: the given one (checked), else HF's inference — where
 * the pad id occurs in the prompts and differs from every EOS id, mask = ids
 * != pad; otherwise all ones.
 */
export function resolveAttentionMask(
  inputIds: readonly (readonly number[])[],
  mask: unknown,
  padTokenId: number | null,
  eosTokenIds: readonly number[],
): number[][] {
  const T = inputIds[0]!.length;
  if (mask !== undefined) {
    if (!Array.isArray(mask) || mask.length !== inputIds.length) {
      throw new InputError(`generate: attentionMask must have ${inputIds.length} rows like inputIds`);
    }
    return mask.map((row: unknown, b) => {
      if (!Array.isArray(row) || row.length !== T) throw new InputError(`generate: attentionMask[${b}] must have ${T} entries like inputIds[${b}]`);
      return row.map((v: unknown, t) => {
        if (v !== 0 && v !== 1) throw new InputError(`generate: attentionMask[${b}][${t}] = ${JSON.stringify(v)}: expected 0 or 1`);
        return v;
      });
    }).map((row, b) => {
      if (!row.includes(1)) throw new InputError(`generate: attentionMask[${b}] has no 1: the prompt must keep at least one token`);
      return row;
    });
  }
  const canInfer = padTokenId !== null && !eosTokenIds.includes(padTokenId) && inputIds.some((r) => r.includes(padTokenId));
  return inputIds.map((r) => r.map((id) => (canInfer && id === padTokenId ? 0 : 1)));
}

/** HF `_prepare_position_ids_for_generation`: cumsum(mask) - 1, padding positions set to 0. */
export function positionsFromMask(mask: readonly (readonly number[])[]): number[][] {
  return mask.map((row) => {
    let c = 0;
    return row.map((m) => {
      c += m;
      return m === 0 ? 0 : c - 1;
    });
  });
}

/** Row i of the result is row floor(i / n) of `rows` (torch.repeat_interleave(n, dim=0)). */
export function repeatInterleave<T>(rows: readonly T[], n: number): T[] {
  const out: T[] = [];
  for (const r of rows) for (let i = 0; i < n; i++) out.push(Array.isArray(r) ? ([...r] as T) : r);
  return out;
}

/** The same for the leading dimension of a tensor. */
export function repeatTensorRows(t: Tensor, n: number): Tensor {
  if (n === 1) return t;
  const f = t.toFloat32();
  const B = t.shape[0]!;
  const per = f.length / B;
  const out = new Float32Array(f.length * n);
  for (let b = 0; b < B; b++) for (let i = 0; i < n; i++) out.set(f.subarray(b * per, (b + 1) * per), (b * n + i) * per);
  return new Tensor(out, [B * n, ...t.shape.slice(1)], "f32");
}

/** The scores of the last position, [B, V] float32, from logits [B, T, V] (or [B, V]). */
export function lastPositionLogits(logits: Tensor): Float32Array {
  const f = logits.toFloat32();
  if (logits.shape.length === 2) return Float32Array.from(f);
  const [B, T, V] = logits.shape as [number, number, number];
  const out = new Float32Array(B * V);
  for (let b = 0; b < B; b++) out.set(f.subarray((b * T + T - 1) * V, (b * T + T) * V), b * V);
  return out;
}

/** HF _update_model_kwargs_for_generation: one more mask column of ones, positions last + 1. */
export function extendMaskAndPositions(mask: number[][], positions: number[][]): void {
  for (const m of mask) m.push(1);
  for (const pos of positions) pos.push(pos[pos.length - 1]! + 1);
}

/** What one decoding forward takes (forward and forwardOnDevice alike). */
export interface DecodeInputs<C> {
  inputIds: number[][];
  attentionMask: number[][];
  positionIds: number[][];
  pastKeyValues?: C;
  useCache: boolean;
  outputAttentions: boolean;
  logitsToKeep: number;
}

/** One decoding step's inputs: each row's last token with the cache, or the whole sequences without. */
export function decodeInputs<C>(
  useCache: boolean, seqs: number[][], mask: number[][], positions: number[][], cache: C | undefined, outputAttentions: boolean,
): DecodeInputs<C> {
  if (!useCache) return { inputIds: seqs, attentionMask: mask, positionIds: positions, useCache: false, outputAttentions, logitsToKeep: 1 };
  if (!cache) throw new InputError("generate: the model returned no KV cache (pastKeyValues) from the prefill; pass useCache: false");
  return {
    inputIds: seqs.map((s) => [s[s.length - 1]!]),
    attentionMask: mask,
    positionIds: positions.map((r) => [r[r.length - 1]!]),
    pastKeyValues: cache,
    useCache: true,
    outputAttentions,
    logitsToKeep: 1,
  };
}

/**
 * The prefill forward's arguments: the whole prompt, the last position's
 * logits, and the cache sized for maxLength (as HF's StaticCache takes
 * max_cache_len from max_length), so decoding does not reallocate it (on
 * WebGPU each growth cost 6 extra dispatches and a copy of the whole cache).
 */
export function prefillArgs(p: Prepared, outputAttentions: boolean): GenerationForwardArgs {
  return {
    ...(p.embeds ? { inputsEmbeds: p.embeds } : { inputIds: p.prompts }),
    attentionMask: p.mask,
    positionIds: p.positions,
    useCache: p.cfg.useCache,
    cacheCapacity: p.cfg.maxLength,
    outputAttentions,
    logitsToKeep: 1,
  };
}
