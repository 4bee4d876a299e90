/**
 * LlamaForCausalLM: LlamaModel + lm_head (tied to the embeddings when
 * `tie_word_embeddings`), as HF's class of the same name.
 */
import type { LlamaConfig } from "../config.js";
import type { Backend, DeviceTensor } from "../backend/backend.js";
import { InputError } from "../errors.js";
import { LlamaHeadModel } from "./head-model.js";
import { causalLmLogits } from "./llama.js";
import { Scope } from "./scope.js";
import { Linear, type ParameterRef, type WeightLoader } from "./modules.js";
import { buildFromCheckpoint, type FromPretrainedOptions } from "./pretrained.js";
import type { CausalLMOutput, ForwardArgs } from "./types.js";
import { generate as runGenerate, streamGenerate } from "../generate/generate.js";
import type { GenerateOptions, GenerateOutput, GenerationModel, StreamChunk } from "../generate/types.js";

export class LlamaForCausalLM extends LlamaHeadModel {
  /** [vocab, hidden]; shares the embedding tensor when tied. Applied by causalLmLogits (llama.ts). */
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
    const logits = await Scope.run(this.backend, async (s) => s.read(s.adopt(out.logits)));
    return { ...out, logits };
  }

  /**
   * `forward` with the logits left on the backend ([B, T or logitsToKeep, V];
   * the caller releases them): generate's device-side token selection starts here.
   */
  async forwardOnDevice(args: ForwardArgs): Promise<Omit<CausalLMOutput, "logits"> & { logits: DeviceTensor }> {
    const keep = args.logitsToKeep ?? 0;
    if (!Number.isInteger(keep) || keep < 0) throw new InputError(`logitsToKeep = ${keep}: expected a non-negative integer`);
    const out = await this.model.decode(args);
    const logits = await causalLmLogits(this.backend, this.lm_head, out, keep); // [B, T or keep, vocab]
    return { logits, pastKeyValues: out.pastKeyValues, hiddenStates: out.hiddenStates, attentions: out.attentions };
  }
}
