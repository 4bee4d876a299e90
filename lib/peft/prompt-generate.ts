/**
 * Generation with a soft prompt, as PEFT's PeftModelForCausalLM.generate does
 * it for prompt tuning: on the first step (no cache yet) the input ids become
 * `inputs_embeds = cat(prompt, word_embeddings(input_ids))`; the attention
 * mask always gets `num_virtual_tokens` leading ones; later steps feed token
 * ids against the cache, which already holds the virtual tokens. PEFT drops
 * `position_ids` ("not supported for parameter efficient tuning"), so the base
 * model numbers positions by cache position: 0..n+T-1 for the first step and
 * onward from there, whatever the padding. The returned sequences are the
 * input ids plus the new tokens (the virtual tokens are not ids).
 */
import { InputError } from "../errors.js";
import type { GenerationForwardArgs, GenerationForwardOutput, GenerationModel } from "../generate/types.js";
import type { LlamaForCausalLM } from "../model/causal-lm.js";
import type { DynamicCache } from "../model/kv-cache.js";
import type { PromptTuningModel } from "./prompt-tuning.js";

/** A GenerationModel that runs `pm.base` with `pm`'s soft prompt in front. */
export function promptGenerationModel(pm: PromptTuningModel, base: LlamaForCausalLM): GenerationModel {
  const n = pm.numVirtualTokens;
  return {
    config: base.config,
    generationConfig: base.generationConfig,
    async forward(args: GenerationForwardArgs): Promise<GenerationForwardOutput> {
      const ids = args.inputIds;
      if (!ids) throw new InputError("prompt-tuned generate: input_ids are required");
      const common = { useCache: args.useCache, outputAttentions: args.outputAttentions, outputHiddenStates: args.outputHiddenStates, logitsToKeep: args.logitsToKeep };
      // generate() only hands back the cache this forward returned: a DynamicCache.
      const cache = args.pastKeyValues as DynamicCache | undefined;
      const past = cache?.getSeqLength() ?? 0;
      if (past === 0) {
        // The attention mask generate passes covers exactly these ids here (no cache yet).
        const { embeds, attentionMask } = await pm.embed({ inputIds: ids, attentionMask: args.attentionMask }, { grad: false });
        return base.forward({ ...common, inputsEmbeds: embeds, attentionMask, pastKeyValues: cache });
      }
      const attentionMask = args.attentionMask?.map((row) => [...new Array<number>(n).fill(1), ...row]);
      return base.forward({ ...common, inputIds: ids, attentionMask, pastKeyValues: cache });
    },
  };
}
