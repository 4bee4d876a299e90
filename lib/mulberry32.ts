/**
 * mulberry32: a small seeded PRNG (32-bit state, all integer arithmetic), so
 * test inputs, fuzz mutations, benchmark corpora and detector probes are the
 * same on every run and platform, and a failure reproduces from its seed.
 * The one implementation shared by lib/, test/ and bench/ (the sampling RNG
 * in lib/generate/rng.ts is a different, stronger generator).
 */

/** A stream of uniform numbers in [0, 1) from `seed` (only its low 32 bits are used). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
