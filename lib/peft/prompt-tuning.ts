/**
 * Prompt tuning as PEFT does it: a trainable table of `num_virtual_tokens`
 * embeddings [n, hidden] prepended to the frozen model's input embeddings.
 * PEFT's forward (PeftModelForCausalLM / …ForSequenceClassification with
 * PROMPT_TUNING): inputs_embeds = cat(prompt, word_embeddings(input_ids)),
 * attention mask = cat(ones(n), mask), labels = cat(full(n, -100), labels),
 * and no position_ids, so the base model numbers positions 0..n+T-1 with the
 * virtual tokens at 0..n-1.
 *
 * The base model is the library's own (lib/model), unchanged; on a
 * differentiable backend (the CPU TapeBackend or the WebGPU tape, see
 * lib/autograd/differentiable.ts) its forward is differentiable, so the loss
 * backpropagates to the prompt. On any other backend the same class runs inference.
 */
import { FormatError, InputError, LlamaError } from "../errors.js";
import { Tensor } from "../tensor/tensor.js";
import { Var, backward } from "../autograd/var.js";
import { add, concatSeq, expandBatch, reshape, scale, selectRows } from "../autograd/ops.js";
import { crossEntropy, causalLMLoss, IGNORE_INDEX } from "../autograd/loss.js";
import { backprop, isDifferentiable } from "../autograd/differentiable.js";
import type { LlamaForCausalLM } from "../model/causal-lm.js";
import type { LlamaForSequenceClassification } from "../model/seq-cls.js";
import { PromptTuningConfig, type PromptTuningConfigInit } from "./prompt-config.js";
import { initialPromptIds, randomPrompt, type PromptTokenizer } from "./prompt-init.js";
import { loadPromptAdapter, savePromptAdapter } from "./prompt-io.js";
import { promptGenerationModel } from "./prompt-generate.js";
import { generate as runGenerate, streamGenerate } from "../generate/generate.js";
import type { GenerateOptions, GenerateOutput, StreamChunk } from "../generate/types.js";

export type PromptBaseModel = LlamaForCausalLM | LlamaForSequenceClassification;

export interface PromptBatch {
  /** [B][T] token ids (rows padded to one length). */
  inputIds: number[][];
  /** [B][T] 1 = token, 0 = padding; omitted = all ones. */
  attentionMask?: number[][];
  /** CAUSAL_LM: [B][T] target ids, -100 where no loss (the usual labels = input_ids with prompt/padding masked). SEQ_CLS: unused. */
  labels?: number[][];
  /** SEQ_CLS: one class index per row. */
  classLabels?: number[];
}

export interface CreateOptions {
  /** TEXT init: the tokenizer (encode adds BOS by default, as PEFT's AutoTokenizer call does). */
  tokenizer?: PromptTokenizer;
  /** Seed for RANDOM and SAMPLE_VOCAB init (default 0). */
  seed?: number;
}

function isCausalLM(m: PromptBaseModel): m is LlamaForCausalLM {
  return "lm_head" in m;
}

export class PromptTuningModel {
  private constructor(
    readonly base: PromptBaseModel,
    readonly config: PromptTuningConfig,
    /** The soft prompt [num_virtual_tokens, hidden], trainable. */
    readonly prompt: Var,
    /**
     * SEQ_CLS: this adapter's own copy of the classification head [num_labels, hidden], trained with
     * the prompt as PEFT does (modules_to_save "score"); the base model's head is left as it was.
     */
    private head?: Var,
  ) {}

  /** SEQ_CLS: the trainable head (undefined for CAUSAL_LM, or until first used when built by fromValues). */
  get score(): Var | undefined {
    return this.head;
  }

  /** What training updates: the prompt, and for SEQ_CLS the classification head. */
  async trainableParameters(): Promise<Var[]> {
    const head = await this.ensureHead();
    return head ? [this.prompt, head] : [this.prompt];
  }

  /** SEQ_CLS: the head, copied from the base model the first time it is needed. */
  private async ensureHead(): Promise<Var | undefined> {
    if (isCausalLM(this.base) || this.head) return this.head;
    const w = await this.base.backend.read(this.base.score.weight);
    this.head = Var.param(w.toFloat32().slice(), w.shape);
    return this.head;
  }

