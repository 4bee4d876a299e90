/**
 * Direct logit attribution: how much each component writes, directly, into
 * the logit of a token (or the difference of two tokens' logits) at one
 * position. The final residual is a sum of components,
 *
 *   resid = embed + Σ_layers ( Σ_heads z_h · W_O[:, h]ᵀ  [+ o_proj bias]  +  down_proj )
 *
 * and with the final RMSNorm's scale frozen at its actual value (1 / rms of
 * the final residual), logit = Σ_components (c ⊙ w / rms) · u, where w is the
 * norm weight and u the token's lm_head row. So the attributions add up
 * exactly to the model's logit (or logit difference).
 */
import { InputError } from "../errors.js";
import type { ActivationCache } from "./cache.js";
import type { LensModel } from "./logit-lens.js";
import { positionRow } from "./math.js";

export interface AttributionOptions {
  /** Token whose logit is explained. */
  token: number;
  /** Explain logit(token) − logit(otherToken) instead. */
  otherToken?: number;
  /** Position (default: the last). */
  position?: number;
  batch?: number;
}

export interface LogitAttribution {
  /** [layer][head] direct contribution of each head. */
  heads: number[][];
  /** [layer] contribution of each MLP. */
  mlp: number[];
  /** [layer] o_proj bias contribution (zeros when the model has none). */
  attnBias: number[];
  /** The token embeddings' contribution. */
  embed: number;
  /** Sum of everything = the model's logit (difference) at that position. */
  total: number;
  /** The final RMSNorm's scale, rms of the final residual. */
  rms: number;
}

/**
 * Direct logit attribution per head, MLP and embedding. The cache must hold
 * "embed", every "layers.*.self_attn.z", "layers.*.mlp.down_proj" and "layers.*.resid_post"
 * (e.g. `runWithCache(model, ids, { names: /embed|self_attn\.z|down_proj|resid_post/ })`).
 */
export async function directLogitAttribution(model: LensModel, cache: ActivationCache, options: AttributionOptions): Promise<LogitAttribution> {
  const c = model.config;
  const be = model.backend;
  const L = c.num_hidden_layers;
  const n = c.num_attention_heads;
  const D = c.head_dim;
  const Hd = c.hidden_size;
  const batch = options.batch ?? 0;
  const final = cache.layer("resid_post", L - 1);
  const T = final.shape[1]!;
  const pos = options.position === undefined ? T - 1 : options.position < 0 ? T + options.position : options.position;
  for (const [what, id] of [["token", options.token], ["otherToken", options.otherToken]] as const) {
    if (id !== undefined && (!Number.isInteger(id) || id < 0 || id >= c.vocab_size)) throw new InputError(`directLogitAttribution: ${what} ${id} is outside the vocabulary 0..${c.vocab_size - 1}`);
  }

  // Direction in the residual stream that the (frozen-scale) norm + lm_head turns into the logit.
  const r = positionRow(final, batch, pos);
  let ss = 0;
  for (let i = 0; i < Hd; i++) ss += r[i]! * r[i]!;
  const rms = Math.sqrt(ss / Hd + c.rms_norm_eps);
  const w = (await be.read(model.model.norm.weight)).toFloat32();
  const ids = options.otherToken === undefined ? [options.token] : [options.token, options.otherToken];
  const gathered = be.embedding(model.lm_head.weight, Int32Array.from(ids), 1, ids.length); // [1, 1|2, hidden]
  const u = (await be.read(gathered)).toFloat32();
  be.release(gathered);
  const dir = new Float64Array(Hd);
  for (let i = 0; i < Hd; i++) dir[i] = (w[i]! * (u[i]! - (ids.length === 2 ? u[Hd + i]! : 0))) / rms;
  const dot = (row: Float32Array) => {
    let s = 0;
    for (let i = 0; i < Hd; i++) s += row[i]! * dir[i]!;
    return s;
  };

  const res: LogitAttribution = { heads: [], mlp: [], attnBias: [], embed: dot(positionRow(cache.get("embed"), batch, pos)), total: 0, rms };
  for (let l = 0; l < L; l++) {
    const attn = model.model.layers[l]!.self_attn;
    const WO = (await be.read(attn.o_proj.weight)).toFloat32(); // [hidden, heads*head_dim]
    // g = W_Oᵀ dir: what each z coordinate is worth in the logit.
    const g = new Float64Array(n * D);
    for (let i = 0; i < Hd; i++) {
      const di = dir[i]!;
      const row = i * n * D;
      for (let j = 0; j < n * D; j++) g[j]! += WO[row + j]! * di;
    }
    const z = cache.layer("self_attn.z", l); // [B, heads, T, head_dim]
    const zd = z.toFloat32();
    const perHead: number[] = [];
    for (let h = 0; h < n; h++) {
      const off = ((batch * n + h) * T + pos) * D;
      let s = 0;
      for (let d = 0; d < D; d++) s += zd[off + d]! * g[h * D + d]!;
      perHead.push(s);
    }
    res.heads.push(perHead);
    res.attnBias.push(attn.o_proj.bias ? dot((await be.read(attn.o_proj.bias)).toFloat32()) : 0);
    res.mlp.push(dot(positionRow(cache.layer("mlp.down_proj", l), batch, pos)));
  }
  res.total = res.embed + res.heads.flat().reduce((a, b) => a + b, 0) + res.mlp.reduce((a, b) => a + b, 0) + res.attnBias.reduce((a, b) => a + b, 0);
  return res;
}
