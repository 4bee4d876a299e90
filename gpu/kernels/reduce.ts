/**
 * The workgroup-memory tree reduction the row kernels share (RMSNorm's sum of
 * squares, attention's row max and softmax denominator).
 */

/**
 * WGSL statements: every thread stores `value` in the workgroup array `red`
 * (at least `size` f32), then log2(size) halving steps combine pairs, with a
 * barrier after each, so red[0] holds the workgroup's sum or max. Must run in
 * uniform control flow; `size` is the workgroup size (a power of two).
 */
export function workgroupReduce(value: string, size: number, op: "sum" | "max"): string {
  const combine = op === "sum" ? "red[li] += red[li + k];" : "red[li] = max(red[li], red[li + k]);";
  return `red[li] = ${value};
  workgroupBarrier();
  for (var k = ${size / 2}u; k > 0u; k >>= 1u) {
    if (li < k) { ${combine} }
    workgroupBarrier();
  }`;
}
