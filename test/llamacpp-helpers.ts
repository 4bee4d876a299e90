/** How the llama.cpp differential tests load node-llama-cpp: the prebuilt CPU binary, never a source build, quiet. */
import { getLlama, type Llama } from "node-llama-cpp";

export function loadCpuLlama(): Promise<Llama> {
  return getLlama({ gpu: false, build: "never", progressLogs: false, logLevel: "error" as never });
}
