/**
 * Rotary position embedding (RoPE): inverse frequencies for each rope type
 * (default, linear, dynamic NTK, llama3, yarn), and cos/sin tables for given
 * positions. Everything mirrors transformers' float32 arithmetic step by step
 * (`Math.fround` after each op), so the tables match HF's bit for bit or
 * within an ulp.
 */
import type { LlamaConfig, RopeScaling } from "../config.js";

const f = Math.fround;

/** HF's default inverse frequencies: 1 / base^(2i/dim) for i in 0..dim/2-1, in float32. */
export function defaultInvFreq(base: number, dim: number): Float32Array {
  const out = new Float32Array(dim / 2);
  const b = f(base);
  for (let i = 0; i < dim / 2; i++) {
    const exponent = f((2 * i) / dim); // arange(0, dim, 2).float() / dim
    out[i] = f(1 / f(Math.pow(b, exponent)));
  }
  return out;
}

/** llama3 (Llama 3.1) frequency smoothing; returns new frequencies. */
function llama3InvFreq(inv: Float32Array, s: RopeScaling): Float32Array {
  const factor = s.factor;
  const low = s.low_freq_factor!;
  const high = s.high_freq_factor!;
  const oldLen = s.original_max_position_embeddings!;
  const lowWavelen = f(oldLen / low);
  const highWavelen = f(oldLen / high);
  const out = new Float32Array(inv.length);
  const twoPi = f(2 * Math.PI);
  for (let i = 0; i < inv.length; i++) {
    const wavelen = f(twoPi / inv[i]!);
    // wavelen > low_freq_wavelen: divide by factor; wavelen < high_freq_wavelen: keep
    const scaled = wavelen > lowWavelen ? f(inv[i]! / factor) : inv[i]!;
    const isMedium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    if (!isMedium) {
      out[i] = scaled;
      continue;
    }
    // medium band: interpolate between scaled and unscaled with a smooth factor
    const smooth = f(f(f(oldLen / wavelen) - f(low)) / f(high - low));
    const a = f(f(f(1 - smooth) * scaled) / f(factor));
    const b = f(smooth * scaled);
    out[i] = f(a + b);
  }
  return out;
}

/** yarn inverse frequencies and attention factor (transformers' _compute_yarn_parameters). */
function yarnInvFreq(base: number, dim: number, s: RopeScaling): { inv: Float32Array; attentionFactor: number } {
  const factor = s.factor;
  const getMscale = (scale: number, mscale = 1) => (scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1);
  let attentionFactor = s.attention_factor;
  if (attentionFactor === undefined) {
    attentionFactor = s.mscale && s.mscale_all_dim
      ? getMscale(factor, s.mscale) / getMscale(factor, s.mscale_all_dim)
      : getMscale(factor);
  }
  const betaFast = s.beta_fast || 32;
  const betaSlow = s.beta_slow || 1;
  const origMax = s.original_max_position_embeddings!;
  const correctionDim = (rotations: number) =>
    (dim * Math.log(origMax / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
  let low = correctionDim(betaFast);
  let high = correctionDim(betaSlow);
  if (s.truncate ?? true) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001; // prevent a division by zero in the ramp
  const inv = new Float32Array(dim / 2);
  const b = f(base);
  for (let i = 0; i < dim / 2; i++) {
    const posFreq = f(Math.pow(b, f((2 * i) / dim)));
    const extrapolation = f(1 / posFreq);
    const interpolation = f(1 / f(f(factor) * posFreq));
    const ramp = Math.min(1, Math.max(0, f(f(i - low) / f(high - low))));
    const extrapolationFactor = f(1 - ramp);
    inv[i] = f(f(interpolation * f(1 - extrapolationFactor)) + f(extrapolation * extrapolationFactor));
  }
  return { inv, attentionFactor };
}

/** Dynamic NTK: frequencies for a base stretched to cover `seqLen` positions. */
function dynamicInvFreq(base: number, dim: number, factor: number, maxPos: number, seqLen: number): Float32Array {
  const len = Math.max(seqLen, maxPos);
  // float32 tensor arithmetic, as transformers does with a tensor seq_len
  const ratio = f(f(f(f(factor) * len) / maxPos) - f(factor - 1));
  const stretched = f(f(base) * f(Math.pow(ratio, dim / (dim - 2))));
  return defaultInvFreq(stretched, dim);
}

/**
 * The rotary embedding of one model: static frequencies computed once, dynamic
 * ones recomputed per call from max(position_ids) + 1 when that exceeds
 * max_position_embeddings (transformers' dynamic_rope_update "growth" rule; it
 * returns to the original frequencies for shorter inputs).
 */
export class RotaryEmbedding {
  readonly dim: number;
  readonly invFreq: Float32Array;
  readonly attentionScaling: number;
  private readonly type: string;

  constructor(private readonly config: LlamaConfig) {
    this.dim = config.head_dim;
    const s = config.rope_scaling;
    this.type = config.ropeType;
    let inv = defaultInvFreq(config.rope_theta, this.dim);
    let scaling = 1;
    if (s?.rope_type === "linear") {
      inv = inv.map((x) => f(x / s.factor));
    } else if (s?.rope_type === "llama3") {
      inv = llama3InvFreq(inv, s);
    } else if (s?.rope_type === "yarn") {
      const y = yarnInvFreq(config.rope_theta, this.dim, s);
      inv = y.inv;
      scaling = y.attentionFactor;
    } else if (s?.rope_type === "dynamic") {
      inv = dynamicInvFreq(config.rope_theta, this.dim, s.factor, config.max_position_embeddings, config.max_position_embeddings);
    }
    this.invFreq = inv;
    this.attentionScaling = scaling;
  }

  /** The inverse frequencies in effect for a call whose largest position is `maxPosition`. */
  invFreqFor(maxPosition: number): Float32Array {
    const seqLen = maxPosition + 1;
    const maxPos = this.config.max_position_embeddings;
    if (this.type === "dynamic" && seqLen > maxPos) {
      return dynamicInvFreq(this.config.rope_theta, this.dim, this.config.rope_scaling!.factor, maxPos, seqLen);
    }
    return this.invFreq;
  }

  /**
   * cos/sin tables [B, T, dim/2] for positions [B][T] (HF duplicates each half;
   * we keep one half: the kernels pair i with i + dim/2).
   */
  tables(positions: readonly (readonly number[])[]): { cos: Float32Array; sin: Float32Array } {
    const B = positions.length;
    const T = positions[0]?.length ?? 0;
    const half = this.dim / 2;
    let maxPosition = 0;
    for (const row of positions) for (const p of row) if (p > maxPosition) maxPosition = p;
    const inv = this.invFreqFor(maxPosition);
    const cos = new Float32Array(B * T * half);
    const sin = new Float32Array(B * T * half);
    const scale = this.attentionScaling;
    let o = 0;
    for (let b = 0; b < B; b++) {
      const row = positions[b]!;
      for (let t = 0; t < T; t++) {
        const p = f(row[t]!);
        for (let i = 0; i < half; i++, o++) {
          const angle = f(inv[i]! * p); // float32 matmul of inv_freq and positions
          cos[o] = scale === 1 ? Math.cos(angle) : f(Math.cos(angle)) * scale;
          sin[o] = scale === 1 ? Math.sin(angle) : f(Math.sin(angle)) * scale;
        }
      }
    }
    return { cos, sin };
  }
}
