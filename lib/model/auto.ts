/**
 * Picks the model class a checkpoint was saved as (config.architectures):
 * sequence classification or causal LM (the default).
 */
import { LlamaForCausalLM } from "./causal-lm.js";
import { LlamaForSequenceClassification } from "./seq-cls.js";
import { checkpointLoader, openPretrained, type FromPretrainedOptions } from "./pretrained.js";

export type PretrainedLlama = LlamaForCausalLM | LlamaForSequenceClassification;

export async function loadPretrained(pathOrHubId: string, opts: FromPretrainedOptions = {}): Promise<PretrainedLlama> {
  const ck = await openPretrained(pathOrHubId, opts);
  try {
    const load = checkpointLoader(ck, opts.onProgress);
    const m = ck.config.architecture === "LlamaForSequenceClassification"
      ? new LlamaForSequenceClassification(ck.config, ck.backend, load)
      : new LlamaForCausalLM(ck.config, ck.backend, load);
    load.finish();
    m.generationConfig = ck.generationConfig;
    return m;
  } finally {
    ck.reader.close();
  }
}
