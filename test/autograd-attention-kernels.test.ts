// Attention's backward on the CPU tape's wasm kernel (attn_bwd_group, one call per batch row and
// kv head) against the JavaScript backward (checked by finite differences in autograd-ops.test.ts):
// causal rows, left padding, a row that sees no key, GQA, a KV prefix, key counts that are not a
// multiple of 4, groups split over the worker threads, and a head size the kernel refuses (its
// JavaScript fallback).
import { describe, it, expect, afterAll } from "vitest";
import { Var, backward } from "../lib/autograd/var.js";
import { attention } from "../lib/autograd/attention-sdpa.js";
import { TapeBackend } from "../lib/autograd/tape-backend.js";
import { values, maxRel } from "./tape-helpers.js";

const backends: { dispose(): void }[] = [];
afterAll(() => backends.forEach((b) => b.dispose()));

interface Case { B: number; n: number; kh: number; T: number; P: number; D: number; mask?: number[] }

// P: keys before the queries (a KV prefix). Row 1 of the first case is left-padded by 3, so with
// queryOffset 0 its first query sees no key at all (uniform weights, no gradient to q or k).
const CASES: Case[] = [
  { B: 2, n: 4, kh: 2, T: 7, P: 0, D: 32, mask: [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1] },
  { B: 1, n: 8, kh: 4, T: 63, P: 0, D: 32 },
  // Enough work for the worker threads: the groups are split over them.
  { B: 3, n: 8, kh: 4, T: 41, P: 0, D: 32, mask: [...new Array<number>(41).fill(1), ...new Array<number>(5).fill(0), ...new Array<number>(36).fill(1), ...new Array<number>(41).fill(1)] },
  { B: 1, n: 2, kh: 1, T: 5, P: 6, D: 16 },
  { B: 2, n: 2, kh: 2, T: 4, P: 0, D: 12, mask: [0, 1, 1, 1, 1, 1, 1, 1] }, // D not a multiple of 16: the fallback
];

describe("attention backward on the wasm kernel = the JavaScript backward", () => {
  for (const c of CASES) {
    const S = c.P + c.T;
    it(`B ${c.B}, ${c.n} query / ${c.kh} kv heads, T ${c.T}, S ${S}, D ${c.D}${c.mask ? ", padded" : ""}: dq, dk, dv within 1e-5`, async () => {
      const be = await TapeBackend.create();
      backends.push(be);
      const q = values(c.B * c.n * c.T * c.D, 1 + c.T), k = values(c.B * c.kh * S * c.D, 2 + S), v = values(c.B * c.kh * S * c.D, 3 + c.D);
      const g = values(c.B * c.T * c.n * c.D, 4);
      const mask = { queryOffset: c.P, keyMask: c.mask ? Uint8Array.from(c.mask) : undefined };
      const run = (onTape: boolean) => {
        const qv = Var.param(q.slice(), [c.B, c.n, c.T, c.D]), kv = Var.param(k.slice(), [c.B, c.kh, S, c.D]), vv = Var.param(v.slice(), [c.B, c.kh, S, c.D]);
        const out = onTape
          ? be.varOf(be.readSync(be.attention(be.upload(be.asTensor(qv)), be.upload(be.asTensor(kv)), be.upload(be.asTensor(vv)), mask, { scale: 0.3 }).out))
          : attention(qv, kv, vv, mask, 0.3).out;
        backward(out, g);
        return [qv.grad!, kv.grad!, vv.grad!];
      };
      const wasm = run(true), js = run(false);
      for (let i = 0; i < 3; i++) expect(maxRel(wasm[i]!, js[i]!), ["dq", "dk", "dv"][i]).toBeLessThan(1e-5);
      if (c.mask?.[c.T] === 0) {
        // Row 1's first query sees no key: no gradient reaches its q.
        const row = (1 * c.n * c.T + 0) * c.D;
        expect(Array.from(wasm[0]!.subarray(row, row + c.D)).every((x) => x === 0)).toBe(true);
      }
    });
  }
});
