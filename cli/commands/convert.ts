/**
 * `llama-ts convert`: Meta's original checkpoint → HF folder, with the flags
 * of HF's `convert_llama_weights_to_hf.py`:
 *   --input_dir DIR  --model_size SIZE  --output_dir DIR  [--llama_version 1|2|3|3.1|3.2|3.3]
 * The shard count comes from the consolidated.*.pth files found; params.json
 * and shards are read from --input_dir or --input_dir/<model_size>/.
 * Output is always safetensors. Progress on stderr; the written files on stdout.
 */
import * as fs from "node:fs";
import { convertMetaToHf } from "../../lib/convert/meta-to-hf.js";
import { LLAMA_VERSIONS, type LlamaVersion } from "../../lib/convert/params.js";
import { defineCommand } from "../args.js";
import { UsageError } from "../cli-error.js";
import { cliProgress } from "../progress.js";

export const command = defineCommand({
  summary: "convert Meta's consolidated.*.pth checkpoint to an HF folder (safetensors), like convert_llama_weights_to_hf.py",
  flags: {
    input_dir: { type: "string", arg: "DIR", required: true, help: "Meta's checkpoint: params.json + consolidated.NN.pth (here or in DIR/<model_size>/)" },
    model_size: { type: "string", arg: "SIZE", required: true, help: "7B, 13B, …: accepted as HF's script does; also names the DIR/<size>/ layout" },
    output_dir: { type: "string", arg: "DIR", required: true, help: "the HF folder to write (staged, moved into place when complete)" },
    llama_version: { type: "string", arg: LLAMA_VERSIONS.join("|"), default: "2", help: "LLaMA generation (sets rope_theta, context and tokenizer handling)" },
    // Accepted for compatibility with HF's script: output is always safetensors.
    safe_serialization: { type: "string", arg: "true", shownDefault: "true", help: "accepted for compatibility: output is always safetensors" },
  },
  async run(flags) {
    const inputDir = flags.input_dir;
    const modelSize = flags.model_size;
    const outputDir = flags.output_dir;
    const version = flags.llama_version;
    if (!(LLAMA_VERSIONS as readonly string[]).includes(version)) {
      throw new UsageError(`--llama_version: expected one of ${LLAMA_VERSIONS.join(", ")}, got "${version}"`);
    }
    if (flags.safe_serialization !== undefined && !/^(true|1|yes)$/i.test(flags.safe_serialization)) {
      throw new UsageError("--safe_serialization: only safetensors output is supported");
    }
    if (!fs.existsSync(inputDir) || !fs.statSync(inputDir).isDirectory()) throw new UsageError(`--input_dir: no such folder: ${inputDir}`);
    const result = await convertMetaToHf({
      inputDir,
      modelSize,
      outputDir,
      llamaVersion: version as LlamaVersion,
      onProgress: cliProgress("converting"),
      onWarning: (m) => process.stderr.write(`llama-ts convert: warning: ${m}\n`),
    });
    for (const f of result.files) process.stdout.write(`${outputDir}/${f}\n`);
    return 0;
  },
});
