/**
 * LoRA training as PEFT's LoraModel does it: each targeted Linear gets A
 * [r, in] and B [out, r] beside its frozen weight, y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ with
 * s = lora_alpha / r (lora_dropout 0), and only A and B are trained. PEFT's
 * init: A kaiming-uniform (bound 1/√in), B zeros. The base model runs on a
 * differentiable backend (the CPU tape or WebGPU), unchanged: during a forward
 * the targeted Linears carry the low-rank path (lib/model/modules.ts).
 *
 * A sequence-classification base (LlamaForSequenceClassification) is PEFT's
 * SEQ_CLS task: the LoRA pairs on the decoder, plus the `score` head trained
 * whole (PEFT's modules_to_save ["classifier", "score"]), as an own copy so
 * the base model's head stays as it was.
 *
 * Saved in PEFT's format (adapter_config.json with peft_type LORA +
 * adapter_model.safetensors, keys `base_model.model.<module>.lora_A.weight`,
 * and for SEQ_CLS `base_model.model.score.weight`), which
 * `readLoraAdapter`/`loadLora` and PEFT's `PeftModel.from_pretrained` read.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { InputError, LlamaError } from "../errors.js";
import { Tensor } from "../tensor/tensor.js";
import { saveSafetensors } from "../io/safetensors.js";
import { writeTextAtomic } from "../io/atomic.js";
import { Var } from "../autograd/var.js";
import { causalLMLoss } from "../autograd/loss.js";
import { backprop, isDifferentiable } from "../autograd/differentiable.js";
import type { LlamaForCausalLM } from "../model/causal-lm.js";
import type { LlamaForSequenceClassification } from "../model/seq-cls.js";
import type { Linear } from "../model/modules.js";
import { SeededRng } from "../generate/rng.js";
import { type LoraConfig, isTargeted, loraScaling, parseLoraConfig } from "./lora-config.js";
import type { LoraAdapter, LoraModuleWeights } from "./lora.js";
import { collate, type TokenExample } from "./prompt-data.js";
import { trainLoop, type TrainLoopOptions, type TrainResult } from "./train-loop.js";

/** The fields of PEFT's LoraConfig this trainer uses (the rest take PEFT's defaults). */
export interface LoraTrainConfigInit {
  r: number;
  lora_alpha: number;
  /**
   * Module-name suffixes (e.g. ["q_proj", "v_proj"]), one regex for the whole name, or PEFT's
   * "all-linear": every Linear but the output layer, saved as their names (as PEFT saves it).
   */
  target_modules: string[] | string;
  use_rslora?: boolean;
  layers_to_transform?: number[] | null;
}

/** What LoRA adapts: a causal LM (task CAUSAL_LM) or a sequence classifier (task SEQ_CLS). */
export type LoraBaseModel = LlamaForCausalLM | LlamaForSequenceClassification;

function isCausalLM(m: LoraBaseModel): m is LlamaForCausalLM {
  return "lm_head" in m;
}

/** PEFT's modules_to_save for SEQ_CLS: the head under either name HF uses. */
export const SEQ_CLS_MODULES_TO_SAVE = ["classifier", "score"];

/** One trainable pair: module name, its Linear, A and B as Vars, the scaling. */
interface Pair {
  readonly module: string;
  readonly linear: Linear;
  readonly A: Var;
  readonly B: Var;
  readonly scaling: number;
}

export interface LoraBatch {
  inputIds: number[][];
  attentionMask?: number[][];
  /** [B][T] target ids (-100 = no loss), as HF's labels (shifted inside the loss). */
  labels?: number[][];
}

/**
 * Every Linear of a causal LM by PEFT module name (`model.layers.0.self_attn.q_proj`, …, `lm_head`).
 * A tied `lm_head` (it is the embedding table) is left out: an adapter on it could not be merged
 * into a weight of its own.
 */
export function linearModules(model: LoraBaseModel): Map<string, Linear> {
  const out = new Map<string, Linear>();
  model.model.layers.forEach((layer, i) => {
    const a = layer.self_attn, m = layer.mlp;
    for (const [n, l] of [["q_proj", a.q_proj], ["k_proj", a.k_proj], ["v_proj", a.v_proj], ["o_proj", a.o_proj]] as const) out.set(`model.layers.${i}.self_attn.${n}`, l);
    for (const [n, l] of [["gate_proj", m.gate_proj], ["up_proj", m.up_proj], ["down_proj", m.down_proj]] as const) out.set(`model.layers.${i}.mlp.${n}`, l);
  });
  if (isCausalLM(model) && !model.config.tie_word_embeddings) out.set("lm_head", model.lm_head);
  return out;
}

