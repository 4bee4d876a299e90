/**
 * The math of TRL's DPOTrainer._compute_loss (trl 1.13), on host Vars with
 * analytic backwards. Inputs are the logits at the positions that predict a
 * completion token (the rest of TRL's shifted, masked [2B, T-1, V] tensor is
 * zeroed out of every sum anyway):
 *
 *   logps        per sequence: Σ over completion tokens of log softmax(logits)[token]
 *   Δ            (π_c − ref_c) − (π_r − ref_r)         (log-ratio difference)
 *   sigmoid      −log σ(β·Δ)                              (TRL's default; no label smoothing)
 *   ipo          (Δ' − 1/(2β))², Δ' with each log-ratio divided by its completion's
 *                token count (TRL's length normalization)
 *   robust       (−(1−ε)·log σ(βΔ) + ε·log σ(−βΔ)) / (1 − 2ε)   (TRL's use of label_smoothing ε)
 *   apo_zero     (1 − σ(β·(π_c − ref_c))) + σ(β·(π_r − ref_r))   (APO-zero)
 *   sft          −Σ chosen logps / (chosen tokens): the chosen completions' NLL per token, over the batch
 *   loss         Σ over the loss types of weight · (mean over pairs)
 *
 * and the metrics TRL logs, under its names. Several loss types sum with
 * TRL's loss_weights; ["sigmoid", "sft"] is TRL's form of RPO (the DPO loss
 * plus an NLL term that keeps the chosen text likely).
 */
import { ConfigError, LlamaError } from "../errors.js";
import { Var, result } from "../autograd/var.js";
import { IGNORE_INDEX, jsSoftmaxRows, type SoftmaxRowsKernel } from "../autograd/loss.js";
import { softplus } from "./reward.js";

const f = Math.fround;

export type DpoLossType = "sigmoid" | "ipo" | "robust" | "apo_zero" | "sft";
export const DPO_LOSS_TYPES: readonly DpoLossType[] = ["sigmoid", "ipo", "robust", "apo_zero", "sft"];

export interface DpoLossConfig {
  /** β (TRL's default 0.1); for ipo the regularization τ. */
  beta: number;
  /** TRL's loss_type: one loss, or several summed (weighted by lossWeights). */
  lossType: DpoLossType | readonly DpoLossType[];
  /** TRL's loss_weights: one per loss type (default 1 each). */
  lossWeights?: readonly number[];
  /** ε of the robust loss, in [0, 0.5) (TRL applies label_smoothing only there and in exo_pair). */
  labelSmoothing: number;
}

const typesOf = (t: DpoLossConfig["lossType"]): readonly DpoLossType[] => (typeof t === "string" ? [t] : t);

/** The loss types of a config with their weights. */
export function lossTerms(c: Pick<DpoLossConfig, "lossType" | "lossWeights">): { type: DpoLossType; weight: number }[] {
  return typesOf(c.lossType).map((type, i) => ({ type, weight: c.lossWeights?.[i] ?? 1 }));
}

export function checkDpoLossConfig(c: DpoLossConfig): void {
  const types = typesOf(c.lossType);
  if (types.length === 0) throw new ConfigError(`DPO loss type: an empty list (expected one or more of ${DPO_LOSS_TYPES.join(", ")})`);
  for (const t of types) if (!DPO_LOSS_TYPES.includes(t)) throw new ConfigError(`DPO loss type "${t}": expected one of ${DPO_LOSS_TYPES.join(", ")}`);
  if (new Set(types).size !== types.length) throw new ConfigError(`DPO loss types ${types.join(", ")}: each may appear once`);
  if (c.lossWeights !== undefined) {
    if (c.lossWeights.length !== types.length) throw new ConfigError(`DPO loss weights ${c.lossWeights.join(", ")}: expected one per loss type (${types.join(", ")})`);
    for (const w of c.lossWeights) if (!Number.isFinite(w)) throw new ConfigError(`DPO loss weight ${w}: expected a finite number`);
  }
  if (!(c.beta > 0 && Number.isFinite(c.beta))) throw new ConfigError(`DPO beta ${c.beta}: expected a positive number`);
  if (!(c.labelSmoothing >= 0 && c.labelSmoothing < 0.5)) throw new ConfigError(`DPO label_smoothing ${c.labelSmoothing}: expected a number in [0, 0.5)`);
  if (c.labelSmoothing > 0 && !types.includes("robust")) {
    throw new ConfigError(`DPO label_smoothing ${c.labelSmoothing} with loss ${types.join(", ")}: TRL uses label smoothing only in the "robust" loss`);
  }
}

/** Per-token statistics TRL logs, gathered in the same pass as the log-probs. */
export interface TokenStats {
  /** Σ per-token entropy over completion tokens (chosen and rejected). */
  entropySum: number;
  /** Completion tokens (chosen and rejected). */
  tokens: number;
  /** Σ over chosen / rejected completion tokens of the mean logit over the vocabulary. */
  logitMeanChosen: number;
  logitMeanRejected: number;
  chosenTokens: number;
  rejectedTokens: number;
  /** Chosen completion tokens the policy's argmax predicts. */
  correctChosen: number;
}

