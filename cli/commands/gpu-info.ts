/**
 * `llama-ts gpu-info`: the WebGPU adapter Dawn picks (name, kind, whether it
 * is a software fallback), how f16 weights will be read, the device features
 * and the limits we raised. `--json` prints one JSON object instead.
 */
import { defineCommand } from "../args.js";
import { UsageError } from "../cli-error.js";

export const command = defineCommand({
  summary: "show the WebGPU adapter (Dawn), its features, limits and the f16 mode the backend will use",
  flags: {
    json: { type: "boolean", help: "print one JSON object instead of the table" },
    f16: { type: "string", arg: "native|packed", shownDefault: "native when the adapter has shader-f16", help: "how f16 weights are read in shaders" },
  },
  async run(flags) {
    const f16 = flags.f16;
    if (f16 !== undefined && f16 !== "native" && f16 !== "packed") throw new UsageError(`--f16: expected native or packed, got "${f16}"`);
    const { createWebGpuBackend, classifyAdapter } = await import("../../gpu/index.js");
    const be = await createWebGpuBackend({ f16 });
    try {
      const info = {
        adapter: be.adapter,
        kind: classifyAdapter(be.adapter),
        f16Mode: be.f16Mode,
        features: be.features,
        limits: be.limits,
      };
      if (flags.json) {
        process.stdout.write(JSON.stringify(info, null, 2) + "\n");
        return 0;
      }
      const a = info.adapter;
      const lines = [
        `adapter      ${a.description || a.device}`,
        `vendor       ${a.vendor}  architecture ${a.architecture}  device ${a.device}`,
        `kind         ${info.kind}${a.isFallbackAdapter ? " (Dawn marks it a fallback adapter: a CPU-type device)" : ""}`,
        `subgroups    ${a.subgroupMinSize}..${a.subgroupMaxSize}`,
        `f16 weights  ${info.f16Mode === "native" ? "native (shader-f16)" : "packed in u32, unpacked in the shader"}`,
        `features     ${info.features.join(", ")}`,
        "limits",
        ...Object.entries(info.limits).map(([k, v]) => `  ${k.padEnd(44)} ${v}`),
      ];
      process.stdout.write(lines.join("\n") + "\n");
      return 0;
    } finally {
      be.dispose();
    }
  },
});
