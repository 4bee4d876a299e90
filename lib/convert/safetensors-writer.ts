/**
 * Streaming, sharded safetensors output for converters: the header of each
 * shard is written from the planned names/dtypes/shapes, then each tensor's
 * bytes are produced on demand and written straight to disk, so only one
 * tensor is in memory at a time. Shards are split like HF's `save_pretrained`
 * (`model-00001-of-00003.safetensors` + `model.safetensors.index.json`;
 * a single `model.safetensors` when everything fits in one shard).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { LlamaError } from "../errors.js";
import { writeAll } from "../io/atomic.js";
import { numel } from "../tensor/tensor.js";

export type StreamDType = "F32" | "F16" | "BF16";
const DTYPE_BYTES: Record<StreamDType, number> = { F32: 4, F16: 2, BF16: 2 };

export interface PlannedTensor {
  readonly name: string;
  readonly dtype: StreamDType;
  readonly shape: readonly number[];
}

export interface ShardFile {
  readonly file: string;
  readonly tensors: PlannedTensor[];
  readonly bytes: number;
}

export function tensorByteSize(t: PlannedTensor): number {
  return numel(t.shape) * DTYPE_BYTES[t.dtype];
}

/** Groups tensors (in the given order) into shards of at most maxShardBytes each (a lone larger tensor gets its own shard). */
export function planShards(tensors: readonly PlannedTensor[], maxShardBytes: number): ShardFile[] {
  const groups: PlannedTensor[][] = [];
  let current: PlannedTensor[] = [];
  let size = 0;
  for (const t of tensors) {
    const b = tensorByteSize(t);
    if (current.length && size + b > maxShardBytes) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += b;
  }
  if (current.length) groups.push(current);
  const n = groups.length;
  const pad = (i: number) => String(i).padStart(5, "0");
  return groups.map((g, i) => ({
    file: n === 1 ? "model.safetensors" : `model-${pad(i + 1)}-of-${pad(n)}.safetensors`,
    tensors: g,
    bytes: g.reduce((a, t) => a + tensorByteSize(t), 0),
  }));
}

/**
 * Writes the planned shards into `dir`, calling `produce(tensor)` for each
 * tensor's bytes (exactly tensorByteSize(t) of them) and `onWritten(bytes)`
 * after each. Returns the index JSON (null for a single shard) so the caller
 * can place it last.
 */
export function writeShards(
  dir: string,
  shards: readonly ShardFile[],
  produce: (t: PlannedTensor) => Uint8Array,
  onWritten: (bytes: number, name: string) => void = () => {},
  metadata: Record<string, string> = { format: "pt" },
): Record<string, unknown> | null {
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (const shard of shards) {
    // Header keys sorted and data in the same order, as the reference writer does.
    const ordered = [...shard.tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const header: Record<string, unknown> = { __metadata__: metadata };
    let offset = 0;
    for (const t of ordered) {
      const b = tensorByteSize(t);
      header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + b] };
      offset += b;
      weightMap[t.name] = shard.file;
    }
    total += offset;
    let json = JSON.stringify(header);
    json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
    const headerBytes = Buffer.from(json, "utf8");
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(headerBytes.length));
    const fd = fs.openSync(path.join(dir, shard.file), "w");
    try {
      writeAll(fd, len);
      writeAll(fd, headerBytes);
      for (const t of ordered) {
        const bytes = produce(t);
        if (bytes.length !== tensorByteSize(t)) {
          throw new LlamaError(`safetensors writer: tensor "${t.name}" produced ${bytes.length} bytes, ${t.dtype} [${t.shape.join(", ")}] needs ${tensorByteSize(t)}`);
        }
        writeAll(fd, bytes);
        onWritten(bytes.length, t.name);
      }
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
  if (shards.length <= 1) return null;
  return { metadata: { total_size: total }, weight_map: weightMap };
}