  /** Runs `fn` with the base model's SEQ_CLS head replaced by this adapter's (tracked when `grad`). */
  private async withHead<R>(grad: boolean, fn: () => Promise<R>): Promise<R> {
    const head = await this.ensureHead();
    if (!head || isCausalLM(this.base)) return fn();
    const be = this.base.backend;
    const linear = this.base.score;
    const original = linear.weight;
    const v = grad ? head : Var.constant(head.value, head.shape);
    linear.weight = be.upload(isDifferentiable(be) ? be.asTensor(v) : new Tensor(v.value, v.shape, "f32"));
    try {
      return await fn();
    } finally {
      be.release(linear.weight);
      linear.weight = original;
    }
  }

  /** Wraps `base` with a freshly initialized prompt (PEFT's get_peft_model). */
  static async create(base: PromptBaseModel, init: PromptTuningConfigInit, options: CreateOptions = {}): Promise<PromptTuningModel> {
    const H = base.config.hidden_size;
    const config = new PromptTuningConfig({
      ...init,
      token_dim: init.token_dim ?? H,
      num_transformer_submodules: init.num_transformer_submodules ?? 1,
      num_attention_heads: init.num_attention_heads ?? base.config.num_attention_heads,
      num_layers: init.num_layers ?? base.config.num_hidden_layers,
    });
    checkDims(config, H, "PromptTuningConfig");
    const n = config.totalVirtualTokens;
    let value: Float32Array;
    if (config.prompt_tuning_init === "RANDOM") {
      value = randomPrompt(n, H, options.seed ?? 0);
    } else {
      const ids = initialPromptIds(config, base.config.vocab_size, options);
      value = (await base.getInputEmbeddings([ids])).toFloat32().slice();
    }
    const pm = new PromptTuningModel(base, config, Var.param(value, [n, H]));
    await pm.ensureHead();
    return pm;
  }

  /**
   * Wraps `base` with a prompt given as values [n, hidden] (e.g. a fixture's init); for SEQ_CLS the
   * head starts as `options.score` [num_labels, hidden] or, when omitted, as the base model's.
   */
  static fromValues(base: PromptBaseModel, init: PromptTuningConfigInit, values: Float32Array, options: { score?: Float32Array } = {}): PromptTuningModel {
    const H = base.config.hidden_size;
    const config = new PromptTuningConfig({ ...init, token_dim: init.token_dim ?? H, num_transformer_submodules: init.num_transformer_submodules ?? 1 });
    checkDims(config, H, "PromptTuningConfig");
    const n = config.totalVirtualTokens;
    if (values.length !== n * H) throw new InputError(`prompt values: ${values.length} numbers, expected ${n} × ${H}`);
    let head: Var | undefined;
    if (options.score && !isCausalLM(base)) {
      const L = base.config.num_labels;
      if (options.score.length !== L * H) throw new InputError(`score values: ${options.score.length} numbers, expected ${L} × ${H}`);
      head = Var.param(Float32Array.from(options.score), [L, H]);
    }
    return new PromptTuningModel(base, config, Var.param(Float32Array.from(values), [n, H]), head);
  }

  /** Loads an adapter folder saved by PEFT or by `savePretrained`. */
  static async fromPretrained(base: PromptBaseModel, dir: string): Promise<PromptTuningModel> {
    const { config, prompt, score } = loadPromptAdapter(dir);
    const H = base.config.hidden_size;
    checkDims(config, H, `${dir}/adapter_config.json`);
    let head: Var | undefined;
    if (score && !isCausalLM(base)) {
      const L = base.config.num_labels;
      if (score.shape[0] !== L || score.shape[1] !== H) {
        throw new FormatError(dir, `the adapter's score head is [${score.shape.join(", ")}], the model needs [${L}, ${H}] (num_labels, hidden_size)`);
      }
      head = Var.param(score.values, [L, H]);
    }
    const pm = new PromptTuningModel(base, config, Var.param(prompt, [config.totalVirtualTokens, H]), head);
    await pm.ensureHead();
    return pm;
  }

  /**
   * Writes adapter_config.json + adapter_model.safetensors as PEFT does: key `prompt_embeddings`,
   * and for SEQ_CLS the trained head `base_model.score.weight`.
   */
  savePretrained(dir: string, options: { baseModelNameOrPath?: string } = {}): void {
    const score = this.head && { values: this.head.value, shape: this.head.shape };
    savePromptAdapter(dir, this.config, this.prompt.value, this.prompt.shape, options.baseModelNameOrPath, score);
  }

