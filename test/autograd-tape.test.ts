/**
 * The generic backward sweep (lib/autograd/tape.ts) on a fake gradient
 * storage that counts every buffer: each buffer (seeds, sums, copies, what
 * nodes made) is released exactly once or handed back (never both), a buffer
 * shown to a node as not owned is never written afterwards, and each node is
 * dropped once.
 */
import { describe, expect, it } from "vitest";
import { sweep, type GradStore, type TapeGraph, type TapeOp } from "../lib/autograd/tape.js";
import { Var, backward, onBackwardEnd } from "../lib/autograd/var.js";
import * as ops from "../lib/autograd/ops.js";

class Buf {
  static made: Buf[] = [];
  released = 0;
  constructor(public values: number[]) {
    Buf.made.push(this);
  }
}

class Node {
  dropped = 0;
  retain = false;
  owned: boolean[] = []; // the `owned` flag of each backward call
  constructor(readonly name: string, public op: TapeOp<Node, Buf> | null, readonly requiresGrad = true) {}
}

/** Buffers shown to a node as not owned, with their values then (they must never change). */
let lentSnapshots: [Buf, number[]][] = [];

function node(name: string, inputs: Node[], backward: (g: Buf, owned: boolean) => (Buf | null)[]): Node {
  const n: Node = new Node(name, {
    inputs,
    backward: (g, owned) => {
      expect(g.released).toBe(0);
      n.owned.push(owned);
      if (!owned) lentSnapshots.push([g, [...g.values]]);
      return backward(g, owned);
    },
  });
  return n;
}
const add = (a: Node, b: Node) => node("add", [a, b], (g) => [g, g]);
const pass = (x: Node) => node("pass", [x], (g) => [g]);
/** Scales in place when it owns the gradient (as the CPU ops do). */
const scale = (x: Node, f: number) =>
  node("scale", [x], (g, owned) => {
    const dx = owned ? g : new Buf(g.values.map(() => 0));
    dx.values = g.values.map((v) => v * f);
    return [dx];
  });
/** Keeps the gradient it is shown (as the WebGPU read node does) and hands on a fresh copy. */
const keepRef = (x: Node) => node("keepRef", [x], (g) => [new Buf([...g.values])]);

function store(inPlace: boolean): GradStore<Buf> {
  return {
    sum: (a, b) => new Buf(a.values.map((v, i) => v + b.values[i]!)),
    addInPlace: inPlace ? (acc, g) => { acc.values = acc.values.map((v, i) => v + g.values[i]!); } : undefined,
    copy: (g) => new Buf([...g.values]),
    release: (g) => { g.released++; },
  };
}

const graph: TapeGraph<Node, Buf> = {
  op: (x) => x.op,
  retains: (x) => x.retain,
  drop: (x) => { x.dropped++; x.op = null; },
  check: (x, g) => { if (g.values.length !== 2) throw new Error(`bad gradient for ${x.name}`); },
};

/** p, q leaves; loss = keepRef(pass(add(add(a, a), q))) + b with a = 2p, b = a + a. */
function build() {
  const p = new Node("p", null), q = new Node("q", null), frozen = new Node("frozen", null, false);
  const a = scale(p, 2);
  const b = add(a, a);
  const c = add(b, q);
  const e = keepRef(pass(c));
  const loss = add(e, add(b, frozen));
  const order = [p, q, frozen, a, b, c, e.op!.inputs[0]!, e, loss.op!.inputs[1]!, loss];
  return { p, q, a, b, loss, order, all: [...order] };
}

function checkBuffers(out: Map<Node, Buf>): void {
  const handedBack = new Set(out.values());
  expect(handedBack.size).toBe(out.size); // each kept gradient is its own buffer
  for (const b of Buf.made) expect(b.released).toBe(handedBack.has(b) ? 0 : 1);
  for (const [b, values] of lentSnapshots) expect(b.values).toEqual(values);
}