export class LoraModel {
  private constructor(
    readonly base: LoraBaseModel,
    readonly config: LoraConfig,
    private readonly pairs: readonly Pair[],
    /** SEQ_CLS: the adapter's own classification head [num_labels, hidden], trained whole (modules_to_save). */
    readonly head: Var | undefined,
  ) {}

  /**
   * Adds fresh LoRA pairs to `base` as PEFT's get_peft_model: A kaiming-uniform
   * (seeded), B zeros — so the model's output is unchanged until the first step.
   */
  static create(base: LoraBaseModel, init: LoraTrainConfigInit, options: { seed?: number; head?: Float32Array } = {}): LoraModel {
    const config = parseLoraConfig(configJson(base, init), "LoraModel.create");
    const rng = new SeededRng(options.seed ?? 0);
    return LoraModel.build(base, config, options.head, (module, r, inF, outF) => {
      const bound = 1 / Math.sqrt(inF); // kaiming_uniform_(a=√5): √(6 / ((1 + 5)·fan_in))
      const A = Float32Array.from({ length: r * inF }, () => (rng.nextFloat() * 2 - 1) * bound);
      return { A, B: new Float32Array(outF * r) };
    });
  }

  /** Adds LoRA pairs with given starting values (e.g. a PEFT run's), keyed by module name. */
  static fromValues(base: LoraBaseModel, init: LoraTrainConfigInit, values: ReadonlyMap<string, { A: Float32Array; B: Float32Array }>,
    options: { head?: Float32Array } = {}): LoraModel {
    const config = parseLoraConfig(configJson(base, init), "LoraModel.fromValues");
    return LoraModel.build(base, config, options.head, (module) => {
      const v = values.get(module);
      if (!v) throw new InputError(`LoraModel.fromValues: no values for targeted module ${module}`);
      return v;
    });
  }

  /** Continues training a saved adapter (ours or PEFT's): its config, its A and B as the starting values. */
  static fromAdapter(base: LoraBaseModel, adapter: LoraAdapter): LoraModel {
    const seqCls = adapter.config.task_type === "SEQ_CLS";
    if (seqCls === isCausalLM(base)) {
      throw new InputError(`LoRA adapter ${adapter.source}: task_type ${JSON.stringify(adapter.config.task_type)} does not fit a ${isCausalLM(base) ? "causal LM (CAUSAL_LM)" : "sequence classifier (SEQ_CLS)"}`);
    }
    if (seqCls && !adapter.head) throw new InputError(`LoRA adapter ${adapter.source}: a SEQ_CLS adapter without its score head (modules_to_save)`);
    const head = adapter.head?.toFloat32();
    return LoraModel.build(base, adapter.config, head, (module, r, inF, outF) => {
      const m = adapter.modules.get(module);
      if (!m) throw new InputError(`LoRA adapter ${adapter.source}: no A/B for targeted module ${module}`);
      if (m.A.shape[0] !== r || m.A.shape[1] !== inF || m.B.shape[0] !== outF || m.B.shape[1] !== r) {
        throw new InputError(`LoRA adapter ${adapter.source}: ${module} has A [${m.A.shape.join(", ")}] and B [${m.B.shape.join(", ")}], the model needs [${r}, ${inF}] and [${outF}, ${r}]`);
      }
      return { A: m.A.toFloat32(), B: m.B.toFloat32() };
    });
  }

  private static build(base: LoraBaseModel, config: LoraConfig, head: Float32Array | undefined,
    make: (module: string, r: number, inF: number, outF: number) => { A: Float32Array; B: Float32Array }): LoraModel {
    const pairs: Pair[] = [];
    for (const [module, linear] of linearModules(base)) {
      if (!isTargeted(config, module)) continue;
      const [outF, inF] = linear.weight.shape as [number, number];
      const { r, scaling } = loraScaling(config, module);
      const { A, B } = make(module, r, inF, outF);
      if (A.length !== r * inF || B.length !== outF * r) {
        throw new InputError(`LoRA ${module}: A has ${A.length} values, B ${B.length}; expected [${r}, ${inF}] and [${outF}, ${r}]`);
      }
      pairs.push({ module, linear, A: Var.param(Float32Array.from(A), [r, inF]), B: Var.param(Float32Array.from(B), [outF, r]), scaling });
    }
    if (pairs.length === 0) throw new InputError(`LoRA: target_modules ${JSON.stringify(config.target_modules)} match no Linear of the model`);
    let headVar: Var | undefined;
    if (!isCausalLM(base)) {
      const shape = base.score.weight.shape;
      if (!head) throw new InputError("LoRA (SEQ_CLS): give the score head's starting values (options.head; scoreHeadValues(base) reads the base model's)");
      if (head.length !== shape[0]! * shape[1]!) throw new InputError(`LoRA (SEQ_CLS): the score head has ${head.length} values, the model needs [${shape.join(", ")}]`);
      headVar = Var.param(Float32Array.from(head), shape);
    }
    return new LoraModel(base, config, pairs, headVar);
  }

