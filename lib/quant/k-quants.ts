/**
 * The 256-element super-block formats Q4_K, Q5_K and Q6_K, as ggml's
 * `quantize_row_q{4,5,6}_K_ref` writes them (what `ggml_quantize_chunk`
 * runs without an importance matrix). Layouts (little-endian):
 *   Q4_K 144 B: f16 d, f16 dmin, scales[12], qs[128]
 *   Q5_K 176 B: f16 d, f16 dmin, scales[12], qh[32], qs[128]
 *   Q6_K 210 B: ql[128], qh[64], int8 scales[16], f16 d
 * Q4_K/Q5_K: 8 sub-blocks of 32, each with a 6-bit scale and min (x ≈
 * d·sc·q − dmin·m), fitted by `makeQkx2`; Q6_K: 16 sub-blocks of 16 with an
 * int8 scale (x ≈ d·sc·(q − 32)), fitted by `makeQx`.
 * Every float operation is rounded to float32 in ggml's order (ggml-float.ts).
 */
import { GROUP_MAX_EPS, fr, fromF16, nearestInt, putF16, toF16 } from "./ggml-float.js";

/** nearest_int(v) clamped to [lo, hi]; the fast path of nearestInt inlined (this is the hot loop). */
function clampedLevel(v: number, lo: number, hi: number): number {
  const l = v <= 4194303 && v >= -4194303 ? fr(v + 12582912) - 12582912 : nearestInt(v);
  return l < lo ? lo : l > hi ? hi : l;
}

const xm = new Float32Array(32); // x − min for the current min (ggml recomputes it in every pass; same values)
let fittedMin = 0;

/**
 * ggml's make_qkx2_quants: the scale and min of an asymmetric nmax-level
 * grid for x[xo..xo+n), trying nstep+1 grid stretches and keeping the one
 * with the least weighted squared error. Levels go to L[lo..]; returns the
 * scale and leaves −min in `fittedMin`.
 */
function makeQkx2(
  n: number, nmax: number, x: Float32Array, xo: number, w: Float32Array,
  L: Uint8Array, lo: number, Laux: Uint8Array, rmin: number, rdelta: number, nstep: number,
): number {
  let min = x[xo]!, max = x[xo]!;
  let sumW = w[0]!;
  let sumX = fr(sumW * x[xo]!);
  for (let i = 1; i < n; i++) {
    const xi = x[xo + i]!;
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    sumW = fr(sumW + w[i]!);
    sumX = fr(sumX + fr(w[i]! * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, lo, lo + n);
    fittedMin = -min;
    return 0;
  }
  for (let i = 0; i < n; i++) xm[i] = fr(x[xo + i]! - min);
  let range = fr(max - min);
  let iscale = fr(nmax / range);
  let scale = fr(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = clampedLevel(fr(iscale * xm[i]!), 0, nmax);
    L[lo + i] = l;
    const diff = fr(fr(fr(scale * l) + min) - x[xo + i]!);
    bestError = fr(bestError + fr(w[i]! * fr(diff * diff)));
  }
  for (let is = 0; is <= nstep; is++) {
    // `min` moves to the best fit so far, and the next grids start from it (as in ggml).
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / range);
    let sumL = 0, sumL2 = 0, sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = clampedLevel(fr(iscale * xm[i]!), 0, nmax);
      Laux[i] = l;
      const wl = fr(w[i]! * l);
      sumL = fr(sumL + wl);
      sumL2 = fr(sumL2 + fr(wl * l));
      sumXL = fr(sumXL + fr(wl * x[xo + i]!));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = fr(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        const diff = fr(fr(fr(thisScale * Laux[i]!) + thisMin) - x[xo + i]!);
        curError = fr(curError + fr(w[i]! * fr(diff * diff)));
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[lo + i] = Laux[i]!;
        bestError = curError;
        scale = thisScale;
        if (thisMin !== min) {
          min = thisMin;
          for (let i = 0; i < n; i++) xm[i] = fr(x[xo + i]! - min);
          range = fr(max - min);
        }
      }
    }
  }
  fittedMin = -min;
  return scale;
}

