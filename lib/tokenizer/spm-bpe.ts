/**
 * sentencepiece's BPE encoder (bpe_model.cc), re-implemented over integer
 * symbol ids. The normalized text is split into characters (user-defined
 * symbols stay whole and never merge); then, repeatedly, the adjacent pair
 * whose concatenation is a piece with the HIGHEST score is merged (ties: the
 * leftmost pair). UNUSED pieces may be formed and are split back into the
 * two halves that made them. Characters that end up as no piece become
 * `<unk>`, or their UTF-8 bytes as `<0xNN>` pieces when byte_fallback is on.
 *
 * Speed: every string a symbol can be is given an integer ("ext id": a piece
 * id, or vocabSize + k for a single character that is not itself a piece),
 * and all pairs that can merge are precomputed into a typed-array hash
 * table keyed by (leftExt, rightExt). Text is cut into chunks at the start of each
 * ▁-run (no piece spans such a boundary, checked at load) and chunk results
 * are cached.
 */
import { MergeHeap } from "./merge-heap.js";
import { PairTable } from "./pair-table.js";
import { PieceType, type SentencePiece } from "./sentencepiece-model.js";
import { utf8Encode } from "./utf8.js";

const SPACE_CODE = 0x2581;
/** Chunks longer than this are encoded but not cached (bounds cache memory). */
const MAX_CACHED_CHUNK = 64;
const MAX_CACHE_ENTRIES = 100_000;

export interface SpmBpeOptions {
  readonly pieces: readonly SentencePiece[];
  readonly unkId: number;
  readonly byteFallback: boolean;
}

export class SpmBpe {
  private readonly pieces: readonly SentencePiece[];
  private readonly unkId: number;
  private readonly byteFallback: boolean;
  /** Normal, user-defined and unused pieces: the strings merges may produce (spm's `pieces_`). */
  private readonly mergeable = new Map<string, number>();
  /** Control, unknown and byte pieces (spm's `reserved_id_map_`), looked up first by PieceToId. */
  private readonly reserved = new Map<string, number>();
  /** ext id of single characters that are not mergeable pieces: vocabSize + k. */
  private readonly extraChar = new Map<number, number>();
  private readonly extraCharString: string[] = [];
  /** (leftExt, rightExt) → v1: merged piece id. */
  private readonly pairs: PairTable;
  /** BMP code point → ext id (-1 = not seen in any piece), for the hot loop. */
  private readonly bmpExt = new Int32Array(0x10000).fill(-1);
  /** User-defined pieces sorted longest first, matched greedily (spm's PrefixMatcher). */
  private readonly userDefined: string[] = [];
  private readonly userDefinedFirstChars = new Set<number>();
  /** Byte value → id of its `<0xNN>` piece (-1 when absent). */
  private readonly byteIds = new Int32Array(256).fill(-1);
  readonly chunkable: boolean;
  private readonly cache = new Map<string, number[]>();

  // Per-encode scratch, grown on demand.
  private ext = new Int32Array(256);
  private len = new Int32Array(256); // UTF-16 length of each symbol
  private start = new Int32Array(256); // UTF-16 start offset of each symbol in the chunk
  private prev = new Int32Array(256);
  private next = new Int32Array(256);
  private frozen = new Uint8Array(256);
  private readonly heap = new MergeHeap();