/**
 * Sequence log-probabilities [N] from logits [N, K, V] and targets [N·K]
 * (IGNORE_INDEX where a slot predicts nothing); rows 0..N/2−1 are chosen.
 * Backward: g_n · (onehot(target) − softmax) at each counted slot. The
 * softmax statistics come from `softmaxRows` (a backend's kernel, else JavaScript).
 */
export function sequenceLogps(logits: Var, targets: Int32Array, softmaxRows: SoftmaxRowsKernel = jsSoftmaxRows): { logps: Var; stats: TokenStats } {
  const [N, K, V] = logits.shape as [number, number, number];
  if (logits.shape.length !== 3 || targets.length !== N * K) throw new LlamaError(`sequenceLogps: logits [${logits.shape}] and ${targets.length} targets`);
  const x = logits.value;
  const counted: number[] = [];
  for (let slot = 0; slot < N * K; slot++) if (targets[slot] !== IGNORE_INDEX) counted.push(slot);
  const rows = Int32Array.from(counted);
  // the softmax at each counted slot, kept for a backward (which then needs no second pass of exps)
  const probs = logits.requiresGrad ? new Float32Array(logits.size) : undefined;
  const rowStats = softmaxRows(x, V, rows, probs);
  const sums = new Float64Array(N);
  const stats: TokenStats = { entropySum: 0, tokens: 0, logitMeanChosen: 0, logitMeanRejected: 0, chosenTokens: 0, rejectedTokens: 0, correctChosen: 0 };
  rows.forEach((slot, u) => {
    const n = Math.floor(slot / K), t = targets[slot]!;
    const max = rowStats[5 * u]!, arg = rowStats[5 * u + 1]!, sumLogits = rowStats[5 * u + 2]!, z = rowStats[5 * u + 3]!, weightedSum = rowStats[5 * u + 4]!;
    const l = max + Math.log(z);
    sums[n] = sums[n]! + x[slot * V + t]! - l;
    // H = log z − Σ p·(x − max)
    stats.entropySum += Math.log(z) - weightedSum / z;
    stats.tokens++;
    if (n < N / 2) {
      stats.logitMeanChosen += sumLogits / V;
      stats.chosenTokens++;
      if (arg === t) stats.correctChosen++;
    } else {
      stats.logitMeanRejected += sumLogits / V;
      stats.rejectedTokens++;
    }
  });
  const logps = result(Float32Array.from(sums), [N], [logits], () => ({
    name: "sequenceLogps",
    inputs: [logits],
    backward: (g) => {
      // written over the softmax it was kept for (it has no other reader; uncounted slots hold zeros)
      const dx = probs!;
      rows.forEach((slot) => {
        const gn = g[Math.floor(slot / K)]!, o = slot * V, t = targets[slot]!;
        if (gn === 0) return void dx.fill(0, o, o + V);
        for (let v = 0; v < V; v++) dx[o + v] = -dx[o + v]! * gn;
        dx[o + t] = dx[o + t]! + gn;
      });
      return [dx];
    },
  }));
  return { logps, stats };
}

/** The token counts the losses normalize by. */
export interface CompletionCounts {
  /** [2B] completion tokens per sequence, after truncation (TRL's completion_mask sums; ipo clamps each to ≥ 1). */
  lengths: ArrayLike<number>;
  /** Chosen completion tokens whose log-prob is counted (TRL's shifted mask over the chosen half; sft's denominator). */
  chosenTokens: number;
}

/**
 * The DPO loss over B pairs from the policy's logps [2B] (chosen first, a Var)
 * and the reference's [2B] (numbers): Σ over the config's loss types of
 * weight · loss. Its gradient reaches the policy's logps only.
 */
