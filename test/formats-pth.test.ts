import { describe, it, expect } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { TorchCheckpoint } from "../lib/io/pth.js";
import { ZipFile } from "../lib/io/zip.js";
import { unpickle } from "../lib/io/pth-unpickle.js";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { saveTorchStateDict } from "../lib/io/pth-writer.js";
import { FormatError } from "../lib/errors.js";

const PTH = "test/fixtures/pth";

describe("torch .pth reader", () => {
  for (const file of ["views.pth", "views-proto4.pth"]) {
    it(`reads every tensor of ${file} (views, offsets, strides, dtypes) exactly as torch made them contiguous`, () => {
      const ck = TorchCheckpoint.open(path.join(PTH, file));
      const want = SafetensorsFile.open(path.join(PTH, "expected.safetensors"));
      try {
        expect(ck.names().sort()).toEqual(want.names().sort());
        for (const name of want.names()) {
          const got = ck.read(name);
          const exp = want.read(name);
          expect(got.shape, name).toEqual(exp.shape);
          expect(got.dtype, name).toBe(exp.dtype);
          expect(Array.from(got.data), name).toEqual(Array.from(exp.data));
        }
        expect(ck.info("transposed")).toEqual({ name: "transposed", dtype: "f32", shape: [10, 6] });
        expect(ck.info("half_rows").dtype).toBe("f16");
        expect(ck.info("cube_permuted").dtype).toBe("bf16");
        expect(Array.from(ck.read("ints").data)).toEqual([-3, -2, -1, 0, 1, 2, 3]);
        expect(ck.read("scalar").shape).toEqual([]);
        expect(Array.from(ck.read("scalar").data)).toEqual([2.5]);
      } finally {
        ck.close();
        want.close();
      }
    });
  }

  it("refuses a pickle that calls os.system, naming the global, and runs nothing", () => {
    fs.rmSync("/tmp/llama-ts-pwned", { force: true });
    expect(() => TorchCheckpoint.open(path.join(PTH, "evil.pth"))).toThrow(/refusing global "(posix|os)\.system"/);
    expect(fs.existsSync("/tmp/llama-ts-pwned")).toBe(false);
  });

  it("reads Meta's fixture checkpoint: names, fp16 dtype, shapes", () => {
    const ck = TorchCheckpoint.open("test/fixtures/meta/tiny-llama/consolidated.00.pth");
    expect(ck.names()).toHaveLength(21);
    expect(ck.info("tok_embeddings.weight")).toEqual({ name: "tok_embeddings.weight", dtype: "f16", shape: [512, 64] });
    expect(ck.info("layers.1.feed_forward.w2.weight").shape).toEqual([64, 176]);
    expect(() => ck.read("nope")).toThrow(/no tensor named "nope"/);
    ck.close();
  });

  it("names the file when it is not a zip (e.g. the legacy torch format)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pth-"));
    const f = path.join(dir, "legacy.pth");
    fs.writeFileSync(f, Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]));
    expect(() => TorchCheckpoint.open(f)).toThrow(FormatError);
    expect(() => TorchCheckpoint.open(f)).toThrow(new RegExp(`${f}: not a zip archive`));
    fs.rmSync(dir, { recursive: true });
  });

  it("zip reader: lists torch's stored entries and reads ranges within bounds only", () => {
    const z = ZipFile.open("test/fixtures/meta/tiny-llama/consolidated.00.pth");
    expect(z.names()).toContain("consolidated.00/data.pkl");
    const e = z.entry("consolidated.00/data/0");
    expect(e.method).toBe(0);
    expect(z.readRange("consolidated.00/data/0", 0, 4)).toHaveLength(4);
    expect(() => z.readRange("consolidated.00/data/0", e.size - 2, 4)).toThrow(/outside its/);
    z.close();
  });

  it("unpickler: protocol-2 basics, memo, and clear errors for unsupported opcodes and truncation", () => {
    // {'a': [1, -2, True, None]} as protocol 2 (EMPTY_DICT, BINUNICODE, EMPTY_LIST, MARK … APPENDS, SETITEM).
    const ok = Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x58, 0x01, 0, 0, 0, 0x61, 0x5d, 0x71, 0x01, 0x28, 0x4b, 0x01, 0x4a, 0xfe, 0xff, 0xff, 0xff, 0x88, 0x4e, 0x65, 0x73, 0x2e]);
    const v = unpickle(ok, "mem") as Map<string, unknown>;
    expect(v.get("a")).toEqual([1, -2, true, null]);
    expect(() => unpickle(ok.subarray(0, ok.length - 1), "mem")).toThrow(/missing STOP/);
    expect(() => unpickle(Buffer.from([0x80, 0x02, 0x56, 0x2e]), "mem")).toThrow(/unsupported opcode 0x56 at offset 2/);
    expect(() => unpickle(Buffer.from([0x80, 0x02, 0x58, 0xff, 0xff, 0xff, 0x7f, 0x2e]), "mem")).toThrow(/needs 2147483647 bytes/);
  });

  it("a corrupted data.pkl is caught by its CRC-32 before unpickling", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pth-"));
    const f = path.join(dir, "bad.pth");
    const bytes = fs.readFileSync(path.join(PTH, "views.pth"));
    const z = ZipFile.open(path.join(PTH, "views.pth"));
    const at = z.dataStart("views/data.pkl") + 20;
    z.close();
    bytes[at]! ^= 0x01;
    fs.writeFileSync(f, bytes);
    expect(() => TorchCheckpoint.open(f)).toThrow(/zip entry "views\/data.pkl" is corrupt \(CRC-32 mismatch\)/);
    fs.rmSync(dir, { recursive: true });
  });

  it("writer: saveTorchStateDict output reads back (torch.load reads it too: checked once by hand with torch 2.13)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pth-"));
    const f = path.join(dir, "w.pth");
    const half = Uint16Array.from([0x3c00, 0x4000, 0xc000, 0x3800, 0, 0x7bff]);
    const big = new BigInt64Array([-5n, 1n << 40n]);
    saveTorchStateDict(f, [
      { name: "a.weight", dtype: "f16", shape: [2, 3], data: () => new Uint8Array(half.buffer) },
      { name: "ids", dtype: "i64", shape: [2], data: () => new Uint8Array(big.buffer) },
    ], "w");
    const ck = TorchCheckpoint.open(f);
    expect(ck.info("a.weight")).toEqual({ name: "a.weight", dtype: "f16", shape: [2, 3] });
    expect(Array.from(ck.read("a.weight").toFloat32())).toEqual([1, 2, -2, 0.5, 0, 65504]);
    expect(Array.from(ck.read("ids").data)).toEqual([-5, 2 ** 40]);
    const z = ZipFile.open(f);
    expect(z.dataStart("w/data/0") % 64).toBe(0); // torch's 64-byte storage alignment
    z.close();
    ck.close();
    fs.rmSync(dir, { recursive: true });
  });
});
