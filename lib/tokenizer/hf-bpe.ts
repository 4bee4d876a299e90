/**
 * The BPE model of HF `tokenizers` (models/bpe/model.rs), re-implemented:
 * a word is split into characters (each looked up in the vocab; unknown
 * ones become `<0xNN>` byte tokens with byte_fallback, or `<unk>`, fused
 * when fuse_unk), then the adjacent pair with the LOWEST merge rank is
 * merged until none is left (ties: leftmost). With ignore_merges, a word
 * that is itself in the vocab is returned whole (Llama 3).
 *
 * Speed: merges live in a typed-array hash table keyed by (leftId, rightId),
 * candidates in a typed-array heap,
 * and results are cached per word. A word with ▁ inside is cut before each
 * ▁-run when no vocab token spans such a boundary (checked at load), so a
 * whole Llama-2 sentence is merged as a series of cached words.
 */
import { FormatError } from "../errors.js";
import { MergeHeap } from "./merge-heap.js";
import { PairTable } from "./pair-table.js";
import { bytePiece, bytesToByteLevel, utf8Encode } from "./utf8.js";

const SPACE_CODE = 0x2581;
const MAX_CACHED_WORD = 64;
const MAX_CACHE_ENTRIES = 100_000;
/** Token ids must stay below this (int32 tables with room to spare). */
const MAX_ID = 1 << 30;

/** Merge rules in rank order, as token ids. `merged[i]` = id of left+right, or null to resolve lazily. */
export interface MergeIds {
  readonly left: Int32Array;
  readonly right: Int32Array;
  readonly merged: Int32Array | null;
}

export interface HfBpeConfig {
  readonly vocab: ReadonlyMap<string, number>;
  readonly merges: MergeIds;
  readonly unkToken: string | null;
  readonly byteFallback: boolean;
  readonly fuseUnk: boolean;
  readonly ignoreMerges: boolean;
}

export class HfBpe {
  readonly vocab: ReadonlyMap<string, number>;
  /** id → token string ("" for holes in a sparse vocab). */
  readonly idToToken: string[];
  /** (leftId, rightId) → v1 rank, v2 merged id (-1 until first needed: resolving 280k merged strings at load is slow). */
  private readonly merges: PairTable;
  private readonly file: string;
  /** Id of the unk token, -1 if none. */
  readonly unkId: number;
  private readonly byteFallback: boolean;
  private readonly fuseUnk: boolean;
  private readonly ignoreMerges: boolean;
  private readonly byteIds = new Int32Array(256).fill(-1);
  /** BMP code point → id of the one-character token, -1 if none. */
  private readonly bmpId = new Int32Array(0x10000).fill(-1);
  private readonly chunkable: boolean;
  private readonly cache = new Map<string, number[]>();

  private ids = new Int32Array(256);
  private prev = new Int32Array(256);
  private next = new Int32Array(256);
  private alive = new Uint8Array(256);
  private readonly heap = new MergeHeap();

  constructor(cfg: HfBpeConfig, file: string) {
    this.file = file;
    this.vocab = cfg.vocab;
    let maxId = -1;
    for (const id of cfg.vocab.values()) {
      if (!Number.isInteger(id) || id < 0 || id >= MAX_ID) throw new FormatError(file, `model.vocab id ${id} is not an integer in [0, ${MAX_ID})`);
      if (id > maxId) maxId = id;
    }
    this.idToToken = new Array<string>(maxId + 1).fill("");
    let chunkable = true;
    for (const [tok, id] of cfg.vocab) {
      this.idToToken[id] = tok;
      if (tok.length === 1) this.bmpId[tok.charCodeAt(0)] = id;
      if (chunkable && tok.length > 1 && tok.includes("\u2581")) {
        for (let i = 1; i < tok.length; i++) {
          if (tok.charCodeAt(i) === SPACE_CODE && tok.charCodeAt(i - 1) !== SPACE_CODE) chunkable = false;
        }
      }
    }
    this.chunkable = chunkable;
    const { left, right, merged } = cfg.merges;
    this.merges = new PairTable(left.length);
    // A repeated pair takes its last rank, as collecting into HF's HashMap does.
    for (let rank = 0; rank < left.length; rank++) this.merges.set(left[rank]!, right[rank]!, rank, merged ? merged[rank]! : -1);
    this.unkId = cfg.unkToken !== null ? (cfg.vocab.get(cfg.unkToken) ?? -1) : -1;
    if (cfg.unkToken !== null && this.unkId < 0) throw new FormatError(file, `model.unk_token ${JSON.stringify(cfg.unkToken)} is not in the vocab`);
    this.byteFallback = cfg.byteFallback;
    this.fuseUnk = cfg.fuseUnk;
    this.ignoreMerges = cfg.ignoreMerges;
    for (let b = 0; b < 256; b++) this.byteIds[b] = cfg.vocab.get(bytePiece(b)) ?? -1;
  }

  /** Merged id of the pair (l, r) in `slot`, resolving left+right in the vocab the first time. */
  private mergedId(slot: number, l: number, r: number): number {
    const m = this.merges.v2[slot]!;
    if (m >= 0) return m;
    const text = this.idToToken[l]! + this.idToToken[r]!;
    const id = this.vocab.get(text);
    if (id === undefined) throw new FormatError(this.file, `model.merges has "${this.idToToken[l]} ${this.idToToken[r]}" but the merged token ${JSON.stringify(text)} is not in the vocab`);
    this.merges.v2[slot] = id;
    return id;
  }

  get size(): number {
    return this.vocab.size;
  }

