/**
 * Meta's original Llama 3 `tokenizer.model` is not protobuf but tiktoken
 * text: one `base64(token bytes) rank` per line. We turn it into the same
 * BPE that HF's `tokenizer.json` holds, deriving merges exactly as
 * transformers' TikTokenConverter does (every split of a token into two
 * tokens, ordered by the ranks of the halves, then stably by the rank of the
 * token), so both files give identical ids.
 */
import { FormatError } from "../errors.js";
import type { MergeIds } from "./hf-bpe.js";
import type { TokenizerJsonSpec } from "./tokenizer-json.js";
import { PairTable } from "./pair-table.js";
import { bytesToByteLevel } from "./utf8.js";

/** Llama 3's pre-tokenizer split pattern (Oniguruma syntax, as in tokenizer.json). */
export const LLAMA3_SPLIT_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** The 256 special tokens after the base vocab, by Llama version. */
export function llama3SpecialTokenNames(version: "3.1" | "3.0" = "3.1"): string[] {
  const names =
    version === "3.1"
      ? ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
      : ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>", "<|reserved_special_token_2|>", "<|reserved_special_token_3|>", "<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>", "<|eot_id|>"];
  let k = version === "3.1" ? 3 : 5;
  while (names.length < 256) names.push(`<|reserved_special_token_${k++}|>`);
  return names;
}

/** True when the bytes look like tiktoken text (first line `base64 integer`) rather than protobuf. */
export function isTiktokenText(bytes: Uint8Array): boolean {
  const head = new TextDecoder("latin1").decode(bytes.subarray(0, Math.min(bytes.length, 256)));
  return /^[A-Za-z0-9+/]+=* \d+\r?\n/.test(head);
}

const MAX_RANK = 1 << 30;

/** Parses tiktoken text into token bytes by rank (duplicate tokens are caught by tiktokenSpec). */
export function parseTiktoken(bytes: Uint8Array, file: string): Uint8Array[] {
  const text = new TextDecoder("latin1").decode(bytes);
  const byRank: Uint8Array[] = [];
  let lineNo = 0;
  let pos = 0;
  while (pos < text.length) {
    let end = text.indexOf("\n", pos);
    if (end < 0) end = text.length;
    lineNo++;
    const l = text.charCodeAt(end - 1) === 13 ? text.slice(pos, end - 1) : text.slice(pos, end);
    pos = end + 1;
    if (l.length === 0) continue;
    const sp = l.indexOf(" ");
    const b64 = sp > 0 ? l.slice(0, sp) : "";
    const rankText = sp > 0 ? l.slice(sp + 1) : "";
    if (!/^[A-Za-z0-9+/]+=*$/.test(b64) || !/^\d+$/.test(rankText)) throw new FormatError(file, `line ${lineNo}: expected "base64 rank", got ${JSON.stringify(l.slice(0, 60))}`);
    const rank = Number(rankText);
    if (rank >= MAX_RANK) throw new FormatError(file, `line ${lineNo}: rank ${rank} is too large`);
    if (byRank[rank] !== undefined) throw new FormatError(file, `line ${lineNo}: rank ${rank} appears twice`);
    const tok = Buffer.from(b64, "base64");
    if (tok.length === 0) throw new FormatError(file, `line ${lineNo}: empty token`);
    byRank[rank] = new Uint8Array(tok.buffer, tok.byteOffset, tok.byteLength);
  }
  for (let r = 0; r < byRank.length; r++) if (byRank[r] === undefined) throw new FormatError(file, `rank ${r} is missing (ranks must be 0..${byRank.length - 1})`);
  if (byRank.length < 256) throw new FormatError(file, `only ${byRank.length} tokens: a byte-level BPE needs at least the 256 single bytes`);
  return byRank;
}

/** Builds a tokenizer.json-equivalent spec (Llama 3 pipeline) from tiktoken token bytes. */
export function tiktokenSpec(byRank: readonly Uint8Array[], file: string, specialNames: readonly string[]): TokenizerJsonSpec {
  // A byte trie of all tokens, so every split of every token is checked with integer lookups
  // instead of ~1.6M substring allocations: child(node, byte) in a PairTable, rank per node.
  let totalBytes = 0;
  for (const b of byRank) totalBytes += b.length;
  const child = new PairTable(totalBytes);
  const nodeRank = new Int32Array(totalBytes + 1).fill(-1);
  let nodes = 1;
  byRank.forEach((b, r) => {
    let node = 0;
    for (let i = 0; i < b.length; i++) {
      const slot = child.find(node, b[i]!);
      if (slot >= 0) node = child.v1[slot]!;
      else {
        child.set(node, b[i]!, nodes, 0);
        node = nodes++;
      }
    }
    if (nodeRank[node]! >= 0) throw new FormatError(file, `token of rank ${r} duplicates rank ${nodeRank[node]}`);
    nodeRank[node] = r;
  });
  const rankOfRange = (b: Uint8Array, from: number, to: number): number => {
    let node = 0;
    for (let i = from; i < to; i++) {
      const slot = child.find(node, b[i]!);
      if (slot < 0) return -1;
      node = child.v1[slot]!;
    }
    return nodeRank[node]!;
  };
  for (let b = 0; b < 256; b++) if (rankOfRange(Uint8Array.of(b), 0, 1) < 0) throw new FormatError(file, `byte 0x${b.toString(16)} has no token: not a byte-level BPE`);
  // TikTokenConverter: for each token, its splits into two tokens sorted by (rank left, rank right); then stable by token rank.
  const L: number[] = [];
  const R: number[] = [];
  const M: number[] = [];
  // Walking ranks in order makes the result already (stably) sorted by merged-token rank.
  for (let r = 0; r < byRank.length; r++) {
    const k = byRank[r]!;
    if (k.length < 2) continue;
    const local: [number, number][] = [];
    let node = 0;
    for (let i = 1; i < k.length; i++) {
      const slot = child.find(node, k[i - 1]!);
      node = child.v1[slot]!; // the whole token is in the trie, so every prefix node exists
      const a = nodeRank[node]!;
      if (a < 0) continue;
      const b = rankOfRange(k, i, k.length);
      if (b >= 0) local.push([a, b]);
    }
    local.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    for (const [a, b] of local) {
      L.push(a);
      R.push(b);
      M.push(r);
    }
  }
  const merges: MergeIds = { left: Int32Array.from(L), right: Int32Array.from(R), merged: Int32Array.from(M) };
  const vocab = new Map<string, number>();
  byRank.forEach((b, r) => vocab.set(bytesToByteLevel(b), r));
  const base = byRank.length;
  const bos = specialNames[0]!;
  return {
    model: { type: "BPE", vocab, merges, ignore_merges: true, byte_fallback: false, fuse_unk: false, unk_token: null },
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: LLAMA3_SPLIT_PATTERN }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { [bos]: { id: bos, ids: [base], tokens: [bos] } },
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    added_tokens: specialNames.map((content, i) => ({ id: base + i, content, special: true, lstrip: false, rstrip: false, single_word: false, normalized: false })),
  };
}
