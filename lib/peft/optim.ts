/**
 * Optimizers with torch's exact update rules and defaults (torch.optim.Adam /
 * AdamW, single-tensor path, which is what torch runs for CPU tensors), in
 * float32 arithmetic step by step so a trajectory matches torch's to the last
 * few ulps. Plus gradient clipping as torch.nn.utils.clip_grad_norm_.
 */
import { ConfigError, LlamaError } from "../errors.js";
import type { Var } from "../autograd/var.js";

const f = Math.fround;

export interface AdamOptions {
  /** Learning rate (torch default 1e-3). */
  lr?: number;
  /** (beta1, beta2), torch default (0.9, 0.999). */
  betas?: [number, number];
  /** Added to the denominator, torch default 1e-8. */
  eps?: number;
  /** Adam: L2 penalty added to the gradient (default 0). AdamW: decoupled decay (default 0.01). */
  weightDecay?: number;
  /** The AMSGrad variant (default false). */
  amsgrad?: boolean;
}

interface ParamState {
  step: number;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
  maxExpAvgSq?: Float32Array;
}

/** Serializable optimizer state (for resuming a run). */
export interface OptimizerState {
  step: number[];
  expAvg: Float32Array[];
  expAvgSq: Float32Array[];
}

abstract class AdamBase {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly amsgrad: boolean;
  private readonly state: ParamState[];

  constructor(readonly params: readonly Var[], options: AdamOptions, defaultWeightDecay: number, readonly decoupled: boolean) {
    this.lr = options.lr ?? 1e-3;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? defaultWeightDecay;
    this.amsgrad = options.amsgrad ?? false;
    // torch's argument checks
    if (!(this.lr >= 0)) throw new ConfigError(`optimizer: invalid learning rate ${this.lr} (expected >= 0)`);
    if (!(this.eps >= 0)) throw new ConfigError(`optimizer: invalid epsilon ${this.eps} (expected >= 0)`);
    this.betas.forEach((b, i) => {
      if (!(b >= 0 && b < 1)) throw new ConfigError(`optimizer: invalid beta parameter at index ${i}: ${b} (expected 0 <= beta < 1)`);
    });
    if (!(this.weightDecay >= 0)) throw new ConfigError(`optimizer: invalid weight_decay ${this.weightDecay} (expected >= 0)`);
    for (const p of params) if (!p.requiresGrad) throw new LlamaError(`optimizer: a parameter of shape [${p.shape.join(", ")}] does not require a gradient`);
    this.state = params.map((p) => ({
      step: 0,
      expAvg: new Float32Array(p.size),
      expAvgSq: new Float32Array(p.size),
      maxExpAvgSq: this.amsgrad ? new Float32Array(p.size) : undefined,
    }));
  }

  /** Clears every parameter's gradient (torch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    const [beta1, beta2] = this.betas;
    const lr = this.lr, wd = this.weightDecay;
    const w1 = f(1 - beta1), b2 = f(beta2), w2 = f(1 - beta2), eps = f(this.eps);
    this.params.forEach((p, k) => {
      const grad = p.grad;
      if (!grad) return; // torch skips parameters whose grad is None
      const st = this.state[k]!;
      const param = p.value, m = st.expAvg, v = st.expAvgSq, vmax = st.maxExpAvgSq;
      st.step += 1;
      if (this.decoupled && wd !== 0) {
        const decay = f(1 - lr * wd); // param.mul_(1 - lr * weight_decay)
        for (let i = 0; i < param.length; i++) param[i] = f(param[i]! * decay);
      }
      const bc1 = 1 - beta1 ** st.step;
      const bc2 = 1 - beta2 ** st.step;
      const stepSize = f(lr / bc1);
      const bc2Sqrt = f(Math.sqrt(bc2));
      const l2 = !this.decoupled && wd !== 0 ? f(wd) : 0;
      for (let i = 0; i < param.length; i++) {
        const g = l2 ? f(grad[i]! + f(l2 * param[i]!)) : grad[i]!; // grad.add(param, alpha=weight_decay)
        m[i] = f(m[i]! + w1 * f(g - m[i]!)); // exp_avg.lerp_(grad, 1 - beta1): one fused multiply-add
        v[i] = f(f(v[i]! * b2) + f(f(w2 * g) * g)); // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        let vv = v[i]!;
        if (vmax) {
          vmax[i] = Math.max(vmax[i]!, vv);
          vv = vmax[i]!;
        }
        const denom = f(f(f(Math.sqrt(vv)) / bc2Sqrt) + eps); // (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        param[i] = f(param[i]! + f(f(-stepSize * m[i]!) / denom)); // param.addcdiv_(exp_avg, denom, value=-step_size)
      }
    });
  }

  /** A copy of the moment estimates (for checkpoints). */
  stateDict(): OptimizerState {
    return {
      step: this.state.map((s) => s.step),
      expAvg: this.state.map((s) => s.expAvg.slice()),
      expAvgSq: this.state.map((s) => s.expAvgSq.slice()),
    };
  }
}

/** torch.optim.Adam (L2 weight decay added to the gradient; default 0). */
export class Adam extends AdamBase {
  constructor(params: readonly Var[], options: AdamOptions = {}) {
    super(params, options, 0, false);
  }
}

/** torch.optim.AdamW (decoupled weight decay, default 0.01). */
export class AdamW extends AdamBase {
  constructor(params: readonly Var[], options: AdamOptions = {}) {
    super(params, options, 0.01, true);
  }
}

export type Optimizer = Adam | AdamW;

/**
 * torch.nn.utils.clip_grad_norm_: scales all gradients by
 * min(1, maxNorm / (totalNorm + 1e-6)) where totalNorm is the p-norm of the
 * per-parameter norms. Returns the total norm before clipping.
 */
export function clipGradNorm(params: readonly Var[], maxNorm: number, normType = 2): number {
  const grads = params.map((p) => p.grad).filter((g): g is Float32Array => g !== null);
  if (grads.length === 0) return 0;
  let total: number;
  if (normType === Infinity) {
    total = 0;
    for (const g of grads) for (let i = 0; i < g.length; i++) total = Math.max(total, Math.abs(g[i]!));
  } else {
    let acc = 0;
    for (const g of grads) {
      let s = 0;
      for (let i = 0; i < g.length; i++) s += Math.abs(g[i]!) ** normType;
      acc += f(s ** (1 / normType)) ** normType;
    }
    total = f(acc ** (1 / normType));
  }
  const coef = Math.min(1, f(maxNorm / f(total + 1e-6)));
  if (coef < 1) for (const g of grads) for (let i = 0; i < g.length; i++) g[i] = f(g[i]! * coef);
  return total;
}