/**
 * ggml's make_qx_quants with rmse_type 1 and no weights (Q6_K's use): a
 * symmetric grid of levels −nmax..nmax−1 for x[xo..xo+n), weights x², trying
 * 19 stretches around nmax/max; levels + nmax go to L[lo..]; returns the scale.
 */
// Scratch for makeQx (Q6_K calls it on 16 values).
const qw = new Float32Array(16);
const qwx = new Float32Array(16);
const lx = new Int8Array(16);

function makeQx(n: number, nmax: number, x: Float32Array, xo: number, L: Int8Array, lo: number): number {
  let max = 0, amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xo + i]!);
    if (ax > amax) {
      amax = ax;
      max = x[xo + i]!;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, lo, lo + n);
    return 0;
  }
  // The weights x² and x²·x are the same in every pass: computed once.
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    qw[i] = fr(xi * xi);
    qwx[i] = fr(qw[i]! * xi);
  }
  let iscale = fr(-nmax / max);
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = clampedLevel(fr(iscale * x[xo + i]!), -nmax, nmax - 1);
    L[lo + i] = l + nmax;
    sumlx = fr(sumlx + fr(qwx[i]! * l));
    suml2 = fr(suml2 + fr(fr(qw[i]! * l) * l));
  }
  let scale = suml2 !== 0 ? fr(sumlx / suml2) : 0;
  let best = fr(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(fr(0.1) * is)) / max);
    sumlx = suml2 = 0;
    for (let i = 0; i < n; i++) {
      const l = clampedLevel(fr(iscale * x[xo + i]!), -nmax, nmax - 1);
      lx[i] = l;
      sumlx = fr(sumlx + fr(qwx[i]! * l));
      suml2 = fr(suml2 + fr(fr(qw[i]! * l) * l));
    }
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      for (let i = 0; i < n; i++) L[lo + i] = nmax + lx[i]!;
      scale = fr(sumlx / suml2);
      best = fr(scale * sumlx);
    }
  }
  return scale;
}

/** The 6-bit scale and min of sub-block j from the 12 packed bytes at s (ggml's get_scale_min_k4). */
function scaleMinK4(q: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [q[s + j]! & 63, q[s + j + 4]! & 63];
  return [(q[s + j + 4]! & 0x0f) | ((q[s + j - 4]! >> 6) << 4), (q[s + j + 4]! >> 4) | ((q[s + j]! >> 6) << 4)];
}

const L = new Uint8Array(256);
const Laux = new Uint8Array(32);
const weights = new Float32Array(32);
const scales = new Float32Array(8);
const mins = new Float32Array(8);

/**
 * The shared part of Q4_K and Q5_K for the super-block at x[xo..xo+256):
 * fits each sub-block, writes d, dmin and the 12 scale bytes at p, and leaves
 * the final levels (0..nmax) in L.
 */
