/**
 * Fuzzing the untrusted-file parsers: thousands of seeded mutations (bit
 * flips, random bytes, truncations, huge lengths, zeroed and duplicated
 * ranges) of real files per parser. Each input must either parse or fail
 * with a LlamaError (FormatError/ConfigError) that names the file — never a
 * TypeError/RangeError, a hang, or an allocation out of proportion to the file.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { TorchCheckpoint } from "../lib/io/pth.js";
import { ZipFile } from "../lib/io/zip.js";
import { unpickle } from "../lib/io/pth-unpickle.js";
import { GgufFile } from "../lib/io/gguf.js";
import { readGgufAsHf } from "../lib/io/gguf-hf.js";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { LlamaError } from "../lib/errors.js";
import { gguf, writeGguf, type GgufTensorSpec, type GgufWritableType } from "../lib/io/gguf-writer.js";
import { GgmlType } from "../lib/io/gguf-types.js";
import { llama3RopeFactors } from "../lib/io/gguf-llama.js";
import { syntheticSpmVocab, tokenizerMetadata } from "../lib/io/gguf-tokenizer.js";
import { Tensor } from "../lib/tensor/tensor.js";
import { mulberry32 } from "../lib/mulberry32.js";

const N = 2000; // mutations per parser per run
let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fuzz-")); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** mulberry32: a small seeded PRNG, so every CI run tries the same inputs (and a failure reproduces). */
const rng = mulberry32;

function mutate(src: Uint8Array, r: () => number): Uint8Array {
  const int = (n: number) => Math.floor(r() * n);
  let b = Uint8Array.from(src);
  const rounds = 1 + int(3);
  for (let k = 0; k < rounds; k++) {
    const pos = int(b.length);
    switch (int(6)) {
      case 0: for (let i = 0, n = 1 + int(8); i < n; i++) { const p = int(b.length); b[p]! ^= 1 << int(8); } break;
      case 1: b[pos] = int(256); break;
      case 2: b = b.slice(0, int(b.length)); break;
      case 3: { // a huge little-endian length/offset (u32 or u64 max, or 2^31, 2^40)
        const vals = [0xffffffffffffffffn, 0xffffffffn, 0x80000000n, 1n << 40n, 0x7fffffffn];
        const v = vals[int(vals.length)]!;
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        if (pos + 8 <= b.length) dv.setBigUint64(pos, v, true);
        break;
      }
      case 4: b.fill(0, pos, pos + 1 + int(64)); break;
      case 5: { const len = 1 + int(32); const chunk = b.slice(pos, pos + len); const out = new Uint8Array(b.length + chunk.length); out.set(b.subarray(0, pos)); out.set(chunk, pos); out.set(b.subarray(pos), pos + chunk.length); b = out; break; }
    }
    if (b.length === 0) break;
  }
  return b;
}

interface Outcome { ok: number; rejected: number; }

/** Reads every tensor of an opened file (bytes read, so data offsets are exercised too), closing it either way. */
function readEveryTensor(names: () => Iterable<string>, read: (name: string) => { data: ArrayBufferView }, close: () => void): number {
  try {
    let n = 0;
    for (const name of names()) n += read(name).data.byteLength;
    return n;
  } finally {
    close();
  }
}

/** Runs `parse` on N mutations of `seedFile`; anything but success or a LlamaError fails the test. */
function fuzz(seedFile: string, seed: number, parse: (file: string) => number): Outcome {
  const src = new Uint8Array(fs.readFileSync(seedFile));
  const r = rng(seed);
  const file = path.join(tmp, `m-${path.basename(seedFile)}`);
  const out: Outcome = { ok: 0, rejected: 0 };
  for (let i = 0; i < N; i++) {
    const m = mutate(src, r);
    fs.writeFileSync(file, m);
    const t0 = performance.now();
    try {
      const bytesOut = parse(file);
      // Outputs stay in proportion to the input (8x covers 4-bit → f32 dequantization).
      if (bytesOut > 8 * m.length + 4096) throw new Error(`mutation ${i}: ${bytesOut} bytes of tensors from a ${m.length}-byte file`);
      out.ok++;
    } catch (err) {
      if (!(err instanceof LlamaError)) {
        fs.writeFileSync(path.join(os.tmpdir(), `fuzz-failure-${path.basename(seedFile)}`), m);
        throw new Error(`mutation ${i} of ${seedFile}: ${(err as Error)?.name}: ${(err as Error)?.message} (input saved to ${os.tmpdir()}/fuzz-failure-${path.basename(seedFile)})`);
      }
      if (!err.message.includes(file)) throw new Error(`mutation ${i}: error does not name the file: ${err.message}`);
      out.rejected++;
    }
    const ms = performance.now() - t0;
    if (ms > 2000) throw new Error(`mutation ${i} of ${seedFile} took ${ms.toFixed(0)} ms`);
  }
  console.log(`${seedFile}: ${out.ok} parsed, ${out.rejected} rejected with a FormatError`);
  return out;
}

