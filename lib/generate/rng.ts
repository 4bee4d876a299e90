/**
 * The sampling RNG. Torch's Philox/MT streams cannot be reproduced outside
 * torch, so a seed here gives *our* reproducibility: the same seed, prompt and
 * options give the same tokens on every run and platform (all arithmetic is
 * 32-bit integer, independent of the backend).
 *
 * Generator: xoshiro128** (Blackman & Vigna, 2018), 128-bit state, period
 * 2^128 − 1. The state is filled from the seed by splitmix32 so that nearby
 * seeds (0, 1, 2…) give unrelated streams. Uniform doubles take 53 bits from
 * two outputs, so probabilities down to 2^-53 are resolved.
 */

/** splitmix32: a seed expander with good avalanche (one 32-bit output per call). */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class SeededRng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  readonly seed: number;

  /** `seed`: any safe integer (its low 53 bits are used); omitted = a random seed. */
  constructor(seed?: number) {
    if (seed === undefined) seed = Math.floor(Math.random() * 2 ** 32);
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
    this.seed = seed;
    // Mix both halves of the seed so seeds above 2^32 differ too.
    const hi = Math.floor(Math.abs(seed) / 2 ** 32) ^ (seed < 0 ? 0x5bd1e995 : 0);
    const st = { s: (seed >>> 0) ^ Math.imul(hi, 0x27d4eb2d) };
    this.a = splitmix32(st);
    this.b = splitmix32(st);
    this.c = splitmix32(st);
    this.d = splitmix32(st);
    if ((this.a | this.b | this.c | this.d) === 0) this.d = 1; // the all-zero state is a fixed point
  }

  /** A generator with this exact 128-bit state (for known-answer tests of the algorithm). */
  static fromState(a: number, b: number, c: number, d: number): SeededRng {
    const r = new SeededRng(0);
    r.a = a | 0;
    r.b = b | 0;
    r.c = c | 0;
    r.d = d | 0;
    return r;
  }

  /** Next 32-bit unsigned integer (xoshiro128**). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