describe("generic backward sweep", () => {
  for (const inPlace of [true, false]) {
    it(`accumulates, shares and releases every buffer once (${inPlace ? "host-like" : "GPU-like"} store)`, () => {
      Buf.made = [];
      lentSnapshots = [];
      const { p, q, b, loss, order, all } = build();
      b.retain = true;
      const pGrad = new Buf([10, 10]); // a grad from an earlier backward: the buffer this one adds into
      const out = sweep(graph, store(inPlace), order, [[p, pGrad], [loss, new Buf([1, 2])]]);
      // de = [1,2]; db = [1,2] + [1,2]; dq = [1,2]; da = 2·db; dp = 2·da + [10,10]
      expect(out.get(p)!.values).toEqual([18, 26]);
      expect(out.get(q)!.values).toEqual([1, 2]);
      expect(out.get(b)!.values).toEqual([2, 4]);
      expect(out.size).toBe(3);
      if (inPlace) expect(out.get(p)).toBe(pGrad);
      checkBuffers(out);
      for (const n of all) expect(n.dropped).toBe(1);
      expect(order.every((x) => x === undefined)).toBe(true);
    });
  }

  it("tells a node it owns its gradient only when nothing else holds it", () => {
    Buf.made = [];
    lentSnapshots = [];
    const p = new Node("p", null);
    const s1 = scale(p, 3), s2 = scale(s1, 2), s3 = scale(p, 5), both = add(s2, s3), loss = scale(both, 1);
    const out = sweep(graph, store(true), [p, s1, s2, s3, both, loss], [[loss, new Buf([1, 2])]]);
    expect(loss.owned).toEqual([true]); // the seed, handed over to the sweep
    expect(both.owned).toEqual([true]); // the same buffer, overwritten by loss's backward
    expect(s3.owned).toEqual([false]); // one buffer handed to both sides of the add…
    expect(s2.owned).toEqual([false]); // …stays read-only after s3 was shown it
    expect(s1.owned).toEqual([true]); // a fresh buffer only s1's slot holds
    expect(out.get(p)!.values).toEqual([11, 22]);
    checkBuffers(out);
  });

  it("releases what it held when a node's backward throws, and drops nothing twice", () => {
    Buf.made = [];
    lentSnapshots = [];
    const p = new Node("p", null);
    const bad = node("bad", [p], () => [new Buf([1, 2, 3])]);
    const loss = add(scale(p, 2), bad);
    expect(() => sweep(graph, store(true), [p, bad, loss.op!.inputs[0]!, loss], [[loss, new Buf([1, 2])]])).toThrow("bad gradient for p");
    for (const b of Buf.made) expect(b.released).toBeLessThanOrEqual(1);
    // p's accumulated gradient (from the scale) is released; the buffer the node made before throwing is the node's loss
    expect(Buf.made.filter((b) => b.released === 0 && b.values.length === 2)).toEqual([]);
  });

  it("on host Vars: leaf grads accumulate across calls, retainGrad keeps an intermediate's own array, hooks run once", () => {
    let ends = 0;
    onBackwardEnd(() => ends++);
    const p = Var.param(new Float32Array([1, 2]), [2]);
    const run = () => {
      const h = ops.scale(p, 3);
      h.retainGrad = true;
      backward(ops.scale(ops.add(h, h), 0.5), new Float32Array([1, -1]));
      return h;
    };
    const h1 = run();
    expect(Array.from(h1.grad!)).toEqual([1, -1]);
    expect(Array.from(p.grad!)).toEqual([3, -3]);
    const pGrad = p.grad!;
    const h2 = run();
    expect(p.grad).toBe(pGrad); // the earlier grad is the buffer the new one adds into
    expect(Array.from(p.grad!)).toEqual([6, -6]);
    expect(h2.grad).not.toBe(h1.grad);
    expect(h1.gradFn).toBeNull(); // the graph was consumed
    expect(ends).toBe(2);
  });
});
