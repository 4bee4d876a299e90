/**
 * Interrupt requests, counted in memory the main thread shares with the control
 * worker. The worker counts a request before it raises SIGINT, so the main
 * thread can see a request even when the signal itself is lost: one that lands
 * while a cell is still compiling waits in libuv, and vm's breakOnSigint swaps
 * the process's SIGINT listeners out as the cell's run begins, dropping it. A
 * cell compares the count at its first statement (inside the run that
 * breakOnSigint guards) with the count when its execution began.
 */
export class InterruptRequests {
  /** Passed to the control worker in its workerData (shared, not copied). */
  readonly buffer: SharedArrayBuffer;
  private readonly counter: Int32Array;

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(4)) {
    this.buffer = buffer;
    this.counter = new Int32Array(buffer);
  }

  count(): number {
    return Atomics.load(this.counter, 0);
  }

  /** Counts one request; call it before raising SIGINT. */
  add(): void {
    Atomics.add(this.counter, 0, 1);
  }
}
