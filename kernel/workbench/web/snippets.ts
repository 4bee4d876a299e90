/**
 * The code behind every workbench action. Each panel runs one of these as a
 * kernel cell, and the history offers the same text as "copy as cell" or
 * "open as notebook": the workbench teaches the library's API by showing the
 * cells it runs. Variables (`model`, `tokenizer`, `sequence`…) live in the
 * kernel between cells, as in a notebook. Results the page needs come back as
 * `display.json(...)`; figures as the figure objects' own rich display.
 */

/** A literal for user text inside generated code. */
const lit = (v: unknown): string => JSON.stringify(v);

export interface Snippet {
  title: string;
  code: string;
}

export function loadModel(modelPath: string): Snippet {
  return {
    title: `Load ${modelPath.split("/").pop()}`,
    code: `import { AutoTokenizer, LlamaForCausalLM } from "llama-ts";

const modelPath = ${lit(modelPath)};
const model = await LlamaForCausalLM.fromPretrained(modelPath, { onProgress: display.progress("loading weights") });
const tokenizer = await AutoTokenizer.fromPretrained(modelPath);

// Parameter count from the config (embeddings, every layer, final norm, lm_head).
const c = model.config;
const attn = c.hidden_size * c.head_dim * (2 * c.num_attention_heads + 2 * c.num_key_value_heads);
const mlp = 3 * c.hidden_size * c.intermediate_size;
const parameters = c.vocab_size * c.hidden_size * (c.tie_word_embeddings ? 1 : 2) +
  c.num_hidden_layers * (attn + mlp + 2 * c.hidden_size) + c.hidden_size;
display.json({ path: modelPath, device: model.device, parameters, config: c.toJSON(), tokenizer: tokenizer.constructor.name, vocabSize: tokenizer.vocabSize });`,
  };
}

export function tokenize(text: string, compareWith?: string): Snippet {
  const compare = compareWith
    ? `
const other = await AutoTokenizer.fromPretrained(${lit(compareWith)});
const otherInspection = inspectTokens(other, text);
display(tokenCompare([inspection, otherInspection], ["this model", ${lit(compareWith.split("/").slice(-2).join("/"))}]));`
    : "";
  return {
    title: `Tokenize ${lit(text.length > 40 ? text.slice(0, 40) + "…" : text)}`,
    code: `import { inspectTokens, tokenSpans, tokenCompare, AutoTokenizer } from "llama-ts";

const text = ${lit(text)};
const inspection = inspectTokens(tokenizer, text);
display(tokenSpans(inspection));${compare}
display.json({ rows: inspection.rows.map((r) => ({ index: r.index, id: r.id, token: r.token, text: r.text, bytes: r.bytes, start: r.start, end: r.end, isSpecial: r.isSpecial, isByte: r.isByte })) });`,
  };
}

export interface GenerateSettings {
  maxNewTokens: number;
  minNewTokens: number;
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  seed: number;
}

export function generate(prompt: string, s: GenerateSettings): Snippet {
  const sampling = s.doSample
    ? `doSample: true, temperature: ${s.temperature}, topK: ${s.topK}, topP: ${s.topP}, seed: ${s.seed},`
    : `doSample: false,`;
  return {
    title: `Generate from ${lit(prompt.length > 40 ? prompt.slice(0, 40) + "…" : prompt)}`,
    code: `const prompt = ${lit(prompt)};
const promptIds = tokenizer.encode(prompt);
let sequence = [...promptIds];
// Each chunk is whole UTF-8 text: print it as it comes (the page shows the stream live).
for await (const chunk of model.streamGenerate({
  inputIds: [promptIds], maxNewTokens: ${s.maxNewTokens},${s.minNewTokens ? ` minNewTokens: ${s.minNewTokens},` : ""} ${sampling}
  repetitionPenalty: ${s.repetitionPenalty}, tokenizer,
})) {
  sequence.push(...chunk.tokenIds);
  process.stdout.write(chunk.text);
}
display.json({ promptLength: promptIds.length, ids: sequence, pieces: sequence.map((id) => tokenizer.decode([id])) });`,
  };
}

