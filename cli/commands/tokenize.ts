/**
 * `llama-ts tokenize [--tokenizer PATH|NAME] (--text TEXT | --text-file F | --jsonl F) [--no-bos] [--json]`
 * PATH is a tokenizer.model (sentencepiece or tiktoken), a tokenizer.json or a
 * model folder. With --json prints `{"ids": [...], "tokens": [...]}`; without,
 * one `index id token` line per token. --jsonl FILE reads one JSON string per
 * line and prints one `{"ids", "tokens"}` line per input line, in order.
 * BOS (the tokenizer's special tokens) is added unless --no-bos.
 */
import * as fs from "node:fs";
import { FormatError } from "../../lib/errors.js";
import { AutoTokenizer, type LlamaAnyTokenizer } from "../../lib/tokenizer/auto-tokenizer.js";
import { DEFAULT_MODEL, defineCommand, existingPath, modelPath } from "../args.js";
import { UsageError } from "../cli-error.js";

/** JSONL inputs beyond this are refused (bounds memory on a wrong file). */
const MAX_JSONL_BYTES = 1 << 30;

function encodeOne(tok: LlamaAnyTokenizer, text: string, addBos: boolean): { ids: number[]; tokens: string[] } {
  const ids = tok.encode(text, { addSpecialTokens: addBos });
  return { ids, tokens: tok.convertIdsToTokens(ids) };
}

export const command = defineCommand({
  summary: "encode text to token ids and tokens (--text T | --text-file F | --jsonl F [--tokenizer PATH] [--no-bos] [--json])",
  flags: {
    tokenizer: { type: "string", arg: "PATH|NAME", default: DEFAULT_MODEL, help: "tokenizer.model, tokenizer.json, a model folder or a model name" },
    text: { type: "string", arg: "TEXT", help: "the text to encode (give one of --text, --text-file, --jsonl)" },
    "text-file": { type: "string", arg: "FILE", help: "encode this file's whole text" },
    jsonl: { type: "string", arg: "FILE", help: "one JSON string per line; prints one {\"ids\", \"tokens\"} line each" },
    "no-bos": { type: "boolean", help: "do not add the tokenizer's special tokens (BOS)" },
    json: { type: "boolean", help: "print {\"ids\": [...], \"tokens\": [...]} instead of index/id/token lines" },
  },
  async run(f) {
    const tokPath = modelPath("--tokenizer", f.tokenizer);
    const sources = [f.text !== undefined, f["text-file"] !== undefined, f.jsonl !== undefined].filter(Boolean).length;
    if (sources !== 1) throw new UsageError("give exactly one of --text, --text-file or --jsonl");
    const tok = AutoTokenizer.fromPretrained(tokPath);
    const addBos = f["no-bos"] !== true;
    if (f.jsonl !== undefined) {
      const file = existingPath("--jsonl", f.jsonl);
      const size = fs.statSync(file).size;
      if (size > MAX_JSONL_BYTES) throw new FormatError(file, `${size} bytes is more than the ${MAX_JSONL_BYTES}-byte limit for --jsonl`);
      const lines = fs.readFileSync(file, "utf8").split("\n");
      if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop(); // the final newline ends the last line
      const out: string[] = [];
      lines.forEach((line, i) => {
        let value: unknown;
        try {
          value = JSON.parse(line.endsWith("\r") ? line.slice(0, -1) : line);
        } catch (err) {
          throw new FormatError(file, `line ${i + 1}: not valid JSON (${(err as Error).message})`);
        }
        if (typeof value !== "string") throw new FormatError(file, `line ${i + 1}: expected a JSON string, got ${value === null ? "null" : typeof value}`);
        out.push(JSON.stringify(encodeOne(tok, value, addBos)));
      });
      if (out.length) process.stdout.write(out.join("\n") + "\n");
      return 0;
    }
    const text = f.text ?? fs.readFileSync(existingPath("--text-file", f["text-file"]!), "utf8");
    const { ids, tokens } = encodeOne(tok, text, addBos);
    if (f.json) process.stdout.write(JSON.stringify({ ids, tokens }) + "\n");
    else process.stdout.write(ids.map((id, i) => `${i}\t${id}\t${JSON.stringify(tokens[i])}`).join("\n") + (ids.length ? "\n" : ""));
    return 0;
  },
});
