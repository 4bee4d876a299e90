/**
 * HF LLaMA folder → GGUF (F32 or F16), the way llama.cpp's
 * convert_hf_to_gguf.py lays it out: `llama.*` metadata, llama.cpp tensor
 * names, q/k rows permuted to the interleaved rotary layout, norms in F32,
 * llama3 rope scaling as a `rope_freqs` tensor, and the tokenizer in
 * `tokenizer.ggml.*` (from the folder's sentencepiece tokenizer.model or
 * byte-level tokenizer.json; otherwise a placeholder vocabulary, so llama.cpp
 * can still load the weights). Tensors stream one at a time.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, FormatError } from "../errors.js";
import { Tensor } from "../tensor/tensor.js";
import { halfSplitToInterleaved } from "../convert/rotary-permute.js";
import { type SentencePieceModel, readSentencePieceModel } from "../tokenizer/sentencepiece-model.js";
import { CheckpointReader } from "./checkpoint.js";
import { hfConfigToGgufMetadata, hfToGgufName, llama3RopeFactors, ropeScalingOf, rotaryHeadsFor } from "./gguf-llama.js";
import { type GgufTokenizerData, syntheticSpmVocab, tokenizerMetadata } from "./gguf-tokenizer.js";
import { sentencePieceToGgufData, tokenizerJsonToGgufData } from "./gguf-tokenizer-build.js";
import { GgmlType } from "./gguf-types.js";
import { type GgufTensorSpec, type GgufWritableType, writeGguf } from "./gguf-writer.js";

export interface GgufExportOptions {
  /** Storage type of the 2-D weights (1-D norms are always F32, as llama.cpp writes them). */
  outtype?: "f32" | "f16";
  /** Tokenizer to embed; default: the folder's tokenizer.model, else a placeholder vocabulary. */
  tokenizer?: GgufTokenizerData;
  name?: string;
  onTensor?: (name: string, bytes: number) => void;
}

/** File type codes (llama_ftype) for general.file_type. */
const FILE_TYPE = { f32: 0, f16: 1 } as const;

/** Writes the HF folder `modelDir` as a GGUF file `outFile`. Returns the tokenizer that was embedded. */
export function exportHfToGguf(modelDir: string, outFile: string, opts: GgufExportOptions = {}): GgufTokenizerData {
  const cfgFile = path.join(modelDir, "config.json");
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(fs.readFileSync(cfgFile, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new FormatError(cfgFile, `cannot read config.json (${(err as Error).message})`);
  }
  const reader = CheckpointReader.open(modelDir);
  try {
    const outtype = opts.outtype ?? "f32";
    const tokenizer = opts.tokenizer ?? folderTokenizer(modelDir, cfg);
    const heads = cfg.num_attention_heads as number;
    const kvHeads = (cfg.num_key_value_heads as number | undefined) ?? heads;
    const hidden = cfg.hidden_size as number;
    const headDim = (cfg.head_dim as number | undefined) ?? hidden / heads;
    const metadata = [...hfConfigToGgufMetadata(cfg, FILE_TYPE[outtype], opts.name ?? path.basename(path.resolve(modelDir))), ...tokenizerMetadata(tokenizer)];
    const specs: GgufTensorSpec[] = [];
    const scaling = ropeScalingOf(cfg);
    if (scaling && String(scaling.rope_type ?? scaling.type) === "llama3") {
      const params = (cfg.rope_parameters ?? {}) as Record<string, unknown>;
      const theta = Number(cfg.rope_theta ?? params.rope_theta ?? 10000);
      const factors = llama3RopeFactors(theta, headDim, {
        factor: Number(scaling.factor),
        low_freq_factor: Number(scaling.low_freq_factor ?? 1),
        high_freq_factor: Number(scaling.high_freq_factor ?? 4),
        original_max_position_embeddings: Number(scaling.original_max_position_embeddings ?? 8192),
      });
      specs.push({ name: "rope_freqs.weight", shape: [factors.length], type: GgmlType.F32, data: () => new Tensor(factors, [factors.length], "f32") });
    }
    for (const hf of reader.names()) {
      const name = hfToGgufName(hf);
      if (!name) throw new FormatError(modelDir, `tensor "${hf}" has no llama.cpp equivalent`);
      const info = reader.info(hf);
      const type: GgufWritableType = info.shape.length === 1 || outtype === "f32" ? GgmlType.F32 : GgmlType.F16;
      const rotary = rotaryHeadsFor(hf, heads, kvHeads);
      specs.push({
        name,
        shape: info.shape,
        type,
        data: () => {
          const t = reader.read(hf);
          if (rotary === undefined) return t;
          const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
          const p = halfSplitToInterleaved(bytes, t.shape[0]!, bytes.length / t.shape[0]!, rotary);
          return new Tensor(t.dtype === "f32" ? new Float32Array(p.buffer) : new Uint16Array(p.buffer), t.shape, t.dtype);
        },
      });
    }
    if (!specs.some((s) => s.name === "token_embd.weight")) throw new ConfigError(`${modelDir}: no model.embed_tokens.weight`);
    writeGguf(outFile, metadata, specs, { onTensor: opts.onTensor });
    return tokenizer;
  } finally {
    reader.close();
  }
}

/**
 * The folder's tokenizer as GGUF data: a sentencepiece tokenizer.model
 * ("llama"), else a byte-level tokenizer.json ("gpt2", Llama 3), else a
 * placeholder vocabulary of the config's size.
 */
function folderTokenizer(dir: string, cfg: Record<string, unknown>): GgufTokenizerData {
  const vocab = cfg.vocab_size as number;
  const spm = path.join(dir, "tokenizer.model");
  if (fs.existsSync(spm)) {
    let model: SentencePieceModel | undefined;
    try {
      model = readSentencePieceModel(spm);
    } catch {
      model = undefined; // e.g. a Llama 3 tiktoken file: try tokenizer.json
    }
    if (model && model.pieces.length === vocab) return sentencePieceToGgufData(model);
  }
  const tj = path.join(dir, "tokenizer.json");
  if (fs.existsSync(tj)) {
    const data = tokenizerJsonToGgufData(JSON.parse(fs.readFileSync(tj, "utf8")) as Record<string, unknown>, tj);
    if (data.tokens.length === vocab) return data;
  }
  const data = syntheticSpmVocab(vocab);
  if (typeof cfg.bos_token_id === "number" && cfg.bos_token_id < vocab) data.bosTokenId = cfg.bos_token_id;
  if (typeof cfg.eos_token_id === "number" && cfg.eos_token_id < vocab) data.eosTokenId = cfg.eos_token_id;
  return data;
}
