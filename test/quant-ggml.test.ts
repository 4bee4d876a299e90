/**
 * Our quantizers against llama.cpp's: the bytes `ggml_quantize_chunk` (in
 * node-llama-cpp's libggml-base.so, no importance matrix) wrote for seeded
 * random and adversarial rows (scripts/fixtures/make_ggml_quant.py) must be
 * reproduced exactly, block by block, and dequantize through our GGUF reader
 * to values close to the input.
 */
import { describe, it, expect } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { dequantize } from "../lib/io/gguf-dequant.js";
import { GGML_BLOCK, GgmlType } from "../lib/io/gguf-types.js";
import { quantizeRows, type QuantizedType } from "../lib/quant/quantize.js";
import { nearestInt, roundf } from "../lib/quant/ggml-float.js";
import { mulberry32 } from "../lib/mulberry32.js";
import { createHash } from "node:crypto";

const FIX = "test/fixtures/ggml-quant";
const meta = JSON.parse(fs.readFileSync(path.join(FIX, "rows.json"), "utf8")) as { n_per_row: number; rows: string[]; types: Record<string, number> };
const rowsBuf = fs.readFileSync(path.join(FIX, "rows.f32"));
const rows = new Float32Array(rowsBuf.buffer.slice(rowsBuf.byteOffset, rowsBuf.byteOffset + rowsBuf.byteLength));
const N = meta.n_per_row;

/** The first differing block as "row NAME block B", or undefined when equal. */
function firstDiff(type: GgmlType, got: Uint8Array, want: Uint8Array): string | undefined {
  const { elems, bytes } = GGML_BLOCK[type]!;
  const perRow = (N / elems) * bytes;
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) {
      const row = Math.floor(i / perRow);
      const block = Math.floor((i % perRow) / bytes);
      return `row ${meta.rows[row]} block ${block} byte ${(i % perRow) % bytes}: ${got[i]} vs ${want[i]}`;
    }
  }
  return got.length === want.length ? undefined : `length ${got.length} vs ${want.length}`;
}

describe("quantizers are bit-identical to ggml_quantize_chunk", () => {
  for (const [name, id] of Object.entries(meta.types)) {
    it(`${name}: ${meta.rows.length} rows of ${N}`, () => {
      const want = new Uint8Array(fs.readFileSync(path.join(FIX, `${name}.bin`)));
      const got = quantizeRows(id as QuantizedType, rows, N);
      expect(firstDiff(id, got, want)).toBeUndefined();
    });
  }

  // 512 more rows, regenerated here with the script's arithmetic (float64 ops, then float32): only hashes are stored.
  const gen = JSON.parse(fs.readFileSync(path.join(FIX, "generated.json"), "utf8")) as { seed: number; rows: number; n_per_row: number; scales: number[]; sha256: Record<string, string> };
  function generatedRows(): Float32Array {
    const rnd = mulberry32(gen.seed);
    const n = gen.n_per_row;
    const out = new Float32Array(gen.rows * n);
    for (let r = 0; r < gen.rows; r++) {
      const scale = gen.scales[r % gen.scales.length]!;
      const offset = r % 5 === 0 ? 0.5 * scale : 0;
      for (let j = 0; j < n; j++) {
        let v = r % 13 === 0 ? ((Math.floor(rnd() * 16) - 8) * scale) / 8 : (rnd() + rnd() + rnd() - 1.5) * scale + offset;
        if (r % 11 === 0 && j === (7 * r) % n) v *= 50;
        out[r * n + j] = v;
      }
    }
    return out;
  }
  it(`every type on ${gen.rows} generated rows (sha256 of ggml's bytes)`, () => {
    const x = generatedRows();
    for (const [name, id] of Object.entries(meta.types)) {
      const got = createHash("sha256").update(quantizeRows(id as QuantizedType, x, gen.n_per_row)).digest("hex");
      expect(got, name).toBe(gen.sha256[name]);
    }
  });

  it("the golden rows include every adversarial case", () => {
    for (const r of ["zeros", "constant-pos", "outlier-huge", "tiny-1e-30", "subnormal", "negative-only", "extreme-range", "loud-subblock"]) {
      expect(meta.rows).toContain(r);
    }
  });
});

describe("dequantize(quantize(x)) round-trips through the GGUF reader", () => {
  // Worst error per element relative to the row's largest |x|, for ordinary (gaussian) rows.
  // Q4_0/Q5_0 put the block's extreme on −8/−16, so the other side may clip by one step (d = amax/8, amax/16).
  const bound: Record<string, number> = { q8_0: 0.005, q4_0: 0.13, q4_1: 0.07, q5_0: 0.07, q5_1: 0.035, q4_K: 0.07, q5_K: 0.035, q6_K: 0.02 };
  for (const [name, id] of Object.entries(meta.types)) {
    it(name, () => {
      const gaussRows = meta.rows.filter((r) => r.startsWith("gauss-")).length;
      const x = rows.subarray(0, gaussRows * N);
      const q = quantizeRows(id as QuantizedType, x, N);
      const y = dequantize(q, id, [gaussRows, N], name).toFloat32();
      for (let r = 0; r < gaussRows; r++) {
        let amax = 0, err = 0;
        for (let j = 0; j < N; j++) {
          amax = Math.max(amax, Math.abs(x[r * N + j]!));
          err = Math.max(err, Math.abs(y[r * N + j]! - x[r * N + j]!));
        }
        expect(err / amax, `${name} row ${r}`).toBeLessThan(bound[name]!);
      }
    });
  }
});

describe("ggml float helpers", () => {
  it("nearest_int rounds half to even, as the 1.5·2^23 trick does", () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999998, 7.5].map(nearestInt)).toEqual([0, 2, 2, 0, -2, 2, 8]);
  });
  it("roundf rounds half away from zero", () => {
    expect([0.5, 1.5, 2.5, -0.5, -2.5, 0.49999997].map(roundf)).toEqual([1, 2, 3, -1, -3, 0]);
  });
});
