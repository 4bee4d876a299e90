/**
 * The hook that lets `fromPretrained` (and so every CLI `--model`) take a
 * `.gguf` file: it opens the file as an HF checkpoint (config from `llama.*`
 * metadata, weights dequantized and renamed lazily) in the shape the model
 * loader expects from a safetensors folder.
 */
import * as fs from "node:fs";
import { LlamaConfig } from "../config.js";
import { getBackend } from "../backend/registry.js";
import type { FromPretrainedOptions, OpenedCheckpoint } from "../model/pretrained.js";
import { readGgufAsHf } from "./gguf-hf.js";

/** True for an existing file whose name ends in .gguf. */
export function isGgufPath(p: string): boolean {
  return /\.gguf$/i.test(p) && fs.existsSync(p) && fs.statSync(p).isFile();
}

export async function openGgufCheckpoint(file: string, opts: FromPretrainedOptions = {}): Promise<OpenedCheckpoint> {
  const { config, weights } = readGgufAsHf(file);
  try {
    const cfg = LlamaConfig.fromJSON(config, file);
    const backend = opts.backend ?? (await getBackend(opts.device ?? "cpu"));
    const generationConfig = { bos_token_id: config.bos_token_id, eos_token_id: config.eos_token_id };
    return { dir: file, config: cfg, generationConfig, backend, reader: weights };
  } catch (err) {
    weights.close();
    throw err;
  }
}
