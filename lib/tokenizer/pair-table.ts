/**
 * An open-addressing hash table from a pair of token ids to two int32
 * values, in typed arrays: building it for Llama 3's 280k merges allocates
 * four arrays instead of 280k Map entries with double keys, and lookups in
 * the BPE loop allocate nothing.
 */
export class PairTable {
  private readonly mask: number;
  private readonly left: Int32Array;
  private readonly right: Int32Array;
  /** First value (rank or merged id), per slot. */
  readonly v1: Int32Array;
  /** Second value, per slot (callers may fill it lazily). */
  readonly v2: Int32Array;
  size = 0;

  constructor(expected: number) {
    let cap = 16;
    while (cap < expected * 2) cap *= 2;
    this.mask = cap - 1;
    this.left = new Int32Array(cap).fill(-1);
    this.right = new Int32Array(cap);
    this.v1 = new Int32Array(cap);
    this.v2 = new Int32Array(cap);
  }

  private hash(l: number, r: number): number {
    return (Math.imul(l, 0x9e3779b1) ^ Math.imul(r + 0x7f4a7c15, 0x85ebca77)) >>> 0;
  }

  /** Slot of (l, r), or -1. */
  find(l: number, r: number): number {
    const left = this.left;
    let i = this.hash(l, r) & this.mask;
    for (;;) {
      const k = left[i]!;
      if (k === -1) return -1;
      if (k === l && this.right[i] === r) return i;
      i = (i + 1) & this.mask;
    }
  }

  /** Inserts or overwrites (l, r) → (v1, v2); returns the slot. Ids must be ≥ 0. */
  set(l: number, r: number, v1: number, v2: number): number {
    if (this.size * 2 >= this.mask + 1) throw new Error("PairTable is full (size it for the number of pairs)");
    let i = this.hash(l, r) & this.mask;
    for (;;) {
      const k = this.left[i]!;
      if (k === -1) {
        this.left[i] = l;
        this.right[i] = r;
        this.size++;
        break;
      }
      if (k === l && this.right[i] === r) break;
      i = (i + 1) & this.mask;
    }
    this.v1[i] = v1;
    this.v2[i] = v2;
    return i;
  }
}
