// The float64 kernels that keep JavaScript's bits: exp_f64 is Math.exp bit for bit (fdlibm's
// algorithm, as V8 runs it), so is exp_f64x2 on each of its two lanes, and the softmax statistics of rows on the wasm kernels (DPO's sequence
// log-probs) equal jsSoftmaxRows' exactly, statistics and probabilities, on one thread and split
// over the worker threads.
import { describe, it, expect, afterAll } from "vitest";
import { WasmLinearEngine } from "../lib/backend/cpu/wasm-engine.js";
import { kernelModule, type KernelExports } from "../lib/backend/cpu/wasm-kernels.js";
import { wasm } from "../lib/backend/cpu/wasm-api.js";
import { jsSoftmaxRows } from "../lib/autograd/loss.js";
import { Code, I32, assembleModule } from "../lib/backend/cpu/wasm-asm.js";
import { expF64Fn, expF64x2Fn } from "../lib/backend/cpu/wasm-exp.js";
import { values } from "./tape-helpers.js";

const engines: WasmLinearEngine[] = [];
afterAll(() => engines.forEach((e) => e.dispose()));

const bits = (a: Float32Array | Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe("exp_f64 = Math.exp, bit for bit", () => {
  it("edge cases and 3 million arguments across the range a softmax and beyond use", () => {
    const module = kernelModule()!;
    const memory = new wasm!.Memory({ initial: 1, maximum: 65536, shared: true });
    const exp = (new wasm!.Instance(module, { env: { memory } }).exports as unknown as KernelExports).exp_f64;
    const edges = [0, -0, 1, -1, Math.E, NaN, Infinity, -Infinity, 709.78, 709.79, -745.13, -745.14, -708.5, -720, 1e-300, -1e-300,
      2 ** -28, -(2 ** -28), 2 ** -29, 0.3465, 0.3466, 1.0397, 1.0398, -0.3466, -1.0398, 710, -1000, 1000, -87.3, 88.7];
    let seed = 12345;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const args = [...edges];
    for (let i = 0; i < 1e6; i++) args.push((rand() - 0.5) * 1500);
    for (let i = 0; i < 1e6; i++) args.push(Math.fround((rand() - 0.95) * 40)); // softmax arguments: score − max ≤ 0
    for (let i = 0; i < 1e6; i++) args.push((rand() - 0.5) * 3); // both reduction branches near ±ln2
    const wrong = args.filter((x) => !Object.is(exp(x), Math.exp(x)));
    expect(wrong.slice(0, 5)).toEqual([]);
  });
});

describe("exp_f64x2 = Math.exp on both lanes, bit for bit", () => {
  it("every pair of edge cases, the branch boundaries swept, and 3 million random pairs", () => {
    // exp_f64, exp_f64x2 and a caller that applies exp_f64x2 to the two doubles at p, in a module of their own
    const harness = new Code(1);
    harness.get(0).get(0).v128load().call(1).v128store();
    const module = new wasm!.Module(assembleModule([expF64Fn(), expF64x2Fn(0), { name: "exp_pair", params: [I32], results: [], code: harness }], 1, 1));
    const memory = new wasm!.Memory({ initial: 1, maximum: 1, shared: true });
    const expPair = new wasm!.Instance(module, { env: { memory } }).exports.exp_pair as (p: number) => void;
    const pair = new Float64Array(memory.buffer, 0, 2);
    const wrong: number[] = [];
    const check = (a: number, b: number) => {
      pair[0] = a; pair[1] = b;
      expPair(0);
      if (!Object.is(pair[0], Math.exp(a))) wrong.push(a);
      if (!Object.is(pair[1], Math.exp(b))) wrong.push(b);
    };
    // the lanes exp_f64 takes (|x| ≥ 704, NaN, ±Infinity, 1) beside ordinary ones, and each branch's edges
    const edges = [0, -0, 1, -1, NaN, Infinity, -Infinity, 703.9, -703.9, 704, -704, 709.78, -745.14, 1e-300, -1e-300,
      2 ** -28, -(2 ** -28), 2 ** -29, 0.34657354, 0.3465736, -0.34657354, -0.3465736, 1.0397207708399179, -1.0397207708399179];
    for (const a of edges) for (const b of edges) check(a, b);
    for (const edge of [0.34657359027997264, 1.0397207708399179]) for (let i = -5000; i < 5000; i++) check(edge + i * 1e-12, -edge - i * 1e-12);
    let seed = 7;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < 1e6; i++) check((rand() - 0.5) * 1400, (rand() - 0.5) * 1400);
    for (let i = 0; i < 1e6; i++) check(Math.fround((rand() - 0.95) * 40), Math.fround((rand() - 0.95) * 40));
    for (let i = 0; i < 1e6; i++) check((rand() - 0.5) * 3, (rand() - 0.5) * 0.8);
    expect(wrong.slice(0, 5)).toEqual([]);
  });
});

describe("softmax statistics of rows on the wasm kernels = jsSoftmaxRows, bit for bit", () => {
  for (const [label, N, V, amp] of [["a few rows", 7, 2048, 4], ["enough rows for the worker threads", 600, 2048, 12], ["V not a multiple of 4", 9, 37, 30]] as const) {
    it(label, async () => {
      const engine = (await WasmLinearEngine.create(3))!;
      engines.push(engine);
      const x = values(N * V, N + V, amp);
      x.fill(0.25, 2 * V, 3 * V); // a flat row: every token the argmax, the first one wins
      x[V + 5] = 90; // a row with one dominant logit
      // every other row, then row 0 last: the listed rows in any order
      const rows = Int32Array.from([...Array.from({ length: N }, (_, r) => r).filter((r) => r % 2 === 1 || r === 2), 0]);
      const probs = new Float32Array(N * V).fill(-1), jsProbs = new Float32Array(N * V).fill(-1);
      const stats = engine.softmaxRows(x, V, rows, probs)!;
      const want = jsSoftmaxRows(x, V, rows, jsProbs);
      expect(bits(stats).equals(bits(want))).toBe(true);
      expect(bits(probs).equals(bits(jsProbs))).toBe(true); // rows not listed stay untouched (−1)
      expect(stats[5 * rows.indexOf(2) + 1]).toBe(0);
      expect(bits(engine.softmaxRows(x, V, rows, undefined)!).equals(bits(want))).toBe(true);
    });
  }
});