  /** Encodes one pre-token (already in the model's alphabet), appending ids to `out`. */
  encodeWord(word: string, out: number[]): void {
    if (word.length === 0) return;
    if (this.chunkable && word.length > 1) {
      let begin = 0;
      for (let i = 1; i < word.length; i++) {
        if (word.charCodeAt(i) === SPACE_CODE && word.charCodeAt(i - 1) !== SPACE_CODE) {
          this.encodeCached(word.slice(begin, i), out);
          begin = i;
        }
      }
      if (begin > 0) {
        this.encodeCached(word.slice(begin), out);
        return;
      }
    }
    this.encodeCached(word, out);
  }

  /**
   * Encodes a pre-token of raw text as a byte-level word (Llama 3): the cache
   * is keyed on the raw text, so the byte mapping is paid only on a miss.
   */
  encodeByteLevel(text: string, out: number[]): void {
    const hit = this.cache.get(text);
    if (hit) {
      for (let k = 0; k < hit.length; k++) out.push(hit[k]!);
      return;
    }
    const ids: number[] = [];
    this.mergeWord(bytesToByteLevel(utf8Encode(text)), ids);
    if (text.length <= MAX_CACHED_WORD) this.remember(text, ids);
    for (let k = 0; k < ids.length; k++) out.push(ids[k]!);
  }

  private encodeCached(word: string, out: number[]): void {
    const hit = this.cache.get(word);
    if (hit) {
      for (let k = 0; k < hit.length; k++) out.push(hit[k]!);
      return;
    }
    if (word.length > MAX_CACHED_WORD) {
      this.mergeWord(word, out);
      return;
    }
    const ids: number[] = [];
    this.mergeWord(word, ids);
    this.remember(word, ids);
    for (let k = 0; k < ids.length; k++) out.push(ids[k]!);
  }

  private remember(key: string, ids: number[]): void {
    if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.clear();
    this.cache.set(key, ids);
  }

  /** Merges one word (no chunking, no cache): HF's merge_word + merge_all. */
  mergeWord(word: string, out: number[]): void {
    if (this.ignoreMerges) {
      const whole = this.vocab.get(word);
      if (whole !== undefined) {
        out.push(whole);
        return;
      }
    }
    this.ensureScratch(word.length * 4);
    const ids = this.ids, prev = this.prev, next = this.next, alive = this.alive;
    const w: number[] = [];
    let n = 0;
    let unkId = -1;
    let unkWidth = 0;
    const add = (id: number, width: number) => {
      ids[n] = id;
      alive[n] = 1;
      w.push(width);
      n++;
    };
    for (let i = 0; i < word.length; ) {
      const c = word.charCodeAt(i);
      let l = 1;
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < word.length) {
        const d = word.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) l = 2;
      }
      const id = l === 1 ? this.bmpId[c]! : (this.vocab.get(word.slice(i, i + 2)) ?? -1);
      if (id >= 0) {
        if (unkId >= 0) {
          add(unkId, unkWidth);
          unkId = -1;
        }
        add(id, l);
      } else {
        const ch = word.slice(i, i + l);
        let handled = false;
        if (this.byteFallback) {
          const bytes = utf8Encode(ch);
          if (bytes.every((b) => this.byteIds[b]! >= 0)) {
            // As HF does, a pending <unk> is not flushed before byte tokens.
            bytes.forEach((b, k) => add(this.byteIds[b]!, k === 0 ? l : 0));
            handled = true;
          }
        }
        if (!handled && this.unkId >= 0) {
          if (unkId >= 0) {
            if (this.fuseUnk) unkWidth += l;
            else {
              add(unkId, unkWidth);
              unkId = this.unkId;
              unkWidth = l;
            }
          } else {
            unkId = this.unkId;
            unkWidth = l;
          }
        }
      }
      i += l;
    }
    if (unkId >= 0) add(unkId, unkWidth);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }

    const heap = this.heap;
    heap.clear();
    const merges = this.merges;
    const rankOf = merges.v1;
    // Candidates carry the slot of their pair; the merged id is resolved when one is applied.
    for (let i = 0; i + 1 < n; i++) {
      const slot = merges.find(ids[i]!, ids[i + 1]!);
      if (slot >= 0) heap.push(rankOf[slot]!, i, this.mergedId(slot, ids[i]!, ids[i + 1]!), 0);
    }
    while (heap.pop()) {
      const pos = heap.topPos;
      if (!alive[pos]) continue;
      const right = next[pos]!;
      if (right < 0) continue;
      // Stale unless the current pair still merges into the same token (HF's check).
      const slot = merges.find(ids[pos]!, ids[right]!);
      if (slot < 0 || this.mergedId(slot, ids[pos]!, ids[right]!) !== heap.topA) continue;
      ids[pos] = heap.topA;
      w[pos]! += w[right]!;
      alive[right] = 0;
      next[pos] = next[right]!;
      if (next[right]! >= 0) prev[next[right]!] = pos;
      const p = prev[pos]!;
      if (p >= 0) {
        const sp = merges.find(ids[p]!, ids[pos]!);
        if (sp >= 0) heap.push(rankOf[sp]!, p, this.mergedId(sp, ids[p]!, ids[pos]!), 0);
      }
      const nx = next[pos]!;
      if (nx >= 0) {
        const sn = merges.find(ids[pos]!, ids[nx]!);
        if (sn >= 0) heap.push(rankOf[sn]!, pos, this.mergedId(sn, ids[pos]!, ids[nx]!), 0);
      }
    }
    for (let i = 0; i >= 0 && i < n; i = next[i]!) {
      out.push(ids[i]!);
    }
  }

  private ensureScratch(n: number): void {
    if (this.ids.length >= n) return;
    const size = Math.max(n, this.ids.length * 2);
    this.ids = new Int32Array(size);
    this.prev = new Int32Array(size);
    this.next = new Int32Array(size);
    this.alive = new Uint8Array(size);
  }
}
