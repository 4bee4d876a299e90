/**
 * q/k row permutations between the two rotary layouts.
 *
 * Meta (and llama.cpp's GGUF) rotate *interleaved* pairs: within a head, rows
 * (2i, 2i+1) form the i-th complex pair. HF rotates *half-split* pairs: rows
 * (i, i + head_dim/2). Converting a q or k projection weight [heads·head_dim, in]
 * is a per-head row shuffle (the same one HF's `permute` and llama.cpp's
 * `permute` do, in opposite directions). Works on raw rows of any element size.
 */

/** Meta/GGUF interleaved → HF half-split: out[h·d + j·d/2 + i] = in[h·d + 2i + j]. */
export function interleavedToHalfSplit(src: Uint8Array, rows: number, rowBytes: number, heads: number, out?: Uint8Array): Uint8Array {
  return permuteRows(src, rows, rowBytes, heads, false, out);
}

/** HF half-split → Meta/GGUF interleaved: out[h·d + 2i + j] = in[h·d + j·d/2 + i]. */
export function halfSplitToInterleaved(src: Uint8Array, rows: number, rowBytes: number, heads: number): Uint8Array {
  return permuteRows(src, rows, rowBytes, heads, true);
}

/** `out` (same size as src, not overlapping it) is filled when given, else allocated. */
function permuteRows(src: Uint8Array, rows: number, rowBytes: number, heads: number, toInterleaved: boolean, out?: Uint8Array): Uint8Array {
  if (rows % heads !== 0 || (rows / heads) % 2 !== 0) {
    throw new RangeError(`rotary permutation: ${rows} rows do not split into ${heads} heads of even size`);
  }
  if (src.length !== rows * rowBytes) throw new RangeError(`rotary permutation: expected ${rows * rowBytes} bytes, got ${src.length}`);
  const headDim = rows / heads;
  const half = headDim / 2;
  if (out && out.length !== src.length) throw new RangeError(`rotary permutation: output has ${out.length} bytes, expected ${src.length}`);
  out ??= new Uint8Array(new ArrayBuffer(src.length));
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const interleaved = h * headDim + 2 * i + j;
        const halfSplit = h * headDim + j * half + i;
        const [from, to] = toInterleaved ? [halfSplit, interleaved] : [interleaved, halfSplit];
        out.set(src.subarray(from * rowBytes, (from + 1) * rowBytes), to * rowBytes);
      }
    }
  }
  return out;
}