  /** The trainable tensors, A then B for each module in model order (then the SEQ_CLS head, as PEFT orders them). */
  parameters(): Var[] {
    const ab = this.pairs.flatMap((p) => [p.A, p.B]);
    return this.head ? [...ab, this.head] : ab;
  }

  /** Module name → its current A and B. */
  get modules(): ReadonlyMap<string, { A: Var; B: Var; scaling: number }> {
    return new Map(this.pairs.map((p) => [p.module, { A: p.A, B: p.B, scaling: p.scaling }]));
  }

  /**
   * Runs `fn` with the adapter active: every targeted Linear carries its
   * low-rank path and (SEQ_CLS) the score head is the adapter's, tracked for
   * the backward when `grad`. Outside this call the base model is plain.
   */
  async withAdapter<R>(grad: boolean, fn: () => Promise<R>): Promise<R> {
    const be = this.base.backend;
    const diff = isDifferentiable(be);
    const upload = (v: Var) => be.upload(diff && grad ? be.asTensor(v) : new Tensor(v.value, v.shape, "f32"));
    if (this.pairs.some((p) => p.linear.lora)) throw new LlamaError("LoRA: an adapter is already active on this model (nested withAdapter)");
    for (const p of this.pairs) p.linear.lora = { A: upload(p.A), B: upload(p.B), scaling: p.scaling };
    const score = isCausalLM(this.base) ? undefined : this.base.score;
    const baseHeadWeight = score?.weight;
    if (score && this.head) score.weight = upload(this.head);
    try {
      return await fn();
    } finally {
      for (const p of this.pairs) {
        be.release(p.linear.lora!.A);
        be.release(p.linear.lora!.B);
        p.linear.lora = undefined;
      }
      if (score && baseHeadWeight) {
        be.release(score.weight);
        score.weight = baseHeadWeight;
      }
    }
  }

  /**
   * Runs `fn` on the base model with the adapter disabled (PEFT's
   * disable_adapter(): what TRL's DPO uses as the reference model). The
   * adapter is only ever active inside withAdapter, so this checks that and runs `fn`.
   */
  async withAdapterDisabled<R>(fn: () => Promise<R>): Promise<R> {
    if (this.pairs.some((p) => p.linear.lora)) throw new LlamaError("LoRA: cannot disable the adapter inside withAdapter");
    return fn();
  }

  /**
   * The forward with the adapter: logits [B, T, V] (SEQ_CLS: [B, num_labels]), and the
   * causal-LM loss as a Var when labels are given on a differentiable backend.
   */
  async forward(batch: LoraBatch, options: { grad?: boolean } = {}): Promise<{ logits: Tensor; loss?: Var }> {
    const be = this.base.backend;
    const grad = options.grad !== false;
    const out = await this.withAdapter(grad, () => this.base.forward({ inputIds: batch.inputIds, attentionMask: batch.attentionMask, useCache: false }));
    if (!isDifferentiable(be) || !grad) return { logits: out.logits };
    const loss = batch.labels && isCausalLM(this.base) ? causalLMLoss(be.varOf(out.logits), batch.labels) : undefined;
    if (!loss) be.discardTape?.();
    return { logits: out.logits, loss };
  }

  /** One forward + backward; gradients accumulate into each A and B. Returns the loss. */
  async lossAndGrad(batch: LoraBatch): Promise<number> {
    const be = this.base.backend;
    if (!isDifferentiable(be)) {
      throw new LlamaError("LoRA training needs the base model on a differentiable backend (createDifferentiableBackend(\"cpu\" | \"webgpu\"))");
    }
    if (!batch.labels) throw new InputError("LoRA training: the batch has no labels");
    const { loss } = await this.forward(batch);
    await backprop(be, loss!);
    return loss!.item();
  }

