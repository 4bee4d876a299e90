/**
 * The `llama-ts` package entry: the library (lib/) with the WebGPU backend
 * registered, so `device: "webgpu"` works for anyone who imports "llama-ts".
 * Registering is cheap: Dawn loads on the first webgpu backend, not here.
 * (lib/ cannot do this itself: it never imports gpu/.)
 */
import "./gpu/register.js";

export * from "./lib/index.js";
