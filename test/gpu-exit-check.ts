/**
 * Spawned by test/gpu-device.test.ts: acquires the WebGPU backend, runs and
 * reads one op, disposes, and returns from the module. The process must then
 * exit by itself (nothing of Dawn's may keep node's event loop alive).
 */
import { createWebGpuBackend } from "../gpu/index.js";
import { Tensor } from "../lib/tensor/tensor.js";

const be = await createWebGpuBackend();
const x = be.upload(Tensor.from([1, 2, 3, 4], [1, 4]));
const y = await be.read(be.scale(x, 2));
process.stdout.write(`${Array.from(y.data).join(",")}\n`);
if (process.argv[2] !== "no-dispose") be.dispose();
