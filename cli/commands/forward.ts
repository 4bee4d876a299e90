/**
 * `llama-ts forward`: one forward pass, every output written as float32
 * safetensors with HF's names and shapes:
 *   logits [B,T,V] (or [B,num_labels] for sequence classification),
 *   hidden_states.{0..L} [B,T,H], attentions.{i} [B,heads,T,T],
 *   past_key.{i} / past_value.{i} [B,kv_heads,T,head_dim].
 * --adapter DIR applies a PEFT LoRA or prompt-tuning adapter for the run; with a prompt-tuning
 * adapter T counts the virtual tokens too, as PEFT's forward returns them.
 */
import { InputError } from "../../lib/errors.js";
import { loadPretrained } from "../../lib/model/auto.js";
import { saveSafetensors } from "../../lib/io/safetensors.js";
import type { Tensor } from "../../lib/tensor/tensor.js";
import type { Device } from "../../lib/backend/backend.js";
import { DEVICE_FLAG, MODEL_FLAG, QUANTIZE_FLAG, choiceFlag, defineCommand, existingPath, jsonFlag, modelPath, quantizeFlag } from "../args.js";
import { UsageError } from "../cli-error.js";
import { terminalProgress } from "../progress.js";
import { applyAdapter } from "../../lib/peft/adapter-load.js";

/** A [B][T] integer matrix from JSON; a flat list is one row. */
function idMatrix(flag: string, value: unknown): number[][] {
  const rows = Array.isArray(value) && value.length > 0 && !Array.isArray(value[0]) ? [value] : value;
  if (!Array.isArray(rows) || !rows.every((r) => Array.isArray(r) && r.every((x) => typeof x === "number"))) {
    throw new UsageError(`${flag}: expected a JSON list of integers or a list of such lists`);
  }
  return rows as number[][];
}

export const command = defineCommand({
  summary: "run one forward pass and save logits, hidden states, attentions and the KV cache (safetensors)",
  flags: {
    model: MODEL_FLAG,
    quantize: QUANTIZE_FLAG,
    "input-ids": { type: "string", arg: "JSON", required: true, help: "token ids: one list, or a list of equal-length lists (a batch)" },
    "attention-mask": { type: "string", arg: "JSON", help: "0/1 mask of the same shape (left padding)" },
    adapter: { type: "string", arg: "DIR", help: "a PEFT LoRA or prompt-tuning adapter folder, applied for the run" },
    device: DEVICE_FLAG,
    out: { type: "string", arg: "FILE", required: true, help: "the .safetensors file to write" },
  },
  async run(flags) {
    const modelDir = modelPath("--model", flags.model);
    const ids = idMatrix("--input-ids", jsonFlag("--input-ids", flags["input-ids"]));
    const mask = flags["attention-mask"] === undefined
      ? undefined
      : idMatrix("--attention-mask", jsonFlag("--attention-mask", flags["attention-mask"]));
    const out = flags.out;
    const device = choiceFlag("--device", flags.device, ["cpu", "webgpu"] as const);
    if (ids.length === 0 || ids[0]!.length === 0) throw new InputError("--input-ids is empty: expected at least one token");

    if (flags.adapter !== undefined) existingPath("--adapter", flags.adapter);

    const model = await loadPretrained(modelDir, { device: device as Device, quantize: quantizeFlag(flags.quantize), onProgress: terminalProgress("loading") });
    const adapter = flags.adapter !== undefined ? await applyAdapter(model, flags.adapter, modelDir) : undefined;
    for (const w of adapter?.warnings ?? []) process.stderr.write(`llama-ts forward: warning: ${w}\n`);
    const outputs = { outputHiddenStates: true, outputAttentions: true, useCache: true };
    let res: Awaited<ReturnType<typeof model.forward>>;
    if (adapter?.prompt && "lm_head" in model) {
      // PEFT's prompt-tuning forward: the soft prompt's embeddings in front, positions 0..n+T-1.
      const { embeds, attentionMask } = await adapter.prompt.embed({ inputIds: ids, attentionMask: mask }, { grad: false });
      res = await model.forward({ inputsEmbeds: embeds, attentionMask, ...outputs });
    } else if (adapter?.prompt) {
      // SEQ_CLS: the adapter carries its own score head; PEFT's forward gives the logits.
      res = { logits: (await adapter.prompt.forward({ inputIds: ids, attentionMask: mask })).logits };
    } else {
      res = await model.forward({ inputIds: ids, attentionMask: mask, ...outputs });
    }
    const tensors = new Map<string, Tensor>([["logits", res.logits]]);
    res.hiddenStates?.forEach((t, i) => tensors.set(`hidden_states.${i}`, t));
    res.attentions?.forEach((t, i) => tensors.set(`attentions.${i}`, t));
    if (res.pastKeyValues) {
      const kv = await res.pastKeyValues.toHost();
      kv.keys.forEach((t, i) => tensors.set(`past_key.${i}`, t));
      kv.values.forEach((t, i) => tensors.set(`past_value.${i}`, t));
    }
    saveSafetensors(out, tensors, { metadata: { format: "pt", producer: "llama-ts forward" } });
    model.backend.dispose?.();
    process.stderr.write(`wrote ${tensors.size} tensors to ${out}\n`);
    return 0;
  },
});
