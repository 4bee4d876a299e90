/**
 * Memory settings for a process that trains on the CPU: a training step
 * allocates ~1 GB of activations and gradients per DPO step in typed arrays
 * of a few MB each, and two defaults made that slow. Both are read only when
 * the process starts, so the CLI runs its training commands again with them
 * (bin/llama-ts.js), the Jupyter kernelspec starts the kernel with them
 * (kernel/kernelspec.ts), and `npm run bench` its benchmarks.
 *
 * glibc malloc (MALLOC_ENV). By default glibc serves such blocks with mmap
 * (its threshold starts at 128 KiB) and trims freed memory back to the OS,
 * so every new array lands on fresh pages and its first write faults them
 * in: 0.5–1 GB/s on this project's VMs, against ~8 GB/s into memory the
 * process already holds (a 2.8 MB array, `new Float32Array` then `set`).
 * With blocks up to 32 MiB (glibc's maximum) taken from the heap and up to
 * 1 GiB of freed memory kept, a step's arrays reuse the previous step's
 * pages: about 10% of a DPO step (bench/train-step-bench.ts). The price is
 * that the process keeps its peak memory until it exits.
 *
 * V8's heap (HEAP_FLAGS). V8 starts a full mark-compact when the bytes held
 * by array buffers outgrow a limit it derives from the old generation's size,
 * which for this project's small JavaScript heaps (~10 MB) comes every few
 * dozen MB of arrays. A 512 MiB initial old space raises that limit: over
 * 9 DPO steps 25 full collections instead of 67, and ~25 ms (0.05 CPU-s) less
 * per step (bench/train-step-bench.ts, 3 alternating rounds: 554, 559, 559
 * against 527, 532, 533 ms). Node refuses heap sizes in NODE_OPTIONS, so it
 * is a command-line flag.
 */
export const MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(32 * 2 ** 20),
  MALLOC_TRIM_THRESHOLD_: String(2 ** 30),
};

export const HEAP_FLAGS: readonly string[] = ["--initial-old-space-size=512"];

/**
 * Whether this process started with the settings: every MALLOC_ENV variable set (to any value: the
 * user's choice stands) and a V8 old-space size on the command line (the user's, or HEAP_FLAGS').
 */
export function memorySettingsApplied(env: NodeJS.ProcessEnv = process.env, execArgv: readonly string[] = process.execArgv): boolean {
  return Object.keys(MALLOC_ENV).every((k) => env[k] !== undefined) && execArgv.some((a) => a.startsWith("--initial-old-space-size"));
}
