/**
 * `llama-ts detokenize --tokenizer PATH --ids JSON [--skip-special-tokens] [--json]`
 * prints the decoded text (followed by a newline; with --json, as a JSON string
 * so trailing whitespace is unambiguous). An id outside the vocabulary is an
 * error naming it.
 */
import { AutoTokenizer } from "../../lib/tokenizer/auto-tokenizer.js";
import { existingPath, jsonFlag, parseFlags, required } from "../args.js";
import { UsageError } from "../cli-error.js";
import type { Command } from "../main.js";

export const command: Command = {
  summary: "decode token ids to text (--tokenizer PATH --ids '[1, 15043]' [--skip-special-tokens] [--json])",
  async run(argv) {
    const f = parseFlags(argv, {
      tokenizer: { type: "string" },
      ids: { type: "string" },
      "skip-special-tokens": { type: "boolean" },
      json: { type: "boolean" },
    });
    const tokPath = existingPath("--tokenizer", required("--tokenizer", f.tokenizer));
    const ids = jsonFlag("--ids", required("--ids", f.ids));
    if (!Array.isArray(ids) || !ids.every((x) => typeof x === "number")) throw new UsageError(`--ids: expected a JSON array of integers, got ${f.ids!.slice(0, 80)}`);
    const tok = AutoTokenizer.fromPretrained(tokPath);
    const text = tok.decode(ids as number[], { skipSpecialTokens: f["skip-special-tokens"] === true });
    process.stdout.write((f.json ? JSON.stringify(text) : text) + "\n");
    return 0;
  },
};
