/**
 * WGSL declarations and loaders for weight tensors in every storage format:
 *   f32                 array<f32> / array<vec4<f32>>
 *   f16, native mode    array<f16> / array<vec4<f16>>   (needs `enable f16;`)
 *   f16, packed mode    array<u32> / array<vec2<u32>>   two halves per word, widened with unpack2x16float
 *   bf16                array<u32> / array<vec2<u32>>   two bf16 per word, widened by a 16-bit shift
 * The packed layouts are byte-identical to the f16/bf16 data on disk, so an
 * upload is the same in both modes; only the shader's view differs.
 *
 * Each declaration defines `NAME_at(i) -> f32` (element i) and, when `vec4` is
 * set, `NAME_at4(j) -> vec4<f32>` (elements 4j..4j+3; needs a 4-aligned row length).
 */
import type { GpuDType } from "../buffers.js";
import type { F16Mode } from "../device.js";

export type WeightFormat = "f32" | "f16" | "f16packed" | "bf16";

export function weightFormat(dtype: GpuDType, f16Mode: F16Mode): WeightFormat {
  if (dtype === "f32") return "f32";
  if (dtype === "bf16") return "bf16";
  if (dtype === "f16") return f16Mode === "native" ? "f16" : "f16packed";
  throw new Error(`weightFormat: ${dtype} is not a weight dtype`);
}

/** `enable f16;` when the format needs it (must be the first line of a shader). */
export function enables(...formats: WeightFormat[]): string {
  return formats.includes("f16") ? "enable f16;\n" : "";
}

/** A read-only storage binding named NAME plus its element loaders. */
export function weightDecl(name: string, binding: number, format: WeightFormat, vec4: boolean): string {
  const decl = (type: string) => `@group(0) @binding(${binding}) var<storage, read> ${name}: array<${type}>;\n`;
  switch (format) {
    case "f32":
      return vec4
        ? decl("vec4<f32>") +
            `fn ${name}_at4(j: u32) -> vec4<f32> { return ${name}[j]; }\n` +
            `fn ${name}_at(i: u32) -> f32 { return ${name}[i >> 2u][i & 3u]; }\n`
        : decl("f32") + `fn ${name}_at(i: u32) -> f32 { return ${name}[i]; }\n`;
    case "f16":
      return vec4
        ? decl("vec4<f16>") +
            `fn ${name}_at4(j: u32) -> vec4<f32> { return vec4<f32>(${name}[j]); }\n` +
            `fn ${name}_at(i: u32) -> f32 { return f32(${name}[i >> 2u][i & 3u]); }\n`
        : decl("f16") + `fn ${name}_at(i: u32) -> f32 { return f32(${name}[i]); }\n`;
    case "f16packed":
      return vec4
        ? decl("vec2<u32>") +
            `fn ${name}_at4(j: u32) -> vec4<f32> { let w = ${name}[j]; return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)); }\n` +
            `fn ${name}_at(i: u32) -> f32 { return unpack2x16float(${name}[i >> 2u][(i >> 1u) & 1u])[i & 1u]; }\n`
        : decl("u32") + `fn ${name}_at(i: u32) -> f32 { return unpack2x16float(${name}[i >> 1u])[i & 1u]; }\n`;
    case "bf16":
      return vec4
        ? decl("vec2<u32>") +
            `fn ${name}_at4(j: u32) -> vec4<f32> { let w = ${name}[j];\n` +
            `  return bitcast<vec4<f32>>(vec4<u32>(w.x << 16u, w.x & 0xffff0000u, w.y << 16u, w.y & 0xffff0000u)); }\n` +
            `fn ${name}_at(i: u32) -> f32 { let w = ${name}[i >> 2u][(i >> 1u) & 1u];\n` +
            `  return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u)); }\n`
        : decl("u32") +
            `fn ${name}_at(i: u32) -> f32 { let w = ${name}[i >> 1u];\n` +
            `  return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u)); }\n`;
  }
}
