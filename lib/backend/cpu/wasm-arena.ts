/**
 * One WebAssembly memory of the wasm engine and what lives in it: its heap
 * (weights, KV caches), this thread's kernel instance over it, the f16 → f32
 * table the quantized kernels read block scales through, and the workspace a
 * call copies its inputs and outputs through. Kernels only see their own
 * memory, so a product's x, y and per-thread scratch sit in the workspace of
 * the memory that holds its weight.
 */
import { f16ToF32Table } from "../../tensor/dtype.js";
import { MAX_PAGES, type KernelExports } from "./wasm-kernels.js";
import { WasmHeap } from "./wasm-heap.js";
import { wasm, type WasmMemory, type WasmModule } from "./wasm-api.js";

/** The most bytes one memory can hold (wasm32 addresses). */
export const MEMORY_MAX_BYTES = MAX_PAGES * 65536;

export class WasmArena {
  private workspace = { ptr: 0, bytes: 0 };

  private constructor(
    /** Position in the engine's list: the memory index jobs name. */
    readonly index: number,
    readonly memory: WasmMemory,
    readonly heap: WasmHeap,
    readonly kernels: KernelExports,
    /** Address of the f16 → f32 table (256 KiB). */
    readonly table: number,
  ) {}

  /** A fresh memory with its table, or undefined when the runtime will not make one (address space, limits). */
  static create(module: WasmModule, index: number): WasmArena | undefined {
    let memory: WasmMemory;
    try {
      memory = new wasm!.Memory({ initial: 16, maximum: MAX_PAGES, shared: true });
    } catch {
      return undefined;
    }
    const kernels = new wasm!.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
    const heap = new WasmHeap(memory, 1024);
    const table = heap.tryAlloc(65536 * 4);
    if (table === undefined) return undefined;
    new Float32Array(memory.buffer, table, 65536).set(f16ToF32Table());
    return new WasmArena(index, memory, heap, kernels, table);
  }

  /** The memory's current buffer (growing the memory replaces it: take it after any allocation). */
  get buffer(): ArrayBufferLike {
    return this.memory.buffer;
  }

  /**
   * A workspace of at least `bytes` (reused between calls; it may grow past
   * the engine's data cap, up to 4 GiB), or undefined when the memory cannot
   * grow that far.
   */
  scratch(bytes: number): number | undefined {
    if (this.workspace.bytes >= bytes) return this.workspace.ptr;
    if (this.workspace.bytes) this.heap.release(this.workspace.ptr, this.workspace.bytes);
    const roomy = Math.max(bytes, Math.ceil(this.workspace.bytes * 1.5));
    this.workspace = { ptr: 0, bytes: 0 };
    for (const size of [roomy, bytes]) {
      const ptr = this.heap.tryAlloc(size, MEMORY_MAX_BYTES);
      if (ptr !== undefined) {
        this.workspace = { ptr, bytes: size };
        return ptr;
      }
    }
    return undefined;
  }
}
