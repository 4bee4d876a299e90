/**
 * WebGPU kernels against plain TypeScript references (test/gpu-reference.ts)
 * on random shapes, odd sizes included, in both f16 modes (native shader-f16
 * and packed-in-u32, the H100 path) and with/without subgroup reductions.
 * Runs on Mesa lavapipe in CI: shapes are tiny.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWebGpuBackend, type WebGpuBackend } from "../gpu/index.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../lib/tensor/dtype.js";
import type { DeviceTensor } from "../lib/backend/backend.js";
import { randn, refAttention, refLinear, refRmsNorm, refSample, refSplitHeads, refTopK, relErr, rng } from "./gpu-reference.js";

type Mode = "native" | "packed";
const configs: { name: string; f16: Mode; subgroups: boolean }[] = [
  { name: "f16 native + subgroups", f16: "native", subgroups: true },
  { name: "f16 packed (H100 path), no subgroups", f16: "packed", subgroups: false },
];
const backends = new Map<string, WebGpuBackend>();

beforeAll(async () => {
  for (const c of configs) backends.set(c.name, await createWebGpuBackend({ f16: c.f16, subgroups: c.subgroups }));
});
afterAll(() => {
  for (const be of backends.values()) be.dispose();
});

async function f32(be: WebGpuBackend, t: DeviceTensor): Promise<Float32Array> {
  return (await be.read(t)).data as Float32Array;
}

/** A weight in the given dtype plus the float32 values the GPU must see (after rounding). */
function weight(values: Float32Array, shape: number[], dtype: "f32" | "f16" | "bf16"): { t: Tensor; exact: Float32Array } {
  if (dtype === "f32") return { t: new Tensor(values, shape, "f32"), exact: values };
  if (dtype === "f16") {
    const h = f32ToF16(values);
    return { t: new Tensor(h, shape, "f16"), exact: f16ToF32(h) };
  }
  const b = f32ToBf16(values);
  return { t: new Tensor(b, shape, "bf16"), exact: bf16ToF32(b) };
}