  /** The adapter as `loadLora` takes it (for inference with the merged weights). */
  toAdapter(): LoraAdapter {
    const modules = new Map<string, LoraModuleWeights>(this.pairs.map((p) => [p.module, {
      module: p.module, A: new Tensor(p.A.value.slice(), p.A.shape, "f32"), B: new Tensor(p.B.value.slice(), p.B.shape, "f32"), scaling: p.scaling,
    }]));
    const head = this.head ? new Tensor(this.head.value.slice(), this.head.shape, "f32") : undefined;
    return { source: "LoraModel", config: this.config, modules, head };
  }

  /** PEFT's adapter folder: adapter_model.safetensors (written first) and adapter_config.json. */
  savePretrained(dir: string, options: { baseModelNameOrPath?: string } = {}): void {
    fs.mkdirSync(dir, { recursive: true });
    const tensors: Record<string, Tensor> = {};
    for (const p of this.pairs) {
      tensors[`base_model.model.${p.module}.lora_A.weight`] = new Tensor(p.A.value.slice(), p.A.shape, "f32");
      tensors[`base_model.model.${p.module}.lora_B.weight`] = new Tensor(p.B.value.slice(), p.B.shape, "f32");
    }
    // PEFT saves a modules_to_save copy under the wrapped module's own name.
    if (this.head) tensors["base_model.model.score.weight"] = new Tensor(this.head.value.slice(), this.head.shape, "f32");
    saveSafetensors(path.join(dir, "adapter_model.safetensors"), tensors, { metadata: { format: "pt" } });
    const c = this.config;
    const json = {
      peft_type: "LORA", task_type: this.head ? "SEQ_CLS" : "CAUSAL_LM", base_model_name_or_path: options.baseModelNameOrPath ?? c.base_model_name_or_path,
      r: c.r, lora_alpha: c.lora_alpha, target_modules: c.target_modules, lora_dropout: 0.0, bias: "none", fan_in_fan_out: false,
      use_rslora: c.use_rslora, use_dora: false, init_lora_weights: true, layers_to_transform: c.layers_to_transform,
      rank_pattern: c.rank_pattern, alpha_pattern: c.alpha_pattern, modules_to_save: this.head ? SEQ_CLS_MODULES_TO_SAVE : null, inference_mode: true, revision: null,
    };
    writeTextAtomic(path.join(dir, "adapter_config.json"), JSON.stringify(json, null, 2) + "\n");
  }
}

/** The adapter_config fields for a new adapter on `base` (SEQ_CLS adds PEFT's modules_to_save). */
/** PEFT's shorthand for every Linear layer but the output layer (lm_head; a classifier's score head is modules_to_save). */
export const ALL_LINEAR = "all-linear";

function configJson(base: LoraBaseModel, init: LoraTrainConfigInit): Record<string, unknown> {
  // PEFT expands the shorthand to the layers' last names before it trains or saves
  const targets = init.target_modules === ALL_LINEAR
    ? [...new Set([...linearModules(base).keys()].filter((name) => name !== "lm_head").map((name) => name.slice(name.lastIndexOf(".") + 1)))].sort()
    : init.target_modules;
  return isCausalLM(base)
    ? { ...init, target_modules: targets, task_type: "CAUSAL_LM", peft_type: "LORA" }
    : { ...init, target_modules: targets, task_type: "SEQ_CLS", peft_type: "LORA", modules_to_save: SEQ_CLS_MODULES_TO_SAVE };
}

/** A copy of a sequence classifier's score head [num_labels · hidden] (what a SEQ_CLS adapter's trainable head starts from). */
export async function scoreHeadValues(base: LlamaForSequenceClassification): Promise<Float32Array> {
  return (await base.backend.read(base.score.weight)).toFloat32().slice();
}

export interface LoraTrainOptions extends TrainLoopOptions {
  /** Pad id for batches (default: the model's pad_token_id, else 0; padding is masked). */
  padTokenId?: number;
}

/** Trains a causal-LM LoRA adapter on token examples (labels −100 = no loss) with the one training loop. */
export async function trainLora(lora: LoraModel, examples: readonly TokenExample[], o: LoraTrainOptions): Promise<TrainResult> {
  if (lora.head) throw new InputError("trainLora trains causal-LM adapters; a SEQ_CLS adapter is trained by trainReward");
  const pad = o.padTokenId ?? lora.base.config.pad_token_id ?? 0;
  return trainLoop(examples, {
    name: "lora-train",
    parameters: lora.parameters(),
    lossAndGrad: async (batch) => {
      const b = collate(batch, pad, "right");
      return { loss: await lora.lossAndGrad({ inputIds: b.inputIds, attentionMask: b.attentionMask, labels: b.labels! }) };
    },
    length: (e) => e.inputIds.length,
  }, o);
}
