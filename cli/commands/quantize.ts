/**
 * `llama-ts quantize`: an F32/F16/BF16 model (HF folder or .gguf) → a
 * quantized GGUF whose tensors are byte for byte what llama.cpp's
 * `llama-quantize` writes: uniform types as `--pure`, q4_k_m / q5_k_m as
 * llama.cpp's mixes (rules in lib/quant/mix.ts). Tensors whose rows no block
 * size divides fall back as llama.cpp's do, and each one is named on stderr.
 * stdout: the written file.
 */
import * as fs from "node:fs";
import { QUANT_PRESETS, isQuantPreset } from "../../lib/quant/mix.js";
import { describeFallbacks, quantizeModel } from "../../lib/quant/quantize-model.js";
import { ggmlTypeName } from "../../lib/io/gguf-types.js";
import { MODEL_FLAG, defineCommand, intFlag, modelPath, positive } from "../args.js";
import { UsageError } from "../cli-error.js";
import { cliProgress } from "../progress.js";

export const command = defineCommand({
  summary: "quantize a model to a GGUF file (q8_0 … q6_k, q4_k_m, q5_k_m), bit-identical to llama.cpp's llama-quantize",
  flags: {
    model: MODEL_FLAG,
    type: { type: "string", arg: QUANT_PRESETS.join("|"), required: true, help: "one type for every quantized tensor (llama-quantize --pure), or llama.cpp's q4_k_m / q5_k_m mix" },
    out: { type: "string", arg: "FILE", required: true, help: "the .gguf file to write (appears only when complete)" },
    threads: { type: "string", arg: "N", shownDefault: "the cores, at most 8", help: "quantizing threads (the bytes do not depend on it)" },
  },
  async run(flags) {
    const type = flags.type.toLowerCase();
    if (!isQuantPreset(type)) throw new UsageError(`--type: expected one of ${QUANT_PRESETS.join(", ")}, got "${flags.type}"`);
    const model = modelPath("--model", flags.model);
    if (fs.existsSync(flags.out) && fs.statSync(flags.out).isDirectory()) throw new UsageError(`--out: ${flags.out} is a folder; expected a .gguf file name`);
    const threads = positive("--threads", intFlag("--threads", flags.threads));
    const report = await quantizeModel(model, flags.out, { type, threads, onProgress: cliProgress(`quantizing to ${type}`) });
    for (const line of describeFallbacks(report)) process.stderr.write(`llama-ts quantize: fallback: ${line}\n`);
    const counts = new Map<string, number>();
    for (const t of report.tensors) counts.set(ggmlTypeName(t.to), (counts.get(ggmlTypeName(t.to)) ?? 0) + 1);
    const mib = (fs.statSync(flags.out).size / 2 ** 20).toFixed(2);
    process.stderr.write(`llama-ts quantize: ${report.tensors.length} tensors (${[...counts].map(([k, n]) => `${n} ${k}`).join(", ")}), ${mib} MiB\n`);
    process.stdout.write(`${flags.out}\n`);
    return 0;
  },
});
