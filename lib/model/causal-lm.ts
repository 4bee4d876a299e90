/**
 * LlamaForCausalLM: LlamaModel + lm_head (tied to the embeddings when
 * `tie_word_embeddings`), as HF's class of the same name.
 */
import type { LlamaConfig } from "../config.js";
import type { Backend, DeviceTensor } from "../backend/backend.js";
import { InputError } from "../errors.js";
import { LlamaHeadModel } from "./head-model.js";
import { Linear, type ParameterRef, type WeightLoader } from "./modules.js";
import { buildFromCheckpoint, type FromPretrainedOptions } from "./pretrained.js";
import type { CausalLMOutput, ForwardArgs } from "./types.js";
import { generate as runGenerate, streamGenerate } from "../generate/generate.js";
import type { GenerateOptions, GenerateOutput, GenerationModel, StreamChunk } from "../generate/types.js";

export class LlamaForCausalLM extends LlamaHeadModel {
  /** [vocab, hidden]; shares the embedding tensor when tied. */
  readonly lm_head: Linear;

  constructor(config: LlamaConfig, backend: Backend, load: WeightLoader) {
    super(config, backend, load);
    this.lm_head = config.tie_word_embeddings
      ? new Linear(this.model.embed_tokens.weight)
      : Linear.load(load, "lm_head", config.hidden_size, config.vocab_size, false);
  }

  static async fromPretrained(pathOrHubId: string, opts: FromPretrainedOptions = {}): Promise<LlamaForCausalLM> {
    return buildFromCheckpoint(pathOrHubId, opts, (config, backend, load) => new LlamaForCausalLM(config, backend, load));
  }

  /** Parameters under their checkpoint names (lm_head omitted when tied, as HF saves it). */
  parameters(): ParameterRef[] {
    const own = this.config.tie_word_embeddings ? [] : this.lm_head.parameters("lm_head");
    return [...this.model.parameters(), ...own];
  }

  /** `generate(this, opts)` from lib/generate (HF's model.generate). */
  generate(opts: GenerateOptions & { returnDictInGenerate: true }): Promise<GenerateOutput>;
  generate(opts: GenerateOptions & { returnDictInGenerate?: false }): Promise<number[][]>;
  generate(opts: GenerateOptions): Promise<number[][] | GenerateOutput>;
  generate(opts: GenerateOptions): Promise<number[][] | GenerateOutput> {
    // generate() only passes back the DynamicCache this forward returned, so the cast is sound.
    return runGenerate(this as unknown as GenerationModel, opts);
  }

  /** Streams generated text/token chunks (lib/generate's streamGenerate). */
  streamGenerate(opts: Omit<GenerateOptions, "streamer">): AsyncGenerator<StreamChunk, void> {
    return streamGenerate(this as unknown as GenerationModel, opts);
  }

  async forward(args: ForwardArgs): Promise<CausalLMOutput> {
    const out = await this.forwardOnDevice(args);
    const logits = await this.backend.read(out.logits);
    this.backend.release(out.logits);
    return { ...out, logits };
  }

  /**
   * `forward` with the logits left on the backend ([B, T or logitsToKeep, V];
   * the caller releases them): generate's device-side token selection starts here.
   */
  async forwardOnDevice(args: ForwardArgs): Promise<Omit<CausalLMOutput, "logits"> & { logits: DeviceTensor }> {
    const be = this.backend;
    const keep = args.logitsToKeep ?? 0;
    if (!Number.isInteger(keep) || keep < 0) throw new InputError(`logitsToKeep = ${keep}: expected a non-negative integer`);
    const out = await this.model.decode(args);
    const { B, T } = out.inputs;
    let hidden: DeviceTensor = out.hidden;
    if (keep > 0 && keep < T) {
      // HF's logits_to_keep: only the last `keep` positions go through lm_head.
      const index = new Int32Array(B * keep);
      for (let b = 0; b < B; b++) for (let j = 0; j < keep; j++) index[b * keep + j] = T - keep + j;
      hidden = be.selectPositions(out.hidden, index, keep);
      be.release(out.hidden);
    }
    let logits = this.lm_head.forward(be, hidden); // [B, T or keep, vocab]
    be.release(hidden);
    if (out.hooks) logits = await out.hooks.run("logits", logits);
    return { logits, pastKeyValues: out.pastKeyValues, hiddenStates: out.hiddenStates, attentions: out.attentions };
  }
}
