/**
 * Quantizing speed, ours vs llama.cpp's `ggml_quantize_chunk` (node-llama-cpp's
 * libggml-base.so through python3 + ctypes) on the same float32 rows in the
 * same run, per type: CPU nanoseconds per weight, one thread, best of 3 (no assertions;
 * both produce the same bytes, test/quant-ggml.test.ts checks that). Then
 * `quantizeModel` on the default model for each --type, and on 1 vs all
 * threads for q4_k_m (wall seconds).
 *
 *   node --import tsx bench/quantize-bench.ts [--rows 4096]
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { mulberry32 } from "../lib/mulberry32.js";
import { GgmlType } from "../lib/io/gguf-types.js";
import { quantizeRows, type QuantizedType } from "../lib/quant/quantize.js";

const argv = process.argv.slice(2);
const ROWS = Number(argv[argv.indexOf("--rows") + 1] ?? 4096) || 4096;
const N = 256;
const TYPES: [string, QuantizedType][] = [
  ["q8_0", GgmlType.Q8_0], ["q4_0", GgmlType.Q4_0], ["q4_1", GgmlType.Q4_1], ["q5_0", GgmlType.Q5_0],
  ["q5_1", GgmlType.Q5_1], ["q4_K", GgmlType.Q4_K], ["q5_K", GgmlType.Q5_K], ["q6_K", GgmlType.Q6_K],
];
const LIB = path.resolve("node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so");

const cpuNs = (c: NodeJS.CpuUsage) => (c.user + c.system) * 1000;

function rows(): Float32Array {
  const rnd = mulberry32(11);
  const x = new Float32Array(ROWS * N);
  for (let i = 0; i < x.length; i++) x[i] = (rnd() + rnd() + rnd() - 1.5) * 0.05;
  return x;
}

/** ns per weight of ggml_quantize_chunk for each type (CPU time of the call), or undefined without python3/the library. */
function llamaCpp(file: string): Record<string, number> | undefined {
  if (!fs.existsSync(LIB)) return undefined;
  const py = `
import ctypes, json, sys, time
lib = ctypes.CDLL(${JSON.stringify(LIB)})
lib.ggml_row_size.restype = ctypes.c_size_t
lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
lib.ggml_quantize_chunk.restype = ctypes.c_size_t
lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
data = open(sys.argv[1], "rb").read()
src = ctypes.create_string_buffer(data, len(data))
rows, n = ${ROWS}, ${N}
out = {}
for name, t in ${JSON.stringify(TYPES)}:
    dst = ctypes.create_string_buffer(lib.ggml_row_size(t, n) * rows)
    best = float("inf")
    for rep in range(3):
        t0 = time.process_time()
        lib.ggml_quantize_chunk(t, src, dst, 0, rows, n, None)
        best = min(best, (time.process_time() - t0) * 1e9 / (rows * n))
    out[name] = best
print(json.dumps(out))
`;
  const r = spawnSync("python3", ["-c", py, file], { encoding: "utf8" });
  if (r.status !== 0) {
    process.stderr.write(`[quantize-bench] llama.cpp side skipped: ${r.stderr.trim().split("\n").pop() ?? r.error}\n`);
    return undefined;
  }
  return JSON.parse(r.stdout) as Record<string, number>;
}

async function main(): Promise<void> {
  const x = rows();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "quantize-bench-"));
  try {
    const file = path.join(work, "rows.f32");
    fs.writeFileSync(file, new Uint8Array(x.buffer));
    const theirs = llamaCpp(file);
    console.log(`machine: ${os.cpus()[0]?.model ?? "?"} × ${os.cpus().length}, load average ${os.loadavg()[0]!.toFixed(1)}; ${ROWS} rows of ${N}`);
    console.log("\n| type | ours ns/weight (CPU) | llama.cpp ns/weight (CPU) | ratio |\n| --- | --- | --- | --- |");
    for (const [name, t] of TYPES) {
      // Best of 3 (the first pays for the JIT).
      let ours = Infinity;
      for (let rep = 0; rep < 3; rep++) {
        const c0 = process.cpuUsage();
        quantizeRows(t, x, N);
        ours = Math.min(ours, cpuNs(process.cpuUsage(c0)) / x.length);
      }
      const ref = theirs?.[name];
      console.log(`| ${name} | ${ours.toFixed(1)} | ${ref === undefined ? "—" : ref.toFixed(1)} | ${ref === undefined ? "—" : `${(ours / ref).toFixed(1)}×`} |`);
    }
    // The whole default model, through the built package (worker threads need dist/).
    const dist = path.resolve("dist/lib/quant/quantize-model.js");
    if (!fs.existsSync(dist)) return;
    const { quantizeModel } = (await import(dist)) as typeof import("../lib/quant/quantize-model.js");
    console.log("\n| --type | threads | wall s | MiB |\n| --- | --- | --- | --- |");
    const cores = os.availableParallelism();
    for (const [type, threads] of [["q8_0", cores], ["q4_0", cores], ["q4_k", cores], ["q6_k", cores], ["q4_k_m", 1], ["q4_k_m", cores]] as const) {
      const out = path.join(work, `${type}.gguf`);
      const t0 = performance.now();
      await quantizeModel("models/tiny-stories", out, { type, threads });
      console.log(`| ${type} | ${threads} | ${((performance.now() - t0) / 1000).toFixed(2)} | ${(fs.statSync(out).size / 2 ** 20).toFixed(2)} |`);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

await main();
