/**
 * Spawned by test/gpu-device.test.ts: acquires the WebGPU backend, runs and
 * reads one op, disposes (or, with "no-dispose", leaves it to the backend's
 * beforeExit teardown; with "gc-after-dispose", forces a garbage collection
 * right after dispose(), where a GC that finalized Dawn's instance before its
 * device-lost event was delivered used to kill the process), and returns from the module. The process must then
 * exit by itself (nothing of Dawn's may keep node's event loop alive), and
 * when it exits no driver thread may still run: Dawn's instance must have
 * been finalized in order (gpu/device.ts) rather than during node's teardown.
 * On exit it prints the threads other than node's own ("threads at exit: none" when all stopped).
 */
import * as fs from "node:fs";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { createWebGpuBackend } from "../gpu/index.js";
import { Tensor } from "../lib/tensor/tensor.js";

/** Names of this process's threads that node did not start (Linux; lavapipe's are llvmpipe-N and disk$N). */
function foreignThreads(): string[] {
  if (!fs.existsSync("/proc/self/task")) return [];
  return fs.readdirSync("/proc/self/task")
    .map((t) => { try { return fs.readFileSync(`/proc/self/task/${t}/comm`, "utf8").trim(); } catch { return "node"; } })
    .filter((n) => n !== "node" && !n.startsWith("node:") || /disk\$/.test(n));
}

const be = await createWebGpuBackend();
const x = be.upload(Tensor.from([1, 2, 3, 4], [1, 4]));
const y = await be.read(be.scale(x, 2));
process.stdout.write(`${Array.from(y.data).join(",")}\n`);
process.stdout.write(`threads with the device: ${foreignThreads().join(" ")}\n`);
process.on("exit", () => process.stdout.write(`threads at exit: ${foreignThreads().join(" ") || "none"}\n`));
const mode = process.argv[2] ?? "dispose";
if (mode !== "no-dispose") be.dispose();
if (mode === "gc-after-dispose") {
  v8.setFlagsFromString("--expose-gc");
  (vm.runInNewContext("gc") as () => void)();
}
