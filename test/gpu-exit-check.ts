/**
 * Spawned by test/gpu-device.test.ts: acquires the WebGPU backend, runs and
 * reads one op, disposes (or, with "no-dispose", leaves it to the backend's
 * beforeExit teardown; with "gc-after-dispose", forces a garbage collection
 * right after dispose(), where a GC that finalized Dawn's instance before its
 * device-lost event was delivered used to kill the process; "keep-device"
 * holds the GPUDevice to the end, which the count at exit must show), and
 * returns from the module. The process must then
 * exit by itself (nothing of Dawn's may keep node's event loop alive), and
 * when it exits no driver thread may still run: Dawn's instance must have
 * been finalized in order (gpu/teardown.ts) rather than during node's teardown.
 * On exit it prints the threads other than node's own ("threads at exit: none"
 * when all stopped) and how many of the Dawn objects the backend made (instance,
 * adapter, device, buffers, pipelines, bind groups) V8 has not finalized.
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
const objects = be.runtime.ctx.objects;
process.stdout.write(`Dawn objects with the device: ${objects.count}\n`);
const mode = process.argv[2] ?? "dispose";
const kept = mode === "keep-device" ? be.runtime.ctx.device : undefined;
process.on("exit", () => {
  // The backend itself stays reachable to the end (as a notebook's variable does): what it made
  // must be finalized all the same, so destroy() has to drop every Dawn object it holds.
  void be;
  void kept;
  process.stdout.write(`threads at exit: ${foreignThreads().join(" ") || "none"}\n`);
  process.stdout.write(`Dawn objects at exit: ${objects.count}\n`);
});
if (mode !== "no-dispose") be.dispose();
if (mode === "gc-after-dispose") {
  v8.setFlagsFromString("--expose-gc");
  (vm.runInNewContext("gc") as () => void)();
}