/** A 1-layer GQA LLaMA in GGUF (hidden 16, 2 heads / 1 kv head, F16 weights, llama3 rope_freqs, 260-token vocab): ~25 KB. */
function writeTinyGgufModel(file: string): void {
  const r = rng(99);
  const t = (shape: number[]) => Tensor.from(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r() - 0.5), shape);
  const spec = (name: string, shape: number[], type: GgufWritableType = GgmlType.F16): GgufTensorSpec => ({ name, shape, type, data: () => t(shape) });
  const factors = llama3RopeFactors(500000, 8, { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 });
  writeGguf(file, [
    ["general.architecture", gguf.str("llama")],
    ["llama.block_count", gguf.u32(1)], ["llama.context_length", gguf.u32(128)], ["llama.embedding_length", gguf.u32(16)],
    ["llama.feed_forward_length", gguf.u32(32)], ["llama.attention.head_count", gguf.u32(2)], ["llama.attention.head_count_kv", gguf.u32(1)],
    ["llama.rope.freq_base", gguf.f32(500000)], ["llama.attention.layer_norm_rms_epsilon", gguf.f32(1e-5)],
    ["llama.rope.scaling.original_context_length", gguf.u32(64)],
    ...tokenizerMetadata(syntheticSpmVocab(260)),
  ], [
    { name: "rope_freqs.weight", shape: [4], type: GgmlType.F32, data: () => new Tensor(factors, [4], "f32") },
    spec("token_embd.weight", [260, 16]),
    spec("blk.0.attn_norm.weight", [16], GgmlType.F32), spec("blk.0.attn_q.weight", [16, 16]), spec("blk.0.attn_k.weight", [8, 16]),
    spec("blk.0.attn_v.weight", [8, 16]), spec("blk.0.attn_output.weight", [16, 16]), spec("blk.0.ffn_norm.weight", [16], GgmlType.F32),
    spec("blk.0.ffn_gate.weight", [32, 16]), spec("blk.0.ffn_up.weight", [32, 16]), spec("blk.0.ffn_down.weight", [16, 32]),
    spec("output_norm.weight", [16], GgmlType.F32),
  ]);
}

describe(`parser fuzzing (${N} mutations each)`, () => {
  it("torch .pth (zip + pickle)", () => {
    const o = fuzz("test/fixtures/pth/views.pth", 1, (f) => {
      const ck = TorchCheckpoint.open(f);
      return readEveryTensor(() => ck.names(), (name) => ck.read(name), () => ck.close());
    });
    expect(o.ok + o.rejected).toBe(N);
    expect(o.rejected).toBeGreaterThan(N / 10);
  });

  it("the unpickler alone, on mutated data.pkl bytes", () => {
    const z = ZipFile.open("test/fixtures/pth/views-proto4.pth");
    const pkl = z.read(z.names().find((n) => n.endsWith("data.pkl"))!);
    z.close();
    const r = rng(2);
    let rejected = 0;
    for (let i = 0; i < N; i++) {
      const m = mutate(pkl, r);
      try {
        unpickle(m, "mem.pkl");
      } catch (err) {
        if (!(err instanceof LlamaError)) throw new Error(`pickle mutation ${i}: ${(err as Error)?.name}: ${(err as Error)?.message}`);
        if (!err.message.includes("mem.pkl")) throw new Error(`pickle mutation ${i}: error does not name the source: ${err.message}`);
        rejected++;
      }
    }
    expect(rejected).toBeGreaterThan(N / 10);
  });

  it("GGUF (every tensor type) and its LLaMA mapping", () => {
    const o = fuzz("test/fixtures/gguf/types.gguf", 3, (f) => {
      const g = GgufFile.open(f);
      return readEveryTensor(() => g.tensorNames(), (name) => g.read(name), () => g.close());
    });
    expect(o.rejected).toBeGreaterThan(N / 10);
    // A real model file through readGgufAsHf (config mapping, rope_freqs fit, q/k permutation).
    const model = path.join(tmp, "model.gguf");
    writeTinyGgufModel(model);
    const o2 = fuzz(model, 4, (f) => {
      const r = readGgufAsHf(f);
      return readEveryTensor(() => r.weights.names(), (name) => r.weights.read(name), () => r.weights.close());
    });
    expect(o2.rejected).toBeGreaterThan(N / 10);
  });

  it("safetensors", () => {
    const o = fuzz("test/fixtures/pth/expected.safetensors", 5, (f) => {
      const st = SafetensorsFile.open(f);
      return readEveryTensor(() => st.names(), (name) => st.read(name), () => st.close());
    });
    expect(o.rejected).toBeGreaterThan(N / 10);
  });
});