  constructor(opts: SpmBpeOptions) {
    this.pieces = opts.pieces;
    this.unkId = opts.unkId;
    this.byteFallback = opts.byteFallback;
    let chunkable = true;
    opts.pieces.forEach((p, id) => {
      const normal = p.type === PieceType.Normal || p.type === PieceType.UserDefined || p.type === PieceType.Unused;
      const map = normal ? this.mergeable : this.reserved;
      if (!map.has(p.piece)) map.set(p.piece, id);
      if (p.type === PieceType.UserDefined) this.userDefined.push(p.piece);
      if (p.type === PieceType.Byte) {
        const m = /^<0x([0-9A-F]{2})>$/.exec(p.piece);
        if (m) this.byteIds[Number.parseInt(m[1]!, 16)] = id;
      }
      // A piece with "x▁" (x not ▁) could span a chunk boundary: then we must not chunk.
      for (let i = 1; i < p.piece.length; i++) {
        if (p.piece.charCodeAt(i) === SPACE_CODE && p.piece.charCodeAt(i - 1) !== SPACE_CODE) chunkable = false;
      }
    });
    this.chunkable = chunkable;
    this.userDefined.sort((a, b) => b.length - a.length);
    for (const u of this.userDefined) this.userDefinedFirstChars.add(u.codePointAt(0)!);

    // Ext ids for characters: a character that is a mergeable piece uses its id.
    const vocab = opts.pieces.length;
    const charExt = (ch: string): number => {
      const id = this.mergeable.get(ch);
      if (id !== undefined) return id;
      const cp = ch.codePointAt(0)!;
      let e = this.extraChar.get(cp);
      if (e === undefined) {
        e = vocab + this.extraCharString.length;
        this.extraChar.set(cp, e);
        this.extraCharString.push(ch);
      }
      return e;
    };
    // First pass: give every character of every mergeable piece an ext id.
    let splits = 0;
    for (const piece of this.mergeable.keys()) {
      for (const ch of piece) charExt(ch);
      splits += piece.length;
    }
    for (const [ch, id] of this.mergeable) if (isOneCodePoint(ch)) this.setBmp(ch, id);
    for (const [cp, e] of this.extraChar) if (cp < 0x10000) this.bmpExt[cp] = e;

    // Every split of a mergeable piece into two symbol strings is a merge candidate.
    const extOf = (s: string): number => {
      const id = this.mergeable.get(s);
      if (id !== undefined) return id;
      if (isOneCodePoint(s)) return this.extraChar.get(s.codePointAt(0)!) ?? -1;
      return -1;
    };
    this.pairs = new PairTable(splits);
    for (const [piece, id] of this.mergeable) {
      for (let k = 1; k < piece.length; k++) {
        const c = piece.charCodeAt(k);
        if (c >= 0xdc00 && c <= 0xdfff) continue; // not a code point boundary
        const l = extOf(piece.slice(0, k));
        if (l < 0) continue;
        const r = extOf(piece.slice(k));
        if (r < 0) continue;
        this.pairs.set(l, r, id, 0);
      }
    }
  }

  private setBmp(ch: string, ext: number): void {
    const cp = ch.codePointAt(0)!;
    if (cp < 0x10000) this.bmpExt[cp] = ext;
  }

  /** Encodes normalized text (▁ for spaces, dummy prefix already added), appending ids to `out`. */
  encode(normalized: string, out: number[]): void {
    if (!this.chunkable) {
      this.encodeChunk(normalized, out);
      return;
    }
    let begin = 0;
    for (let i = 1; i <= normalized.length; i++) {
      if (i === normalized.length || (normalized.charCodeAt(i) === SPACE_CODE && normalized.charCodeAt(i - 1) !== SPACE_CODE)) {
        const chunk = normalized.slice(begin, i);
        begin = i;
        if (chunk.length <= MAX_CACHED_CHUNK) {
          const hit = this.cache.get(chunk);
          if (hit) {
            for (let k = 0; k < hit.length; k++) out.push(hit[k]!);
            continue;
          }
          const ids: number[] = [];
          this.encodeChunk(chunk, ids);
          if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.clear();
          this.cache.set(chunk, ids);
          for (let k = 0; k < ids.length; k++) out.push(ids[k]!);
        } else {
          this.encodeChunk(chunk, out);
        }
      }
    }
  }

