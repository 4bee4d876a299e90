/**
 * What LlamaForCausalLM and LlamaForSequenceClassification share: a
 * LlamaModel body, its generation config and device, input embeddings and
 * savePretrained. Each head adds its own projection, parameters and forward.
 */
import type { LlamaConfig } from "../config.js";
import type { Backend } from "../backend/backend.js";
import type { Tensor } from "../tensor/tensor.js";
import { LlamaModel } from "./llama.js";
import type { ParameterRef, WeightLoader } from "./modules.js";
import { savePretrainedFolder, type GenerationConfig } from "./pretrained.js";

export abstract class LlamaHeadModel {
  readonly model: LlamaModel;

  constructor(readonly config: LlamaConfig, readonly backend: Backend, load: WeightLoader) {
    this.model = new LlamaModel(config, backend, load);
  }

  get generationConfig(): GenerationConfig {
    return this.model.generationConfig;
  }

  set generationConfig(g: GenerationConfig) {
    this.model.generationConfig = g;
  }

  get device(): Backend["device"] {
    return this.backend.device;
  }

  /** Parameters under their checkpoint names (the body's, then the head's). */
  abstract parameters(): ParameterRef[];

  async savePretrained(dir: string): Promise<void> {
    await savePretrainedFolder(dir, this.config, this.generationConfig, this.backend, this.parameters());
  }

  getInputEmbeddings(ids: number[][]): Promise<Tensor> {
    return this.model.getInputEmbeddings(ids);
  }
}
