/**
 * `llama-ts detokenize [--tokenizer PATH|NAME] --ids JSON [--skip-special-tokens] [--json]`
 * prints the decoded text (followed by a newline; with --json, as a JSON string
 * so trailing whitespace is unambiguous). An id outside the vocabulary is an
 * error naming it.
 */
import { AutoTokenizer } from "../../lib/tokenizer/auto-tokenizer.js";
import { DEFAULT_MODEL, defineCommand, jsonFlag, modelPath } from "../args.js";
import { UsageError } from "../cli-error.js";

export const command = defineCommand({
  summary: "decode token ids to text (--ids '[1, 15043]' [--tokenizer PATH] [--skip-special-tokens] [--json])",
  flags: {
    tokenizer: { type: "string", arg: "PATH|NAME", default: DEFAULT_MODEL, help: "tokenizer.model, tokenizer.json, a model folder or a model name" },
    ids: { type: "string", arg: "JSON", required: true, help: "the token ids, a JSON list of integers" },
    "skip-special-tokens": { type: "boolean", help: "leave out special tokens (BOS, EOS, …)" },
    json: { type: "boolean", help: "print the text as a JSON string (trailing whitespace unambiguous)" },
  },
  async run(f) {
    const tokPath = modelPath("--tokenizer", f.tokenizer);
    const ids = jsonFlag("--ids", f.ids);
    if (!Array.isArray(ids) || !ids.every((x) => typeof x === "number")) throw new UsageError(`--ids: expected a JSON array of integers, got ${f.ids!.slice(0, 80)}`);
    const tok = AutoTokenizer.fromPretrained(tokPath);
    const text = tok.decode(ids as number[], { skipSpecialTokens: f["skip-special-tokens"] === true });
    process.stdout.write((f.json ? JSON.stringify(text) : text) + "\n");
    return 0;
  },
});
