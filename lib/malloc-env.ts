/**
 * glibc malloc settings for a process that makes many large typed arrays:
 * a training step on the CPU allocates ~100 MB of activations and gradients
 * in arrays of a few MB each. By default glibc serves such blocks with mmap
 * (its threshold starts at 128 KiB) and trims freed memory back to the OS,
 * so every new array lands on fresh pages and its first write faults them
 * in: 0.5–1 GB/s on this project's VMs, against ~8 GB/s into memory the
 * process already holds (a 2.8 MB array, `new Float32Array` then `set`).
 * With blocks up to 32 MiB (glibc's maximum) taken from the heap and up to
 * 1 GiB of freed memory kept, a step's arrays reuse the previous step's
 * pages: about 10% of a DPO step (bench/train-step-bench.ts). The price is
 * that the process keeps its peak memory until it exits.
 *
 * glibc reads these only when the process starts: the CLI runs its training
 * commands again with them set (bin/llama-ts.js), and the Jupyter kernelspec
 * starts the kernel with them (kernel/kernelspec.ts).
 */
export const MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(32 * 2 ** 20),
  MALLOC_TRIM_THRESHOLD_: String(2 ** 30),
};

/** Whether this process started with every MALLOC_ENV variable set (to any value: the user's choice stands). */
export function mallocEnvSet(env: NodeJS.ProcessEnv = process.env): boolean {
  return Object.keys(MALLOC_ENV).every((k) => env[k] !== undefined);
}
