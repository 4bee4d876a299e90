/**
 * The adapter's device-memory bandwidth as a device-to-device buffer copy
 * measures it (what the GB/s of a bandwidth-bound decode is compared with):
 * `reps` copyBufferToBuffer of `bytes` in one submit, timed to
 * onSubmittedWorkDone after a warm-up copy. Reported as bytes read + bytes
 * written per second, as CUDA's bandwidthTest and torch's `copy_` baselines
 * (bench/gpu-hf-baseline.py) count a copy.
 */
export async function copyBandwidthGBs(device: GPUDevice, bytes = 256 * 1024 * 1024, reps = 8): Promise<{ gbs: number; bytes: number }> {
  const size = Math.min(bytes, Math.floor(device.limits.maxBufferSize / 4) * 4);
  const src = device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  const dst = device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  try {
    const copies = async (n: number) => {
      const enc = device.createCommandEncoder();
      for (let i = 0; i < n; i++) enc.copyBufferToBuffer(src, 0, dst, 0, size);
      const t = performance.now();
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
      return (performance.now() - t) / 1000;
    };
    await copies(1); // first touch of both buffers
    const s = await copies(reps);
    return { gbs: (2 * size * reps) / s / 1e9, bytes: size };
  } finally {
    src.destroy();
    dst.destroy();
  }
}