/** Attention of every layer and head for the step that produced token `position` (its prefix as input). */
export function attention(position: number): Snippet {
  return {
    title: `Attention at token ${position}`,
    code: `import { runWithCache, attentionGrid, headView } from "llama-ts";

// The step that produced token ${position} read tokens 0..${position - 1}: its query is the last row.
const prefix = sequence.slice(0, ${position});
const labels = prefix.map((id) => tokenizer.decode([id]));
const { cache } = await runWithCache(model, { inputIds: [prefix] }, { names: (n) => n.endsWith(".self_attn.pattern") });
const patterns = Array.from({ length: model.config.num_hidden_layers }, (_, i) => cache.get(\`layers.\${i}.self_attn.pattern\`));
display(attentionGrid(patterns, { tokens: labels, title: \`Attention when predicting token ${position} (\${JSON.stringify(tokenizer.decode([sequence[${position}]]))})\` }));
display(headView(patterns, { tokens: labels }));`,
  };
}

export function logitLensAt(position: number): Snippet {
  return {
    title: `Logit lens up to token ${position}`,
    code: `import { logitLens, logitLensFigure } from "llama-ts";

// Each layer's residual stream read through the final norm and lm_head; the last column predicts token ${position}.
const lensIds = sequence.slice(0, ${position});
const lens = await logitLens(model, { inputIds: [lensIds] }, { k: 5 });
display(logitLensFigure(lens, { tokenText: (id) => tokenizer.decode([id]) }));`,
  };
}

/** Two prompts side by side: each one's next-token distribution and how surprising each of its tokens was. */
export function comparePrompts(a: string, b: string): Snippet {
  return {
    title: `Compare ${lit(a.slice(0, 24))} vs ${lit(b.slice(0, 24))}`,
    code: `import { tokenLogProbs, topKNextTokens, topKBarChart, logProbStrip } from "llama-ts";

const comparison = [];
for (const [label, text] of [["A", ${lit(a)}], ["B", ${lit(b)}]]) {
  const ids = tokenizer.encode(text);
  const { logits } = await model.forward({ inputIds: [ids] });
  const top = topKNextTokens(logits, { k: 10 });
  const lp = tokenLogProbs(logits, ids);
  const tokens = ids.map((id) => tokenizer.decode([id]));
  display(topKBarChart(top, { tokenText: (id) => tokenizer.decode([id]), title: \`\${label}: most likely next tokens\` }));
  display(logProbStrip(lp, { tokens, title: \`\${label}: log-prob of each token given the ones before\` }));
  // Mean log-prob over the tokens that have a prediction (the first one has none).
  const scored = lp.logProbs.slice(1);
  comparison.push({ label, text, tokens: ids.length, top: tokenizer.decode([top.ids[0]]), topProb: top.probs[0],
    meanLogProb: scored.reduce((s, x) => s + x, 0) / Math.max(1, scored.length) });
}
display.json({ comparison });`,
  };
}

export interface TuningSettings {
  dataFile: string;
  numVirtualTokens: number;
  init: "RANDOM" | "TEXT" | "SAMPLE_VOCAB";
  initText: string;
  lr: number;
  steps: number;
  batchSize: number;
  outDir: string;
}