  private encodeChunk(s: string, out: number[]): void {
    if (s.length === 0) return;
    this.ensureScratch(s.length);
    const ext = this.ext, len = this.len, start = this.start, prev = this.prev, next = this.next, frozen = this.frozen;
    // 1. Split into symbols: one code point each, or a whole user-defined piece (frozen).
    let n = 0;
    for (let i = 0; i < s.length; ) {
      const c = s.charCodeAt(i);
      let l = 1;
      let cp = c;
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          cp = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
          l = 2;
        }
      }
      frozen[n] = 0;
      if (this.userDefined.length > 0 && this.userDefinedFirstChars.has(cp)) {
        const u = this.matchUserDefined(s, i);
        if (u > 0) {
          l = u;
          frozen[n] = 1;
        }
      }
      if (frozen[n]) ext[n] = this.mergeable.get(s.slice(i, i + l))!;
      else if (cp < 0x10000) ext[n] = this.bmpExt[cp]!;
      else ext[n] = this.extraChar.get(cp) ?? this.mergeable.get(s.slice(i, i + l)) ?? -1;
      len[n] = l;
      start[n] = i;
      prev[n] = n - 1;
      next[n] = n + 1;
      n++;
      i += l;
    }
    next[n - 1] = -1;

    // 2. Seed the agenda with every adjacent pair that forms a piece.
    const heap = this.heap;
    heap.clear();
    const pieces = this.pieces;
    const pairs = this.pairs;
    const pairId = pairs.v1;
    let revMerge: Map<number, [number, number]> | null = null;
    const consider = (left: number, right: number): void => {
      if (left < 0 || right < 0 || frozen[left] || frozen[right]) return;
      const l = ext[left]!, r = ext[right]!;
      if (l < 0 || r < 0) return;
      const slot = pairs.find(l, r);
      if (slot < 0) return;
      const id = pairId[slot]!;
      const piece = pieces[id]!;
      // Highest score first: the heap pops the smallest key.
      heap.push(-piece.score, left, l, r);
      if (piece.type === PieceType.Unused) (revMerge ??= new Map()).set(id, [l, r]);
    };
    for (let i = 1; i < n; i++) consider(i - 1, i);

    // 3. Merge until no candidate is left.
    while (heap.pop()) {
      const left = heap.topPos;
      const right = next[left]!;
      // Stale candidate: either symbol changed since it was pushed.
      if (len[left] === 0 || right < 0 || ext[left] !== heap.topA || ext[right] !== heap.topB) continue;
      ext[left] = pairId[pairs.find(heap.topA, heap.topB)]!;
      len[left]! += len[right]!;
      len[right] = 0;
      ext[right] = -2;
      next[left] = next[right]!;
      if (next[right]! >= 0) prev[next[right]!] = left;
      consider(prev[left]!, left);
      consider(left, next[left]!);
    }

    // 4. Emit: resegment unused pieces, map characters to ids, byte-fallback unknowns.
    const vocab = pieces.length;
    let prevUnk = false;
    const emit = (e: number, st: number, l: number): void => {
      if (e >= 0 && e < vocab && pieces[e]!.type === PieceType.Unused && revMerge?.has(e)) {
        const [a, b] = revMerge.get(e)!;
        const aLen = this.extLength(a);
        emit(a, st, aLen);
        emit(b, st + aLen, l - aLen);
        return;
      }
      let id = e >= 0 && e < vocab ? e : -1;
      if (id < 0 || l <= 2) {
        // spm's PieceToId: control/byte/unknown pieces shadow normal ones; unknown strings → unk.
        const text = s.slice(st, st + l);
        id = this.reserved.get(text) ?? (id >= 0 ? id : this.unkId);
      }
      if (id === this.unkId) {
        if (this.byteFallback) {
          const bytes = utf8Encode(s.slice(st, st + l));
          for (const b of bytes) out.push(this.byteIds[b]! >= 0 ? this.byteIds[b]! : this.unkId);
          prevUnk = false;
          return;
        }
        // Runs of unknown characters collapse into one <unk> (spm merges them).
        if (prevUnk) return;
        prevUnk = true;
      } else prevUnk = false;
      out.push(id);
    };
    for (let i = 0; i >= 0; i = next[i]!) emit(ext[i]!, start[i]!, len[i]!);
  }

  /** UTF-16 length of the string an ext id stands for. */
  private extLength(e: number): number {
    return e < this.pieces.length ? this.pieces[e]!.piece.length : this.extraCharString[e - this.pieces.length]!.length;
  }

  private matchUserDefined(s: string, i: number): number {
    for (const u of this.userDefined) if (s.startsWith(u, i)) return u.length;
    return 0;
  }

  private ensureScratch(n: number): void {
    if (this.ext.length >= n) return;
    const size = Math.max(n, this.ext.length * 2);
    this.ext = new Int32Array(size);
    this.len = new Int32Array(size);
    this.start = new Int32Array(size);
    this.prev = new Int32Array(size);
    this.next = new Int32Array(size);
    this.frozen = new Uint8Array(size);
  }

  /** The `<0xNN>` piece id for a byte, or -1. */
  byteId(b: number): number {
    return this.byteIds[b]!;
  }
}

function isOneCodePoint(s: string): boolean {
  if (s.length === 1) return true;
  if (s.length !== 2) return false;
  const c = s.charCodeAt(0);
  return c >= 0xd800 && c <= 0xdbff;
}
