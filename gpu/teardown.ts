/**
 * Dawn's objects are finalized before node starts to exit, never during its
 * exit: that is what makes a WebGPU program's exit deterministic.
 *
 * Why: Dawn's node binding frees its objects from the finalizers of their JS
 * wrappers. A wrapper still alive when node exits is finalized inside node's
 * environment teardown, after the `exit` event, in no defined order, while
 * Mesa's driver threads may still run and its static destructors follow.
 * The binding's event pump also keeps a raw pointer to the instance that the
 * `GPU` wrapper owns; finalizing that wrapper while an event is still to be
 * delivered frees memory the pump then locks (a forced GC in that window
 * crashed 10 of 10 runs: std::system_error "Owner died", SIGSEGV). So
 * `GpuContext.destroy()` waits until the device-lost event is delivered, and
 * then collects until every Dawn object it made has been finalized.
 *
 * How the finalization is observed: node runs a native addon's finalizers in
 * the event-loop turn after the garbage collection that found the wrappers
 * dead, and a FinalizationRegistry reports each wrapper after that. So a
 * count of live wrappers (each registered when made) reaching zero means
 * Dawn's destructors have run and its driver threads were joined.
 */
import * as v8 from "node:v8";
import * as vm from "node:vm";

/** Turns of the event loop (with a full GC every COLLECT_EVERY) that teardown waits for the last wrapper. */
const MAX_TURNS = 32;
const COLLECT_EVERY = 4;

/** The Dawn wrappers one device made that V8 has not yet finalized. */
export class DawnObjects {
  private live = 0;
  private readonly registry = new FinalizationRegistry<undefined>(() => {
    this.live--;
  });

  /** Counts `obj` until its wrapper is finalized; returns it. */
  track<T extends object>(obj: T): T {
    this.live++;
    this.registry.register(obj, undefined);
    return obj;
  }

  /** Wrappers made and not yet finalized. */
  get count(): number {
    return this.live;
  }

  /**
   * Collects garbage until every tracked wrapper is finalized (the caller has
   * dropped its references). Resolves with the number still alive: 0 unless
   * something outside the backend holds a Dawn object (its finalizer then
   * runs whenever V8 collects it, at the latest during node's exit).
   */
  async collect(): Promise<number> {
    for (let turn = 0; this.live > 0 && turn < MAX_TURNS; turn++) {
      if (turn % COLLECT_EVERY === 0) collectGarbage();
      await nextTurn();
    }
    // The registry reports a wrapper after node has run its finalizer; one more turn lets the
    // finalizer queue of that same collection drain before anyone relies on the result.
    await nextTurn();
    return this.live;
  }
}

/** A backend's device and buffers, destroyed in order by its destroy() (GpuRuntime). */
interface Destroyable {
  destroy(): void;
}

/** Backends not yet destroyed (weakly: a dropped backend may still be collected). */
const open = new Set<WeakRef<Destroyable>>();
/** Teardowns started and not yet finished. */
const pending = new Set<Promise<number>>();
/** Teardowns finished, and the Dawn objects they left alive (kept by code outside the backend). */
let finished = 0;
let leftAlive = 0;
let exitHookSet = false;

/**
 * Registers a backend, for releaseWebGpu() and for scripts that end without
 * disposing it; the backend hands the returned handle to forgetOpen() when destroyed.
 */
export function trackOpen<T extends Destroyable>(backend: T): WeakRef<T> {
  const ref = new WeakRef(backend);
  open.add(ref);
  if (!exitHookSet) {
    exitHookSet = true;
    // A script that never called dispose() still tears Dawn down in order before node exits
    // (the teardown's turns keep the loop alive; beforeExit then comes again, with nothing open).
    process.on("beforeExit", destroyOpen);
  }
  return ref;
}

export function forgetOpen(ref: WeakRef<Destroyable>): void {
  open.delete(ref);
}

function destroyOpen(): void {
  for (const r of [...open]) r.deref()?.destroy();
}

/** Registers a started teardown (GpuContext.destroy, resolving with the objects it left alive), for releaseWebGpu(). */
export function trackTeardown(done: Promise<number>): void {
  pending.add(done);
  const forget = () => void pending.delete(done);
  done.then((alive) => {
    finished++;
    leftAlive += alive;
    forget();
  }, forget);
}

/**
 * Destroys every WebGPU backend of this process and settles once Dawn's
 * objects are all finalized: what a program awaits before it ends (the CLI
 * and the kernel do), so that its exit never depends on node's teardown order.
 * Says how many devices were torn down in this process, and how many Dawn
 * objects those teardowns could not finalize because something still held
 * them (0 for the backend's own use).
 */
export async function releaseWebGpu(): Promise<{ teardowns: number; objectsLeftAlive: number }> {
  destroyOpen();
  while (pending.size > 0) await Promise.allSettled([...pending]);
  return { teardowns: finished, objectsLeftAlive: leftAlive };
}

export function nextTurn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * A full garbage collection now (V8's gc(), exposed at run time when node was
 * not started with --expose-gc); a no-op where V8 refuses.
 */
let forcedGc: (() => void) | null | undefined;
function collectGarbage(): void {
  if (forcedGc === undefined) {
    const existing = (globalThis as { gc?: () => void }).gc;
    try {
      if (!existing) v8.setFlagsFromString("--expose-gc");
      forcedGc = existing ?? (vm.runInNewContext("gc") as () => void);
    } catch {
      forcedGc = null;
    }
  }
  forcedGc?.();
}