describe.each(configs)("WebGPU kernels ($name)", (cfg) => {
  const be = () => backends.get(cfg.name)!;

  it("reports the requested f16 mode", () => {
    expect(be().f16Mode).toBe(cfg.f16);
  });

  // [M, K, N]: decode rows (GEMV), odd K (scalar loads), N not a multiple of the 64-wide tile, M = 129 (tiled, ragged).
  const linearShapes: [number, number, number][] = [[1, 64, 96], [7, 37, 129], [3, 256, 515], [129, 64, 70], [9, 30, 1]];
  for (const dtype of ["f32", "f16", "bf16"] as const) {
    for (const [M, K, N] of linearShapes) {
      for (const kernel of ["gemv", "tiled"] as const) {
        it(`linear ${dtype} [${M}x${K}]·[${N}x${K}]ᵀ via ${kernel}${N === 70 ? " with bias" : ""}`, async () => {
          const r = rng(M * 1000 + K * 10 + N);
          const x = randn(r, M * K);
          const w = weight(randn(r, N * K, 0.5), [N, K], dtype);
          const b = N === 70 ? weight(randn(r, N), [N], dtype) : undefined;
          const y = be().linear(be().upload(new Tensor(x, [M, K])), be().upload(w.t), b && be().upload(b.t), { kernel });
          expect(y.shape).toEqual([M, N]);
          expect(relErr(await f32(be(), y), refLinear(x, w.exact, b?.exact, M, K, N))).toBeLessThan(1e-6);
        });
      }
    }
  }

  it("linear keeps leading dims [B, T, K] → [B, T, N] and linearMany matches linear", async () => {
    const r = rng(5);
    const x = randn(r, 2 * 3 * 16);
    const w1 = weight(randn(r, 24 * 16), [24, 16], "f16");
    const w2 = weight(randn(r, 8 * 16), [8, 16], "f32");
    const xs = be().upload(new Tensor(x, [2, 3, 16]));
    const [a, b] = be().linearMany(xs, [be().upload(w1.t), be().upload(w2.t)]);
    expect(a!.shape).toEqual([2, 3, 24]);
    expect(relErr(await f32(be(), a!), refLinear(x, w1.exact, undefined, 6, 16, 24))).toBeLessThan(1e-6);
    expect(relErr(await f32(be(), b!), refLinear(x, w2.exact, undefined, 6, 16, 8))).toBeLessThan(1e-6);
  });

  for (const dtype of ["f32", "f16", "bf16"] as const) {
    it(`rmsNorm with ${dtype} weight, odd and large rows`, async () => {
      for (const [R, H] of [[1, 7], [5, 64], [3, 300]] as const) {
        const r = rng(R * H);
        const x = randn(r, R * H, 3);
        const w = weight(randn(r, H), [H], dtype);
        const y = be().rmsNorm(be().upload(new Tensor(x, [R, H])), be().upload(w.t), 1e-6);
        expect(relErr(await f32(be(), y), refRmsNorm(x, w.exact, 1e-6, H))).toBeLessThan(1e-6);
      }
    });

    it(`embedding gather from a ${dtype} table with a vocab of 1001`, async () => {
      const r = rng(11);
      const V = 1001;
      const H = 12;
      const table = weight(randn(r, V * H), [V, H], dtype);
      const ids = Int32Array.from([0, 1000, 7, 7, 512, 3]);
      const y = be().embedding(be().upload(table.t), ids, 2, 3);
      expect(y.shape).toEqual([2, 3, H]);
      const want = new Float32Array(ids.length * H);
      ids.forEach((id, i) => want.set(table.exact.subarray(id * H, (id + 1) * H), i * H));
      expect(Array.from(await f32(be(), y))).toEqual(Array.from(want));
      expect(() => be().embedding(be().upload(table.t), Int32Array.from([1001]), 1, 1)).toThrow(/token id 1001 out of range/);
    });
  }

  it("add, scale and siluMul on 1000 elements", async () => {
    const r = rng(3);
    const a = randn(r, 1000, 4);
    const b = randn(r, 1000, 4);
    const A = be().upload(new Tensor(a, [10, 100]));
    const Bt = be().upload(new Tensor(b, [10, 100]));
    expect(relErr(await f32(be(), be().add(A, Bt)), a.map((v, i) => v + b[i]!))).toBeLessThan(1e-7);
    expect(relErr(await f32(be(), be().scale(A, -0.25)), a.map((v) => v * -0.25))).toBeLessThan(1e-7);
    const silu = a.map((g, i) => (g / (1 + Math.exp(-g))) * b[i]!);
    expect(relErr(await f32(be(), be().siluMul(A, Bt)), silu)).toBeLessThan(1e-6);
    expect(() => be().add(A, be().upload(new Tensor(a, [100, 10])))).toThrow(/differ/);
  });

  it("splitHeads with RoPE for every even head_dim 8..256, and mergeHeads inverts the plain split", async () => {
    for (let D = 8; D <= 256; D += 2) {
      const r = rng(D);
      const B = 2, T = 3, heads = 2;
      const x = randn(r, B * T * heads * D);
      const cos = randn(r, B * T * (D / 2));
      const sin = randn(r, B * T * (D / 2));
      const X = be().upload(new Tensor(x, [B, T, heads * D]));
      const y = be().splitHeads(X, heads, { cos, sin });
      expect(y.shape).toEqual([B, heads, T, D]);
      const err = relErr(await f32(be(), y), refSplitHeads(x, B, T, heads, D, cos, sin));
      if (!(err < 1e-6)) throw new Error(`head_dim ${D}: rope error ${err}`);
      if (D % 64 === 0) {
        const plain = be().splitHeads(X, heads);
        expect(Array.from(await f32(be(), be().mergeHeads(plain)))).toEqual(Array.from(x));
      }
    }
  });

  it("attention (flash and decode kernels) for every even head_dim 8..256, GQA 4:2, with weights", async () => {
    for (let D = 8; D <= 256; D += 2) {
      const r = rng(100 + D);
      const B = 1, n = 4, kh = 2, T = 3, S = 5;
      const q = randn(r, B * n * T * D), k = randn(r, B * kh * S * D), v = randn(r, B * kh * S * D);
      const ref = refAttention({ q, k, v, B, n, kh, T, S, D, scale: 1 / Math.sqrt(D), queryOffset: 2 });
      const Q = be().upload(new Tensor(q, [B, n, T, D]));
      const K = be().upload(new Tensor(k, [B, kh, S, D]));
      const V = be().upload(new Tensor(v, [B, kh, S, D]));
      for (const kernel of ["flash", "decode"] as const) {
        const res = be().attention(Q, K, V, { queryOffset: 2 }, { scale: 1 / Math.sqrt(D), returnWeights: D % 32 === 0, kernel });
        const err = relErr(await f32(be(), res.out), ref.out);
        if (!(err < 1e-5)) throw new Error(`head_dim ${D} ${kernel}: error ${err}`);
        if (res.weights) expect(relErr(await f32(be(), res.weights), ref.weights)).toBeLessThan(1e-5);
      }
    }
    // Compile-bound, not compute-bound: each head_dim is its own pair of pipelines (~250 in all), and
    // lavapipe compiles them on the CPU — 115 s with an empty Mesa shader cache on a loaded 2-core
    // machine, ~10 s warm. The budget covers the cold case (a fresh CI machine) with room.
  }, 600_000);

  // [B, n, kh, T, S, queryOffset, padded]: T = 1 / 7 / 129, MQA (kh = 1), long context (split-K), left padding.
  const attnCases: [number, number, number, number, number, number, boolean][] = [
    [1, 4, 1, 1, 1, 0, false],
    [2, 6, 2, 7, 7, 0, true],
    [1, 2, 1, 129, 129, 0, false],
    [2, 4, 1, 1, 600, 599, true],
    [1, 4, 2, 3, 700, 697, false],
    [2, 3, 3, 9, 20, 11, true],
  ];
  for (const [B, n, kh, T, S, off, padded] of attnCases) {
    it(`attention B=${B} heads=${n}/${kh} T=${T} S=${S} offset=${off}${padded ? " left-padded" : ""}`, async () => {
      const D = 16;
      const r = rng(B * 7 + n * 13 + T * 17 + S);
      const q = randn(r, B * n * T * D), k = randn(r, B * kh * S * D), v = randn(r, B * kh * S * D);
      let keyMask: Uint8Array | undefined;
      if (padded) {
        keyMask = new Uint8Array(B * S).fill(1);
        // Row 1 is left-padded so that its first query rows see no key at all (uniform rows).
        for (let j = 0; j < Math.min(S, off + 3); j++) keyMask[S + j] = 0;
      }
      const scale = 0.25;
      const ref = refAttention({ q, k, v, B, n, kh, T, S, D, scale, queryOffset: off, keyMask });
      const Q = be().upload(new Tensor(q, [B, n, T, D]));
      const K = be().upload(new Tensor(k, [B, kh, S, D]));
      const V = be().upload(new Tensor(v, [B, kh, S, D]));
      const kernels = T <= 9 ? (["flash", "decode"] as const) : (["flash"] as const);
      for (const kernel of kernels) {
        const res = be().attention(Q, K, V, { queryOffset: off, keyMask }, { scale, returnWeights: true, kernel });
        expect(res.out.shape).toEqual([B, T, n * D]);
        expect(relErr(await f32(be(), res.out), ref.out)).toBeLessThan(1e-5);
        expect(relErr(await f32(be(), res.weights!), ref.weights)).toBeLessThan(1e-5);
        expect(relErr(await f32(be(), be().attendWith(res.weights!, V)), ref.out)).toBeLessThan(1e-5);
      }
    });
  }

  it("kvAppend grows and appends in place; attention reads the strided cache; selectBatch reorders it", async () => {
    const r = rng(77);
    const B = 2, kh = 2, D = 8, n = 4;
    const chunks = [5, 1, 1, 20, 1];
    let kc: DeviceTensor | undefined;
    let vc: DeviceTensor | undefined;
    const allK: Float32Array[] = [];
    const allV: Float32Array[] = [];
    let S = 0;
    for (const T of chunks) {
      const k = randn(r, B * kh * T * D);
      const v = randn(r, B * kh * T * D);
      allK.push(k);
      allV.push(v);
      kc = be().kvAppend(kc, be().upload(new Tensor(k, [B, kh, T, D])));
      vc = be().kvAppend(vc, be().upload(new Tensor(v, [B, kh, T, D])));
      S += T;
      expect(kc.shape).toEqual([B, kh, S, D]);
    }
    // Dense reference [B, kh, S, D] from the chunks.
    const dense = (parts: Float32Array[]) => {
      const out = new Float32Array(B * kh * S * D);
      let p = 0;
      parts.forEach((part, c) => {
        const T = chunks[c]!;
        for (let bh = 0; bh < B * kh; bh++) out.set(part.subarray(bh * T * D, (bh + 1) * T * D), (bh * S + p) * D);
        p += T;
      });
      return out;
    };
    const K = dense(allK);
    const V = dense(allV);
    expect(Array.from(await f32(be(), kc!))).toEqual(Array.from(K));
    const q = randn(r, B * n * 1 * D);
    const ref = refAttention({ q, k: K, v: V, B, n, kh, T: 1, S, D, scale: 0.3, queryOffset: S - 1 });
    const res = be().attention(be().upload(new Tensor(q, [B, n, 1, D])), kc!, vc!, { queryOffset: S - 1 }, { scale: 0.3 });
    expect(relErr(await f32(be(), res.out), ref.out)).toBeLessThan(1e-5);
    const swapped = be().selectBatch(kc!, Int32Array.from([1, 0, 1]));
    expect(swapped.shape).toEqual([3, kh, S, D]);
    const got = await f32(be(), swapped);
    const row = B === 2 ? kh * S * D : 0;
    expect(Array.from(got.subarray(0, row))).toEqual(Array.from(K.subarray(row, 2 * row)));
    expect(Array.from(got.subarray(row, 2 * row))).toEqual(Array.from(K.subarray(0, row)));
    expect(() => be().read(kc!)).not.toThrow();
  });

  it("selectPositions picks per-row positions", async () => {
    const r = rng(9);
    const x = randn(r, 2 * 5 * 6);
    const y = be().selectPositions(be().upload(new Tensor(x, [2, 5, 6])), Int32Array.from([4, 0, 2, 2]), 2);
    expect(y.shape).toEqual([2, 2, 6]);
    const want = [4, 0, 7, 7].flatMap((row) => Array.from(x.subarray(row * 6, row * 6 + 6)));
    expect(Array.from(await f32(be(), y))).toEqual(want);
  });

  it("argmax, top-k and sampling on rows of 1001 logits (ties go to the lower index)", async () => {
    const r = rng(21);
    const R = 3, V = 1001;
    const logits = randn(r, R * V, 5);
    logits[V + 17] = 9;
    logits[V + 900] = 9; // tie in row 1
    const L = be().upload(new Tensor(logits, [R, 1, V]));
    const rows = Array.from({ length: R }, (_, i) => logits.subarray(i * V, (i + 1) * V));
    expect(Array.from(await be().argmax(L))).toEqual(rows.map((row) => refTopK(row, 1).indices[0]));
    expect((await be().argmax(L))[1]).toBe(17);
    const { values, indices } = await be().topK(L, 40);
    rows.forEach((row, i) => {
      const ref = refTopK(row, 40);
      expect(Array.from(indices.subarray(i * 40, (i + 1) * 40))).toEqual(ref.indices);
      expect(Array.from(values.subarray(i * 40, (i + 1) * 40))).toEqual(ref.values.map(Math.fround));
    });
    for (const opts of [
      { temperature: 1, topK: 50, topP: 1, minP: 0 },
      { temperature: 0.7, topK: 40, topP: 0.9, minP: 0 },
      { temperature: 1.3, topK: 256, topP: 0.95, minP: 0.05 },
    ]) {
      for (const u0 of [0, 0.1, 0.5, 0.93, 0.999]) {
        const uniforms = Float32Array.from({ length: R }, (_, i) => (u0 + i * 0.31) % 1);
        const ids = await be().sample(L, { ...opts, uniforms });
        rows.forEach((row, i) => {
          expect(ids[i], `row ${i} u ${uniforms[i]} ${JSON.stringify(opts)}`).toBe(refSample(row, { ...opts, u: uniforms[i]! }));
        });
      }
    }
  });
});
