/**
 * The backward sweep, written once for every gradient storage G (host arrays
 * in var.ts, GPU tensors in gpu/grad-tape.ts). The caller lists its graph in
 * a topological order; the sweep walks it backwards, turns each node's output
 * gradient into its inputs', sums what reaches a node from several uses,
 * drops each node once its backward ran (freeing the activations it saved)
 * and hands back the leaves' gradients. Buffers are reference counted: one
 * handed to two inputs (both sides of an add), or shown to a node that does
 * not own it (and may keep it to read), is never written again: a sum that
 * reaches it goes into the incoming buffer when that one is free, else into a
 * fresh one. A node may overwrite its gradient (`owned`) only when nothing
 * else holds it.
 */

/** One recorded op: the inputs it read and the backward from its output gradient to theirs (null: none). */
export interface TapeOp<N, G> {
  readonly inputs: readonly N[];
  backward(gOut: G, owned: boolean): readonly (G | null)[];
}

/** How the sweep reads a graph of nodes N. */
export interface TapeGraph<N extends { readonly requiresGrad: boolean }, G> {
  op(x: N): TapeOp<N, G> | null; // null: a leaf, whose gradient is handed back
  retains?(x: N): boolean; // hand back a non-leaf's gradient too (torch's `retain_grad`)
  drop(x: N): void; // x's backward ran (or never will): free what its op saved
  check?(x: N, g: G): void; // throws when g cannot be x's gradient
}

/** Gradient storage. `sum` makes a fresh buffer; without `addInPlace` every accumulation is a `sum`. */
export interface GradStore<G> {
  sum(a: G, b: G): G;
  addInPlace?(acc: G, g: G): void;
  copy(g: G): G;
  release(g: G): void;
}

/**
 * Backpropagates the `seeds` (buffers handed over to the sweep) through
 * `order`, which is consumed: entries are cleared as they are swept, so the
 * nodes can be collected. Returns the leaves' (and retained nodes')
 * gradients, each a buffer the caller alone now holds; every other gradient
 * buffer, and every buffer a node made, is released.
 */
export function sweep<N extends { readonly requiresGrad: boolean }, G extends object>(
  graph: TapeGraph<N, G>, store: GradStore<G>, order: (N | undefined)[], seeds: Iterable<readonly [N, G]>,
): Map<N, G> {
  const grads = new Map<N, G>();
  const refs = new Map<G, number>(); // holders of a buffer: gradient slots, and hand-outs not yet accumulated
  const lent = new WeakSet<G>(); // shown to a node as not owned: read-only from then on
  const hold = (g: G) => void refs.set(g, (refs.get(g) ?? 0) + 1);
  const unhold = (g: G) => {
    const n = refs.get(g)! - 1;
    if (n > 0) return void refs.set(g, n);
    refs.delete(g);
    store.release(g);
  };
  const exclusive = (g: G) => refs.get(g) === 1 && !lent.has(g);
  // `g` arrives with one reference held for `x`.
  const accumulate = (x: N, g: G) => {
    const acc = grads.get(x);
    if (acc === undefined) return void grads.set(x, g);
    if (store.addInPlace && exclusive(acc)) {
      store.addInPlace(acc, g);
      return unhold(g);
    }
    if (store.addInPlace && exclusive(g)) { // the other way round (a sum is the same either way)
      store.addInPlace(g, acc);
      grads.set(x, g);
      return unhold(acc);
    }
    const s = store.sum(acc, g);
    hold(s);
    grads.set(x, s);
    unhold(acc);
    unhold(g);
  };
  const out = new Map<N, G>();
  try {
    for (const [at, g] of seeds) {
      hold(g);
      accumulate(at, g);
    }
    for (let i = order.length - 1; i >= 0; i--) {
      const x = order[i]!;
      order[i] = undefined; // every use of x came later in the order: its gradient is complete
      const op = graph.op(x), gOut = grads.get(x);
      if (gOut !== undefined) {
        const keep = op === null || graph.retains?.(x) === true;
        if (op) {
          const owned = !keep && exclusive(gOut);
          if (!owned) lent.add(gOut);
          const ins = op.backward(gOut, owned);
          const handed = op.inputs.flatMap((inp, k) => (ins[k] && inp.requiresGrad ? [[inp, ins[k]!] as const] : []));
          for (const [inp, g] of handed) graph.check?.(inp, g);
          for (const [, g] of handed) hold(g); // all counted before any accumulation: a buffer given twice is shared
          for (const g of new Set(ins)) if (g && !refs.has(g)) store.release(g); // made but not handed on
          for (const [inp, g] of handed) accumulate(inp, g);
        }
        grads.delete(x);
        const mine = keep && exclusive(gOut);
        if (keep) out.set(x, mine ? gOut : store.copy(gOut)); // shared: the caller gets its own (an optimizer scales it in place)
        if (mine) refs.delete(gOut);
        else unhold(gOut);
      }
      graph.drop(x);
    }
    return out;
  } catch (e) {
    for (const g of out.values()) store.release(g);
    throw e;
  } finally {
    for (const g of grads.values()) unhold(g);
  }
}