function superBlockQkx(x: Float32Array, xo: number, out: Uint8Array, p: number, nmax: number, rmin: number, nstep: number): void {
  let maxScale = 0, maxMin = 0;
  for (let j = 0; j < 8; j++) {
    const sub = xo + 32 * j;
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) sumX2 = fr(sumX2 + fr(x[sub + l]! * x[sub + l]!));
    const avX = fr(Math.sqrt(fr(sumX2 / 32)));
    for (let l = 0; l < 32; l++) weights[l] = fr(avX + Math.abs(x[sub + l]!));
    const scale = makeQkx2(32, nmax, x, sub, weights, L, 32 * j, Laux, rmin, fr(0.1), nstep);
    const min = fittedMin;
    scales[j] = scale;
    mins[j] = min;
    if (scale > maxScale) maxScale = scale;
    if (min > maxMin) maxMin = min;
  }
  const invScale = maxScale > 0 ? fr(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
  const sc = p + 4;
  for (let j = 0; j < 8; j++) {
    const ls = Math.min(63, nearestInt(fr(invScale * scales[j]!)) & 0xff);
    const lm = Math.min(63, nearestInt(fr(invMin * mins[j]!)) & 0xff);
    if (j < 4) {
      out[sc + j] = ls;
      out[sc + j + 4] = lm;
    } else {
      out[sc + j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
      out[sc + j - 4] = out[sc + j - 4]! | ((ls >> 4) << 6);
      out[sc + j] = out[sc + j]! | ((lm >> 4) << 6);
    }
  }
  const dBits = toF16(fr(maxScale / 63));
  const mBits = toF16(fr(maxMin / 63));
  putF16(out, p, dBits);
  putF16(out, p + 2, mBits);
  for (let j = 0; j < 8; j++) {
    const [s, m] = scaleMinK4(out, sc, j);
    const d = fr(fromF16(dBits) * s);
    if (d === 0) continue; // keeps the levels makeQkx2 chose (C's `!d`: a NaN d goes on)
    const dm = fr(fromF16(mBits) * m);
    for (let ii = 0; ii < 32; ii++) {
      L[32 * j + ii] = Math.max(0, Math.min(nmax, nearestInt(fr(fr(x[xo + 32 * j + ii]! + dm) / d))));
    }
  }
}

export function quantizeQ4_K(x: Float32Array, out: Uint8Array, blocks: number): void {
  for (let b = 0; b < blocks; b++) {
    const p = b * 144;
    superBlockQkx(x, b * 256, out, p, 15, -1, 20);
    let q = p + 16;
    for (let j = 0; j < 256; j += 64, q += 32) {
      for (let l = 0; l < 32; l++) out[q + l] = L[j + l]! | (L[j + l + 32]! << 4);
    }
  }
}

export function quantizeQ5_K(x: Float32Array, out: Uint8Array, blocks: number): void {
  for (let b = 0; b < blocks; b++) {
    const p = b * 176;
    superBlockQkx(x, b * 256, out, p, 31, -0.5, 15);
    const qh = p + 16;
    out.fill(0, qh, qh + 32);
    let ql = p + 48;
    let m1 = 1, m2 = 2;
    for (let n = 0; n < 256; n += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
      for (let j = 0; j < 32; j++) {
        let l1 = L[n + j]!, l2 = L[n + j + 32]!;
        if (l1 > 15) {
          l1 -= 16;
          out[qh + j] = out[qh + j]! | m1;
        }
        if (l2 > 15) {
          l2 -= 16;
          out[qh + j] = out[qh + j]! | m2;
        }
        out[ql + j] = l1 | (l2 << 4);
      }
    }
  }
}

const L6 = new Int8Array(256);
const scales6 = new Float32Array(16);

export function quantizeQ6_K(x: Float32Array, out: Uint8Array, blocks: number): void {
  for (let b = 0; b < blocks; b++) {
    const xo = b * 256, p = b * 210;
    let maxScale = 0, maxAbsScale = 0;
    for (let ib = 0; ib < 16; ib++) {
      const scale = makeQx(16, 32, x, xo + 16 * ib, L6, 16 * ib);
      scales6[ib] = scale;
      if (Math.abs(scale) > maxAbsScale) {
        maxAbsScale = Math.abs(scale);
        maxScale = scale;
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) {
      out.fill(0, p, p + 210);
      continue;
    }
    const iscale = fr(-128 / maxScale);
    const dBits = toF16(fr(1 / iscale));
    putF16(out, p + 208, dBits);
    const sc = p + 192;
    for (let ib = 0; ib < 16; ib++) out[sc + ib] = Math.min(127, nearestInt(fr(iscale * scales6[ib]!))) & 0xff;
    for (let j = 0; j < 16; j++) {
      const d = fr(fromF16(dBits) * ((out[sc + j]! << 24) >> 24));
      if (d === 0) continue;
      for (let ii = 0; ii < 16; ii++) {
        L6[16 * j + ii] = Math.max(-32, Math.min(31, nearestInt(fr(x[xo + 16 * j + ii]! / d)))) + 32;
      }
    }
    let ql = p, qh = p + 128;
    for (let j = 0; j < 256; j += 128, ql += 64, qh += 32) {
      for (let l = 0; l < 32; l++) {
        const a = L6[j + l]!, c = L6[j + l + 32]!, e = L6[j + l + 64]!, g = L6[j + l + 96]!;
        out[ql + l] = (a & 0x0f) | ((e & 0x0f) << 4);
        out[ql + l + 32] = (c & 0x0f) | ((g & 0x0f) << 4);
        out[qh + l] = (a >> 4) | ((c >> 4) << 2) | ((e >> 4) << 4) | ((g >> 4) << 6);
      }
    }
  }
}
