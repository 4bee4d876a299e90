/**
 * A binary min-heap of candidate merges, stored in parallel typed arrays so
 * that encoding allocates nothing per candidate. Order: `key` ascending, then
 * `pos` ascending (both BPE flavours break ties by the leftmost position).
 * Each entry carries two integer payloads the caller uses to detect stale
 * candidates (a symbol merged away after the candidate was pushed).
 */
export class MergeHeap {
  private key = new Float64Array(64);
  private pos = new Int32Array(64);
  private a = new Int32Array(64);
  private b = new Int32Array(64);
  size = 0;

  // The popped entry, read by the caller after pop().
  topKey = 0;
  topPos = 0;
  topA = 0;
  topB = 0;

  clear(): void {
    this.size = 0;
  }

  push(key: number, pos: number, a: number, b: number): void {
    if (this.size === this.key.length) this.grow();
    let i = this.size++;
    // Sift up.
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pk = this.key[parent]!;
      if (pk < key || (pk === key && this.pos[parent]! <= pos)) break;
      this.key[i] = pk;
      this.pos[i] = this.pos[parent]!;
      this.a[i] = this.a[parent]!;
      this.b[i] = this.b[parent]!;
      i = parent;
    }
    this.key[i] = key;
    this.pos[i] = pos;
    this.a[i] = a;
    this.b[i] = b;
  }

  /** Removes the smallest entry into topKey/topPos/topA/topB. Returns false when empty. */
  pop(): boolean {
    if (this.size === 0) return false;
    this.topKey = this.key[0]!;
    this.topPos = this.pos[0]!;
    this.topA = this.a[0]!;
    this.topB = this.b[0]!;
    const n = --this.size;
    if (n === 0) return true;
    const key = this.key[n]!;
    const pos = this.pos[n]!;
    const a = this.a[n]!;
    const b = this.b[n]!;
    let i = 0;
    // Sift down.
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n) {
        const ck = this.key[child]!;
        const rk = this.key[right]!;
        if (rk < ck || (rk === ck && this.pos[right]! < this.pos[child]!)) child = right;
      }
      const ck = this.key[child]!;
      if (key < ck || (key === ck && pos <= this.pos[child]!)) break;
      this.key[i] = ck;
      this.pos[i] = this.pos[child]!;
      this.a[i] = this.a[child]!;
      this.b[i] = this.b[child]!;
      i = child;
    }
    this.key[i] = key;
    this.pos[i] = pos;
    this.a[i] = a;
    this.b[i] = b;
    return true;
  }

  private grow(): void {
    const n = this.key.length * 2;
    const key = new Float64Array(n);
    key.set(this.key);
    const pos = new Int32Array(n);
    pos.set(this.pos);
    const a = new Int32Array(n);
    a.set(this.a);
    const b = new Int32Array(n);
    b.set(this.b);
    this.key = key;
    this.pos = pos;
    this.a = a;
    this.b = b;
  }
}
