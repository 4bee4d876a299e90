/**
 * A first-fit allocator over one shared WebAssembly memory, for weights and
 * kernel workspaces. Blocks are 64-byte aligned; freed blocks coalesce; the
 * memory grows (it never shrinks) when no free block fits, up to a limit the
 * caller gives (the engine caps the bytes of data per memory, wasm-engine.ts).
 */
import { LlamaError } from "../../errors.js";
import type { WasmMemory } from "./wasm-api.js";

const ALIGN = 64;
const PAGE = 65536;

export class WasmHeap {
  /** Free blocks [start, size], sorted by start. */
  private free: [number, number][] = [];
  private top: number;

  constructor(readonly memory: WasmMemory, reserved: number) {
    this.top = Math.ceil(reserved / ALIGN) * ALIGN; // bytes below are never handed out
  }

  get size(): number {
    return this.memory.buffer.byteLength;
  }

  alloc(bytes: number): number {
    const start = this.tryAlloc(bytes);
    if (start === undefined) {
      const end = this.top + Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
      throw new LlamaError(`cpu backend: cannot grow the WebAssembly memory to ${(end / 2 ** 30).toFixed(2)} GiB (limit 4 GiB per memory; set LLAMA_TS_WASM=0 for the JavaScript kernels)`);
    }
    return start;
  }

  /**
   * A block of `bytes`, or undefined when no free block fits and the memory
   * cannot grow enough without passing `limit` bytes (or at all).
   */
  tryAlloc(bytes: number, limit = Infinity): number | undefined {
    const need = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    for (let i = 0; i < this.free.length; i++) {
      const [start, size] = this.free[i]!;
      if (size < need || start + need > limit) continue;
      if (size === need) this.free.splice(i, 1);
      else this.free[i] = [start + need, size - need];
      return start;
    }
    const start = this.top;
    const end = start + need;
    if (end > limit) return undefined;
    if (end > this.size) {
      const pages = Math.ceil((end - this.size) / PAGE);
      try {
        this.memory.grow(pages);
      } catch {
        return undefined;
      }
    }
    this.top = end;
    return start;
  }

  release(start: number, bytes: number): void {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    let i = 0;
    while (i < this.free.length && this.free[i]![0] < start) i++;
    this.free.splice(i, 0, [start, size]);
    // coalesce with the next, then with the previous block
    const cur = this.free[i]!;
    const next = this.free[i + 1];
    if (next && cur[0] + cur[1] === next[0]) { cur[1] += next[1]; this.free.splice(i + 1, 1); }
    const prev = this.free[i - 1];
    if (prev && prev[0] + prev[1] === cur[0]) { prev[1] += cur[1]; this.free.splice(i, 1); }
    // a free block at the top returns to the bump region
    const last = this.free[this.free.length - 1];
    if (last && last[0] + last[1] === this.top) { this.top = last[0]; this.free.pop(); }
  }
}