  get numVirtualTokens(): number {
    return this.config.totalVirtualTokens;
  }

  /** The prompt as a host tensor [n, hidden] (a copy). */
  promptEmbeddings(): Tensor {
    return new Tensor(this.prompt.value.slice(), this.prompt.shape, "f32");
  }

  /** True when the base model runs on a differentiable backend (training is possible). */
  get trainable(): boolean {
    return isDifferentiable(this.base.backend);
  }

  /** PEFT's input transformation: embeddings [B, n+T, H] (a Var linked to the prompt), mask [B][n+T]. */
  async embed(batch: PromptBatch, options: { grad?: boolean } = {}): Promise<{ embeds: Tensor; embedsVar: Var; attentionMask: number[][] }> {
    const B = batch.inputIds.length;
    if (B === 0) throw new InputError("prompt tuning: empty batch");
    const T = batch.inputIds[0]!.length;
    const words = await this.base.getInputEmbeddings(batch.inputIds); // [B, T, H]
    const wordVar = Var.constant(words.toFloat32(), words.shape);
    // Without grad (evaluation) the prompt enters as a constant, so nothing is recorded.
    const prompt = options.grad === false ? Var.constant(this.prompt.value, this.prompt.shape) : this.prompt;
    const embedsVar = concatSeq(expandBatch(prompt, B), wordVar); // [B, n+T, H]
    const n = this.numVirtualTokens;
    const mask = (batch.attentionMask ?? batch.inputIds.map(() => new Array<number>(T).fill(1))).map((row, b) => {
      if (row.length !== T) throw new InputError(`attention_mask[${b}] has ${row.length} entries, input_ids[${b}] ${T}`);
      return [...new Array<number>(n).fill(1), ...row];
    });
    const be = this.base.backend;
    const embeds = isDifferentiable(be) ? be.asTensor(embedsVar) : new Tensor(embedsVar.value, embedsVar.shape, "f32");
    return { embeds, embedsVar, attentionMask: mask };
  }

  /**
   * Generation with the soft prompt in front (PEFT's generate for prompt
   * tuning; see prompt-generate.ts): same options and output as the base
   * model's `generate`, sequences = input ids + new tokens. CAUSAL_LM only.
   */
  generate(opts: GenerateOptions & { returnDictInGenerate: true }): Promise<GenerateOutput>;
  generate(opts: GenerateOptions & { returnDictInGenerate?: false }): Promise<number[][]>;
  generate(opts: GenerateOptions): Promise<number[][] | GenerateOutput>;
  generate(opts: GenerateOptions): Promise<number[][] | GenerateOutput> {
    return runGenerate(this.generationModel(), opts);
  }

  /** Streams generated chunks with the soft prompt in front (as `generate`). */
  streamGenerate(opts: Omit<GenerateOptions, "streamer">): AsyncGenerator<StreamChunk, void> {
    return streamGenerate(this.generationModel(), opts);
  }

  private generationModel() {
    if (!isCausalLM(this.base)) throw new InputError("prompt tuning: generate needs a CAUSAL_LM base model (this one is SEQ_CLS)");
    return promptGenerationModel(this, this.base);
  }

  /** Labels with -100 for the virtual tokens (PEFT's prefix_labels). */
  prefixLabels(labels: number[][]): number[][] {
    const n = this.numVirtualTokens;
    return labels.map((row) => [...new Array<number>(n).fill(IGNORE_INDEX), ...row]);
  }

  /**
   * The full forward, as PEFT's: logits [B, n+T, V] (CAUSAL_LM) or
   * [B, num_labels] (SEQ_CLS, pooled at the last position — use left padding),
   * and the loss as a Var when labels are given and the backend is differentiable.
   */
  async forward(batch: PromptBatch): Promise<{ logits: Tensor; loss?: Var }> {
    const { embeds, attentionMask } = await this.embed(batch);
    const out = await this.withHead(true, () => this.base.forward({ inputsEmbeds: embeds, attentionMask, useCache: false }));
    const be = this.base.backend;
    let loss: Var | undefined;
    if (isDifferentiable(be)) {
      const logits = be.varOf(out.logits);
      if (isCausalLM(this.base) && batch.labels) loss = causalLMLoss(logits, this.prefixLabels(batch.labels));
      if (!isCausalLM(this.base) && batch.classLabels) loss = crossEntropy(logits, batch.classLabels);
      // No loss, no backward: let a device tape free what it recorded.
      if (!loss) be.discardTape?.();
    }
    return { logits: out.logits, loss };
  }

