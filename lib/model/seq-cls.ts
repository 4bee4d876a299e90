/**
 * LlamaForSequenceClassification: LlamaModel + `score` [num_labels, hidden]
 * applied at one position per row: the rightmost token that is not
 * pad_token_id (HF's current rule, which handles left and right padding).
 */
import type { LlamaConfig } from "../config.js";
import type { Backend } from "../backend/backend.js";
import { InputError } from "../errors.js";
import { LlamaHeadModel } from "./head-model.js";
import { Scope } from "./scope.js";
import { Linear, type ParameterRef, type WeightLoader } from "./modules.js";
import { buildFromCheckpoint, type FromPretrainedOptions } from "./pretrained.js";
import type { CausalLMOutput, ForwardArgs } from "./types.js";

/** Where the fallback warning goes (tests may replace it). */
export let warn: (message: string) => void = (m) => process.stderr.write(`warning: ${m}\n`);
export function setWarningSink(fn: (message: string) => void): void {
  warn = fn;
}

/**
 * Pooled position per row: HF takes argmax over t of (t * (id != pad)), i.e.
 * the last non-pad token (0 when a row is all padding).
 */
export function lastNonPadPositions(ids: number[][], padTokenId: number | null): number[] {
  const T = ids[0]!.length;
  if (padTokenId === null) {
    if (ids.length !== 1) throw new InputError("sequence classification: cannot handle batch sizes > 1 if no padding token is defined (pad_token_id is null)");
    return [T - 1];
  }
  return ids.map((row) => {
    let best = 0;
    for (let t = 0; t < row.length; t++) if (row[t] !== padTokenId) best = t;
    return best;
  });
}

export class LlamaForSequenceClassification extends LlamaHeadModel {
  /** [num_labels, hidden], no bias */
  readonly score: Linear;

  constructor(config: LlamaConfig, backend: Backend, load: WeightLoader) {
    super(config, backend, load);
    this.score = Linear.load(load, "score", config.hidden_size, config.num_labels, false);
  }

  static async fromPretrained(pathOrHubId: string, opts: FromPretrainedOptions = {}): Promise<LlamaForSequenceClassification> {
    return buildFromCheckpoint(pathOrHubId, opts, (config, backend, load) => new LlamaForSequenceClassification(config, backend, load));
  }

  parameters(): ParameterRef[] {
    return [...this.model.parameters(), ...this.score.parameters("score")];
  }

  /** logits [B, num_labels] at each row's pooled position. */
  async forward(args: ForwardArgs): Promise<CausalLMOutput> {
    const out = await this.model.decode(args);
    const { B, T } = out.inputs;
    let positions: number[];
    if (args.inputIds) {
      positions = lastNonPadPositions(args.inputIds, this.config.pad_token_id);
    } else {
      warn(
        "LlamaForSequenceClassification: will not detect padding tokens in inputs_embeds; " +
          "results may be unexpected with padding tokens together with inputs_embeds (pooling the last position)",
      );
      positions = new Array<number>(B).fill(T - 1);
    }
    const scores = await Scope.run(this.backend, async (s) => {
      const pooled = s.selectPositions(s.adopt(out.hidden), Int32Array.from(positions), 1); // [B, 1, hidden]
      return s.read(this.score.forward(s, pooled)); // [B, 1, num_labels]
    });
    return { logits: scores.reshape([B, this.config.num_labels]), pastKeyValues: out.pastKeyValues, hiddenStates: out.hiddenStates, attentions: out.attentions };
  }
}
