/**
 * Counts what a WebGPU program asks of Dawn, from outside our code: wraps
 * Dawn's own `GPUComputePassEncoder.prototype.dispatchWorkgroups*`,
 * `GPUQueue.prototype.submit` and `GPUBuffer.prototype.getMappedRange` (the
 * classes npm `webgpu` exports in `globals`), so the numbers cannot come from
 * the executor's bookkeeping. Used by `npm run bench -- gpu` and its test.
 */
export interface DawnCounts {
  dispatches: number;
  submits: number;
  /** Bytes of every range handed to the host by getMappedRange. */
  mappedBytes: number;
}

export interface DawnCounter {
  snapshot(): DawnCounts;
  /** Puts Dawn's methods back. */
  uninstall(): void;
}

type Method = (this: unknown, ...args: unknown[]) => unknown;

export async function installDawnCounter(): Promise<DawnCounter> {
  const { globals } = (await import("webgpu")) as unknown as { globals: Record<string, { prototype: Record<string, Method> }> };
  const counts: DawnCounts = { dispatches: 0, submits: 0, mappedBytes: 0 };
  const restore: (() => void)[] = [];
  const wrap = (cls: string, name: string, count: (result: unknown) => void) => {
    const proto = globals[cls]!.prototype;
    const original = proto[name]!;
    proto[name] = function (this: unknown, ...args: unknown[]) {
      const result = original.apply(this, args);
      count(result);
      return result;
    };
    restore.push(() => (proto[name] = original));
  };
  wrap("GPUComputePassEncoder", "dispatchWorkgroups", () => counts.dispatches++);
  wrap("GPUComputePassEncoder", "dispatchWorkgroupsIndirect", () => counts.dispatches++);
  wrap("GPUQueue", "submit", () => counts.submits++);
  wrap("GPUBuffer", "getMappedRange", (r) => (counts.mappedBytes += (r as ArrayBuffer).byteLength));
  return {
    snapshot: () => ({ ...counts }),
    uninstall: () => restore.forEach((f) => f()),
  };
}

/**
 * Per decode token in the steady state of `run(n)` (a generate call making n
 * new tokens): the difference of two runs, n1 and n2 tokens, divided by
 * n2 − n1, so the prefill and the first token's setup cancel out.
 */
export async function perDecodeToken(counter: DawnCounter, run: (newTokens: number) => Promise<unknown>, n1: number, n2: number): Promise<DawnCounts> {
  const measure = async (n: number) => {
    const a = counter.snapshot();
    await run(n);
    const b = counter.snapshot();
    return { dispatches: b.dispatches - a.dispatches, submits: b.submits - a.submits, mappedBytes: b.mappedBytes - a.mappedBytes };
  };
  const c1 = await measure(n1);
  const c2 = await measure(n2);
  const d = n2 - n1;
  return { dispatches: (c2.dispatches - c1.dispatches) / d, submits: (c2.submits - c1.submits) / d, mappedBytes: (c2.mappedBytes - c1.mappedBytes) / d };
}