  /**
   * The training loss of a CAUSAL_LM batch, the same number as `forward`'s,
   * but lm_head runs only at positions that predict a label (for label-only
   * losses that is a few positions per row instead of all of them).
   *
   * With `choices` (the first token id of each class's label), a
   * discriminative term is added, weighted by `choiceWeight`: cross-entropy
   * over just those candidate tokens at the position that predicts each row's
   * first label token — the decision that label scoring makes.
   */
  async loss(batch: PromptBatch, options: { choices?: readonly number[]; choiceWeight?: number } = {}): Promise<Var> {
    const base = this.base;
    const be = base.backend;
    if (!isDifferentiable(be)) {
      throw new LlamaError(
        "prompt tuning: training needs the base model on a differentiable backend " +
          "(fromPretrained(dir, { backend: await createDifferentiableBackend(\"cpu\" | \"webgpu\") }))",
      );
    }
    if (!isCausalLM(base)) {
      const { loss } = await this.forward(batch);
      if (!loss) throw new InputError("prompt tuning (SEQ_CLS): the batch has no classLabels");
      return loss;
    }
    if (!batch.labels) throw new InputError("prompt tuning: the batch has no labels");
    const labels = this.prefixLabels(batch.labels);
    const { embeds, attentionMask } = await this.embed(batch);
    const B = labels.length, S = labels[0]!.length;
    // Positions t whose next label counts: logits[t] predicts labels[t+1].
    const picks = labels.map((row) => {
      const p: number[] = [];
      for (let t = 0; t + 1 < S; t++) if (row[t + 1] !== IGNORE_INDEX) p.push(t);
      return p;
    });
    const K = Math.max(1, ...picks.map((p) => p.length));
    const index = new Int32Array(B * K);
    const targets = new Int32Array(B * K).fill(IGNORE_INDEX);
    picks.forEach((p, b) => p.forEach((t, j) => {
      index[b * K + j] = t;
      targets[b * K + j] = labels[b]![t + 1]!;
    }));
    const dec = await base.model.decode({ inputsEmbeds: embeds, attentionMask, useCache: false });
    const sel = be.selectPositions(dec.hidden, index, K); // [B, K, hidden]
    be.release(dec.hidden);
    const logitsDev = base.lm_head.forward(be, sel);
    be.release(sel);
    const logitsT = await be.read(logitsDev); // [B, K, V]
    be.release(logitsDev);
    const logits = be.varOf(logitsT);
    const lm = crossEntropy(logits, targets);
    const choices = options.choices;
    if (!choices || !(options.choiceWeight ?? 1)) return lm;
    // Candidate logits at each row's first label position: [B, C] gathered from [B·K·V, 1].
    const V = base.config.vocab_size, C = choices.length;
    const cols: number[] = [], cls: number[] = [];
    picks.forEach((p, b) => {
      for (let c = 0; c < C; c++) cols.push((b * K) * V + choices[c]!);
      const c = p.length ? choices.indexOf(targets[b * K]!) : -1;
      cls.push(c >= 0 ? c : IGNORE_INDEX);
    });
    const cand = reshape(selectRows(reshape(logits, [logits.size, 1]), cols, [B * C, 1], 1), [B, C]);
    return add(lm, scale(crossEntropy(cand, cls), options.choiceWeight ?? 1));
  }

  /** One forward + backward; returns the loss value. The prompt's gradient accumulates into `prompt.grad`. */
  async lossAndGrad(batch: PromptBatch, options: { choices?: readonly number[]; choiceWeight?: number } = {}): Promise<number> {
    const loss = await this.loss(batch, options);
    await this.backward(loss);
    return loss.item();
  }

  /** Backpropagates a loss from `forward`/`loss` into `prompt.grad` (through the device too, on a WebGPU tape). */
  async backward(loss: Var): Promise<void> {
    const be = this.base.backend;
    if (isDifferentiable(be)) await backprop(be, loss);
    else backward(loss);
  }
}

function checkDims(config: PromptTuningConfig, hidden: number, source: string): void {
  if (config.token_dim !== null && config.token_dim !== hidden) {
    throw new LlamaError(`${source}: token_dim ${config.token_dim} does not match the model's hidden_size ${hidden}`);
  }
}