export function promptTuning(s: TuningSettings): Snippet {
  const initText = s.init === "TEXT" ? `, prompt_tuning_init_text: ${lit(s.initText)}, tokenizer_name_or_path: modelPath` : "";
  return {
    title: `Prompt tuning on ${s.dataFile.split("/").pop()}`,
    code: `import { LlamaForCausalLM, PromptTuningModel, TapeBackend, readJsonl, completionExample, trainPrompt } from "llama-ts";

// Training needs the frozen model on the tape backend, which records the forward pass for backprop.
const trainable = await LlamaForCausalLM.fromPretrained(modelPath, { backend: await TapeBackend.create() });

// Rows are {"prompt", "completion"} (or a labelled dataset's {"prompt", "label_text"}):
// the loss is on the completion's tokens only.
const examples = readJsonl(${lit(s.dataFile)}).map(({ row }) =>
  completionExample(tokenizer, String(row.prompt), String(row.completion ?? row.label_text)));
const tuned = await PromptTuningModel.create(trainable, {
  task_type: "CAUSAL_LM", num_virtual_tokens: ${s.numVirtualTokens}, prompt_tuning_init: ${lit(s.init)}${initText},
}, { tokenizer, seed: 0 });
const losses: number[] = [];
const curve = display.plotly({ data: [{ type: "scatter", mode: "lines", y: [] }], layout: { title: { text: "training loss" }, height: 300 } });
const result = await trainPrompt(tuned, examples, {
  optimizer: "adamw", lr: ${s.lr}, batchSize: ${s.batchSize}, steps: ${s.steps}, seed: 0,
  onStep: (log) => {
    losses.push(log.loss);
    curve.update({ data: [{ type: "scatter", mode: "lines", y: losses }], layout: { title: { text: \`training loss (step \${log.step})\` }, height: 300, xaxis: { title: { text: "step" } } } });
  },
});
await tuned.savePretrained(${lit(s.outDir)});
display.json({ steps: result.steps, losses: result.losses, seconds: result.seconds, saved: ${lit(s.outDir)} });`,
  };
}

export interface DpoSettings {
  dataFile: string;
  steps: number;
  beta: number;
  /** Weight of TRL's "sft" loss (the chosen completions' NLL) beside the sigmoid loss; 0 = plain DPO. */
  sftWeight: number;
  lr: number;
  batchSize: number;
  rank: number;
  outDir: string;
}

/**
 * DPO on a pairs file: a LoRA adapter trained with TRL's loss on a
 * differentiable copy of the model, live curves, the adapter saved, and a few
 * of the file's prompts sampled before and after (same seeds) on the loaded model.
 */
