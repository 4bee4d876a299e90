// Shared by the CPU tape's kernel tests: seeded inputs and the error measure they compare with.
import { uniformStream } from "../lib/autograd/gradcheck.js";

/** n seeded uniform values in (−amp, amp). */
export function values(n: number, seed: number, amp = 1): Float32Array {
  const r = uniformStream(seed);
  return Float32Array.from({ length: n }, () => r() * amp);
}

/** max |got − want| over max |want| (the absolute error when want is all zeros). */
export function maxRel(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let scaleMax = 0, err = 0;
  for (let i = 0; i < want.length; i++) {
    scaleMax = Math.max(scaleMax, Math.abs(want[i]!));
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
  }
  return scaleMax === 0 ? err : err / scaleMax;
}