export function dpoLoss(policy: Var, ref: ArrayLike<number>, counts: CompletionCounts, c: DpoLossConfig): Var {
  const B = policy.size / 2;
  if (!Number.isInteger(B) || B < 1 || ref.length !== 2 * B || counts.lengths.length !== 2 * B) {
    throw new LlamaError(`dpoLoss: ${policy.size} policy logps, ${ref.length} reference, ${counts.lengths.length} lengths (expected 2B each)`);
  }
  const p = policy.value, beta = c.beta, eps = c.labelSmoothing;
  const grad = new Float64Array(2 * B); // ∂loss/∂logp per sequence
  let total = 0;
  for (const { type, weight } of lossTerms(c)) {
    if (type === "sft") {
      // TRL: cross_entropy over the chosen half's completion tokens, a mean over tokens (not pairs)
      const n = Math.max(1, counts.chosenTokens);
      for (let i = 0; i < B; i++) {
        total -= (weight * p[i]!) / n;
        grad[i] = grad[i]! - weight / n;
      }
      continue;
    }
    let sum = 0;
    for (let i = 0; i < B; i++) {
      const lc = p[i]! - ref[i]!, lr = p[B + i]! - ref[B + i]!;
      let dc: number, dr: number; // ∂(this pair's loss)/∂π_c, ∂/∂π_r
      if (type === "ipo") {
        const nc = Math.max(1, counts.lengths[i]!), nr = Math.max(1, counts.lengths[B + i]!);
        const u = lc / nc - lr / nr - 1 / (2 * beta);
        sum += u * u;
        dc = (2 * u) / nc;
        dr = (-2 * u) / nr;
      } else if (type === "apo_zero") {
        // each log-ratio on its own: the chosen one pushed up, the rejected one down, both saturating
        const sc = 1 / (1 + Math.exp(-beta * lc)), sr = 1 / (1 + Math.exp(-beta * lr));
        sum += 1 - sc + sr;
        dc = -beta * sc * (1 - sc);
        dr = beta * sr * (1 - sr);
      } else {
        const z = beta * (lc - lr);
        const sNeg = 1 / (1 + Math.exp(z)); // σ(−z) = d/dz log σ(z)
        if (type === "sigmoid") {
          sum += softplus(-z);
          dc = -beta * sNeg;
        } else {
          const sPos = 1 - sNeg;
          sum += ((1 - eps) * softplus(-z) - eps * softplus(z)) / (1 - 2 * eps);
          dc = (-beta * ((1 - eps) * sNeg + eps * sPos)) / (1 - 2 * eps);
        }
        dr = -dc;
      }
      grad[i] = grad[i]! + (weight * dc) / B;
      grad[B + i] = grad[B + i]! + (weight * dr) / B;
    }
    total += (weight * sum) / B;
  }
  return result(new Float32Array([total]), [], [policy], () => ({
    name: `dpoLoss(${lossTerms(c).map((t) => t.type).join("+")})`,
    inputs: [policy],
    backward: (g) => [Float32Array.from(grad, (d) => f(g[0]! * d))],
  }));
}

/** TRL's DPO metrics of one batch (its names), plus the reference's logps beside the policy's. */
export function dpoMetrics(policy: ArrayLike<number>, ref: ArrayLike<number>, stats: TokenStats, beta: number): Record<string, number> {
  const B = policy.length / 2;
  let rc = 0, rr = 0, acc = 0, margin = 0, pc = 0, pr = 0, refc = 0, refr = 0;
  for (let i = 0; i < B; i++) {
    // As torch: rewards are β·(log-ratio) in float32.
    const cr = f(beta * f(policy[i]! - ref[i]!)), rj = f(beta * f(policy[B + i]! - ref[B + i]!));
    rc += cr; rr += rj;
    if (cr > rj) acc++;
    margin += cr - rj;
    pc += policy[i]!; pr += policy[B + i]!;
    refc += ref[i]!; refr += ref[B + i]!;
  }
  return {
    entropy: stats.tokens ? stats.entropySum / stats.tokens : 0,
    "logits/chosen": stats.chosenTokens ? stats.logitMeanChosen / stats.chosenTokens : 0,
    "logits/rejected": stats.rejectedTokens ? stats.logitMeanRejected / stats.rejectedTokens : 0,
    mean_token_accuracy: stats.chosenTokens ? stats.correctChosen / stats.chosenTokens : 0,
    "rewards/chosen": rc / B,
    "rewards/rejected": rr / B,
    "rewards/accuracies": acc / B,
    "rewards/margins": margin / B,
    "logps/chosen": pc / B,
    "logps/rejected": pr / B,
    "ref_logps/chosen": refc / B,
    "ref_logps/rejected": refr / B,
  };
}

/**
 * The mean per-token KL(π ‖ ref) of the next-token distributions at the
 * counted slots (the completion positions of the batch): Σ_v p·(log p − log q),
 * averaged over slots. Not a TRL metric: the "KL to the reference" curve,
 * measured on the data's own prefixes; needs the reference's logits (not
 * available with precomputed reference log-probs).
 */
export function completionKl(policyLogits: Float32Array, refLogits: Float32Array, targets: Int32Array, V: number): number {
  let total = 0, count = 0;
  for (let s = 0; s < targets.length; s++) {
    if (targets[s] === IGNORE_INDEX) continue;
    const o = s * V;
    let mp = -Infinity, mq = -Infinity;
    for (let v = 0; v < V; v++) {
      if (policyLogits[o + v]! > mp) mp = policyLogits[o + v]!;
      if (refLogits[o + v]! > mq) mq = refLogits[o + v]!;
    }
    let zp = 0, zq = 0, w = 0;
    for (let v = 0; v < V; v++) {
      const ep = Math.exp(policyLogits[o + v]! - mp);
      zp += ep;
      zq += Math.exp(refLogits[o + v]! - mq);
      w += ep * (policyLogits[o + v]! - mp - (refLogits[o + v]! - mq));
    }
    // Σ p (x_p − x_q) − log z_p + log z_q, with p = e^{x_p}/z_p (both shifted by their max)
    total += w / zp - Math.log(zp) + Math.log(zq);
    count++;
  }
  return count ? total / count : 0;
}