export function dpo(s: DpoSettings): Snippet {
  return {
    title: `DPO on ${s.dataFile.split("/").pop()}`,
    code: `import { LlamaForCausalLM, LoraModel, createDifferentiableBackend, readPreferenceFile, tokenizeDpoRows, trainDpo, loadLora, sampleContinuations } from "llama-ts";

// DPO as TRL's DPOTrainer with PEFT: the policy is the model plus a LoRA adapter, the reference is the
// same model with the adapter off. Training records the forward pass, so it runs on a differentiable copy.
const dpoBackend = await createDifferentiableBackend("cpu");
const dpoBase = await LlamaForCausalLM.fromPretrained(modelPath, { backend: dpoBackend });
const pairs = readPreferenceFile(${lit(s.dataFile)}); // rows {"prompt", "chosen", "rejected"}
const { examples: dpoExamples } = tokenizeDpoRows(tokenizer, pairs);
const policy = LoraModel.create(dpoBase, {
  r: ${s.rank}, lora_alpha: ${2 * s.rank}, target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}, { seed: 0 });

// A few of the file's prompts, sampled before and after training with the same seeds.
const samplePrompts = [...new Set(pairs.map((p) => p.prompt))].slice(0, 3);
const sampling = { perPrompt: 2, maxNewTokens: 48, seed: 0 };
const before = await sampleContinuations(model, tokenizer, samplePrompts, sampling);

// Live curves: the loss, TRL's reward margin and accuracy, and the chosen completions' log-prob per
// token under the policy next to the reference's (if it falls far below, the text is degrading).
const curves = { step: [] as number[], loss: [] as number[], margin: [] as number[], accuracy: [] as number[], policyLogp: [] as number[], refLogp: [] as number[] };
const line = (y: number[], name: string, axis: number, dash = "solid") =>
  ({ type: "scatter", mode: "lines", x: curves.step, y, name, xaxis: \`x\${axis > 1 ? axis : ""}\`, yaxis: \`y\${axis > 1 ? axis : ""}\`, line: { dash } });
const dpoFigure = () => ({
  data: [line(curves.loss, "loss", 1), line(curves.margin, "reward margin", 2), line(curves.accuracy, "reward accuracy", 2, "dot"),
    line(curves.policyLogp, "policy", 3), line(curves.refLogp, "reference", 3, "dash")],
  layout: { height: 320, grid: { rows: 1, columns: 3, pattern: "independent" }, title: { text: \`DPO, step \${curves.step.at(-1) ?? 0}\` },
    yaxis: { title: { text: "loss" } }, yaxis2: { title: { text: "margin · accuracy" } }, yaxis3: { title: { text: "chosen log-prob / token" } },
    xaxis: { title: { text: "step" } }, xaxis2: { title: { text: "step" } }, xaxis3: { title: { text: "step" } } },
});
const dpoCurve = display.plotly(dpoFigure());
// The progress bar shows three of TRL's metrics (the library reports them all).
const bar = display.progress("DPO");
const shown = ["loss", "rewards/margins", "rewards/accuracies"];
${s.sftWeight > 0 ? "// TRL's \"sft\" loss beside DPO's (its RPO): the chosen completions' NLL keeps the policy on fluent text.\n" : ""}const dpoResult = await trainDpo(policy, dpoExamples, {
  beta: ${s.beta}, ${s.sftWeight > 0 ? `lossType: ["sigmoid", "sft"], lossWeights: [1, ${s.sftWeight}], ` : ""}lr: ${s.lr}, batchSize: ${s.batchSize}, steps: ${s.steps}, optimizer: "adamw", schedule: "linear", seed: 0,
  onProgress: (done, total, info) => bar(done, total, { metrics: Object.fromEntries(shown.map((k) => [k, info?.metrics?.[k] ?? NaN])) }),
  onStep: (log) => {
    curves.step.push(log.step);
    curves.loss.push(log.loss);
    curves.margin.push(log.metrics["rewards/margins"]!);
    curves.accuracy.push(log.metrics["rewards/accuracies"]!);
    curves.policyLogp.push(log.metrics["guard/chosen_logp_per_token"]!);
    curves.refLogp.push(log.metrics["guard/ref_chosen_logp_per_token"]!);
    dpoCurve.update(dpoFigure());
  },
});
policy.savePretrained(${lit(s.outDir)}, { baseModelNameOrPath: modelPath }); // PEFT's adapter folder
dpoBackend.dispose();

// The same prompts and seeds on the loaded model with the adapter merged in, then unloaded again.
const tunedLora = await loadLora(model, ${lit(s.outDir)});
const after = await sampleContinuations(model, tokenizer, samplePrompts, sampling).finally(() => tunedLora.unload());
const esc = (t: string) => t.replace(/[&<>]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : "&gt;"));
display.html(\`<style>td { vertical-align: top; padding: 4px 8px; border-top: 1px solid #ddd }</style><table class="dpo-samples"><tr><th>prompt</th><th>before</th><th>after \${dpoResult.steps} DPO steps</th></tr>\` +
  samplePrompts.flatMap((p, i) => before[i]!.map((b, j) => \`<tr><td>\${esc(p)}</td><td>\${esc(b)}</td><td>\${esc(after[i]![j]!)}</td></tr>\`)).join("") +
  "</table>");
display.json({ steps: dpoResult.steps, seconds: dpoResult.seconds, losses: dpoResult.losses, margin: curves.margin.at(-1), accuracy: curves.accuracy.at(-1),
  guardTrips: dpoResult.guardTrips.length, saved: ${lit(s.outDir)} });`,
  };
}

/** A notebook (nbformat 4) made of the given cells, for "open as notebook". */
export function asNotebook(snippets: readonly Snippet[]): object {
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: { name: "llama-ts", display_name: "LLaMA (TypeScript)", language: "typescript" },
      language_info: { name: "typescript", file_extension: ".ts", mimetype: "text/x.typescript" },
    },
    cells: snippets.flatMap((s, i) => [
      { cell_type: "markdown", id: `md${i}`, metadata: {}, source: `### ${s.title}` },
      { cell_type: "code", id: `code${i}`, metadata: {}, execution_count: null, outputs: [], source: s.code },
    ]),
  };
}
