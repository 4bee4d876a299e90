/**
 * The one progress convention, `onProgress(done, total, info?)`:
 *   - the CLI renderer (cli/progress.ts): a line per 10% off a terminal, a
 *     throttled in-place bar on one, with rate, time left and metrics;
 *   - fromPretrained / loadPretrained and convertMetaToHf call it from
 *     (0, total) to (total, total) without going back, total being the bytes
 *     of tensor data in the files (read from the safetensors headers here);
 *   - label scoring calls it per batch up to its total;
 *   - display.progress(label) is such a callback, shown as one output updated
 *     in place (display_data, then update_display_data with its display_id).
 */
import { describe, it, expect, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { cliProgress } from "../cli/progress.js";
import { formatDuration, progressText, type ProgressInfo } from "../lib/progress.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { loadPretrained } from "../lib/model/auto.js";
import { convertMetaToHf } from "../lib/convert/meta-to-hf.js";
import { AutoTokenizer } from "../lib/tokenizer/index.js";
import { classifyByLabelScores } from "../lib/peft/prompt-classify.js";
import { activationPatching, logitDiffMetric } from "../lib/interp/patching.js";
import { createCellGlobals, type OutputSink } from "../kernel/display/api.js";
import type { Comms } from "../kernel/comm.js";

type Call = [done: number, total: number, info?: ProgressInfo];
const collect = () => {
  const calls: Call[] = [];
  return { calls, onProgress: (done: number, total: number, info?: ProgressInfo) => void calls.push([done, total, info]) };
};

/** Bytes of tensor data in a .safetensors file: its size less the 8-byte length and the JSON header. */
function dataBytes(file: string): number {
  const fd = fs.openSync(file, "r");
  const len = Buffer.alloc(8);
  fs.readSync(fd, len, 0, 8, 0);
  fs.closeSync(fd);
  return fs.statSync(file).size - 8 - Number(len.readBigUInt64LE(0));
}

/** Checks the convention: starts at 0, never goes back, one total, ends at it. */
function expectRun(calls: Call[], total: number): void {
  expect(calls.length).toBeGreaterThan(1);
  expect(calls[0]!.slice(0, 2)).toEqual([0, total]);
  expect(calls.at(-1)!.slice(0, 2)).toEqual([total, total]);
  for (let i = 1; i < calls.length; i++) {
    expect(calls[i]![1]).toBe(total);
    expect(calls[i]![0]).toBeGreaterThanOrEqual(calls[i - 1]![0]);
    expect(calls[i]![0]).toBeLessThanOrEqual(total);
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-ts-progress-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("cli/progress.ts", () => {
  it("off a terminal: one line per 10%, with rate, time left and metrics", () => {
    const out: string[] = [];
    let t = 1000;
    const onProgress = cliProgress("train", { write: (s) => out.push(s), isTTY: false }, () => t);
    // 20 steps of 0.5 s: 2 steps/s; loss 2 → 1.
    for (let done = 0; done <= 20; done++) {
      t = 1000 + 500 * done;
      onProgress(done, 20, { unit: "steps", metrics: { loss: 2 - done / 20 } });
    }
    expect(out).toHaveLength(11);
    expect(out[0]).toBe("train:   0% 0/20 steps · 0.00 steps/s · loss 2\n");
    expect(out[1]).toBe("train:  10% 2/20 steps · 2.00 steps/s · 0:09 left · loss 1.9\n");
    expect(out[5]).toBe("train:  50% 10/20 steps · 2.00 steps/s · 0:05 left · loss 1.5\n");
    expect(out[10]).toBe("train: 100% 20/20 steps · 2.00 steps/s · 0:10 total · loss 1\n");
    // The same renderer for a second run (done goes back): starts over.
    t = 50_000;
    onProgress(0, 4);
    t = 51_000;
    onProgress(4, 4);
    expect(out.slice(11)).toEqual(["train:   0% 0/4 steps · 0.00 steps/s\n", "train: 100% 4/4 steps · 4.00 steps/s · 0:01 total\n"]);
    // A renderer made long before its run starts at 0 clocks the run from there (not from when it was made).
    const late: string[] = [];
    let tl = 0;
    const p = cliProgress("train", { write: (s) => late.push(s), isTTY: false }, () => tl);
    tl = 60_000;
    p(0, 2);
    tl = 62_000;
    p(2, 2);
    expect(late.at(-1)).toBe("train: 100% 2/2 steps · 1.00 steps/s · 0:02 total\n");
  });

  it("on a terminal: one bar redrawn in place at most every 100 ms, ended by a newline", () => {
    const out: string[] = [];
    let t = 0;
    const onProgress = cliProgress("loading", { write: (s) => out.push(s), isTTY: true, columns: 200 }, () => t);
    for (let done = 0; done <= 100; done++) {
      t = 10 * done; // 1 s in all
      onProgress(done * 1048576, 100 * 1048576, { unit: "bytes" });
    }
    expect(out.length).toBe(11); // t = 0, 100, …, 1000 ms (the last because it finishes)
    for (const s of out) expect(s.startsWith("\rloading [")).toBe(true);
    expect(out.slice(0, -1).every((s) => !s.endsWith("\n"))).toBe(true);
    expect(out.at(-1)).toBe(`\rloading [${"#".repeat(30)}] 100% 100/100 MiB · 100.0 MiB/s · 0:01 total\x1b[K\n`);
    expect(out[5]).toBe(`\rloading [${"#".repeat(15)}${"-".repeat(15)}]  50% 50/100 MiB · 100.0 MiB/s · 0:01 left\x1b[K`);
    // An 80-column terminal: the bar narrows so that the words fit.
    const narrow: string[] = [];
    let t80 = 0;
    const p80 = cliProgress("loading", { write: (s) => narrow.push(s), isTTY: true, columns: 80 }, () => t80);
    t80 = 1000;
    p80(100 * 1048576, 100 * 1048576, { unit: "bytes" });
    expect(narrow[0]).toBe(`\rloading [${"#".repeat(25)}] 100% 100/100 MiB · 100.0 MiB/s · 0:01 total\x1b[K\n`);
    expect(narrow[0]!.replace(/^\r|\x1b\[K\n$/g, "").length).toBe(79);
  });

  it("a total ≤ 0 (training bounded by time only) shows counts and rate without a bar", () => {
    expect(progressText(30, 0, 15_000, { metrics: { loss: 0.25 } })).toBe("30 steps · 2.00 steps/s · 0:15 so far · loss 0.25");
    expect(formatDuration(3725)).toBe("1:02:05");
    expect(formatDuration(59.6)).toBe("1:00");
  });
});

describe("the library calls onProgress(done, total, info) from 0 to total", () => {
  it("fromPretrained and loadPretrained: bytes of the checkpoint's tensors, labelled with tensor names", async () => {
    for (const dir of ["test/fixtures/hf/tiny-llama", "models/tiny-stories"]) {
      const total = dataBytes(path.join(dir, "model.safetensors"));
      const a = collect();
      const m = await LlamaForCausalLM.fromPretrained(dir, { onProgress: a.onProgress });
      expectRun(a.calls, total);
      expect(a.calls.every(([, , info]) => info?.unit === "bytes")).toBe(true);
      expect(a.calls.filter(([, , info]) => info?.label?.startsWith("model.layers.0.")).length).toBeGreaterThan(0);
      m.backend.dispose?.();
      const b = collect();
      (await loadPretrained(dir, { onProgress: b.onProgress })).backend.dispose?.();
      expect(b.calls.map(([d, t]) => [d, t])).toEqual(a.calls.map(([d, t]) => [d, t]));
    }
  });

  it("convertMetaToHf: the bytes written, ending at the tensor data of the written safetensors", async () => {
    const { calls, onProgress } = collect();
    const out = path.join(tmp, "converted");
    const r = await convertMetaToHf({ inputDir: "test/fixtures/meta/tiny-llama-2shard", outputDir: out, llamaVersion: "2", onProgress });
    const total = dataBytes(path.join(out, "model.safetensors"));
    expectRun(calls, total);
    expect(r.bytesWritten).toBe(total);
    // One call per tensor after the first, each naming it.
    expect(calls.slice(1).map(([, , info]) => info?.label)).toContain("model.layers.1.self_attn.k_proj.weight");
  });

  it("label scoring: sequences scored per forward pass, up to the total", async () => {
    const tok = AutoTokenizer.fromPretrained("models/tiny-stories");
    const model = await LlamaForCausalLM.fromPretrained("models/tiny-stories");
    const rows = ["a pizza with cheese", "a film with actors", "a lamp for the desk"].map((p, i) => ({
      prompt: `Review: ${p}\nTopic:`, label_text: [" food", " movie", " thing"][i]!,
    }));
    const { calls, onProgress } = collect();
    await classifyByLabelScores(model, tok, rows, undefined, { batchSize: 2, onProgress });
    const total = calls[0]![1];
    expect(total).toBeGreaterThan(2);
    expect(calls.at(-1)!.slice(0, 2)).toEqual([total, total]);
    expect(calls.map(([d]) => d)).toEqual(Array.from({ length: Math.ceil(total / 2) }, (_, i) => Math.min(total, 2 * (i + 1))));
    model.backend.dispose?.();
  });
});

describe("activation patching calls onProgress once per patched run", () => {
  it("layers × positions runs, each labelled with its site", async () => {
    const model = await LlamaForCausalLM.fromPretrained("test/fixtures/hf/tiny-llama");
    const clean = [1, 5, 9, 17, 33, 65];
    const corrupted = [1, 5, 200, 17, 33, 65];
    const { calls, onProgress } = collect();
    await activationPatching(model, { clean, corrupted, metric: logitDiffMetric(65, 42), site: "resid_post", positions: [4, 5], onProgress });
    const L = model.config.num_hidden_layers;
    expect(calls.map(([d, t]) => [d, t])).toEqual(Array.from({ length: 2 * L }, (_, i) => [i + 1, 2 * L]));
    expect(calls.slice(0, 2).map(([, , info]) => info?.label)).toEqual(["L0 resid_post @4", "L0 resid_post @5"]);
    model.backend.dispose?.();
  });
});

describe("display.progress(label)", () => {
  type Msg = { type: string; content: { data: Record<string, string>; transient: { display_id: string } } };
  const globals = () => {
    const msgs: Msg[] = [];
    const sink: OutputSink = {
      publish: (type, content) => void msgs.push({ type, content: content as Msg["content"] }),
      requestInput: async () => "",
    };
    return { msgs, display: createCellGlobals(sink, {} as Comms).display };
  };

  it("is an onProgress: one output updated in place with steps, rate, time left and metrics", () => {
    const { msgs, display } = globals();
    const bar = display.progress("training");
    for (let step = 1; step <= 4; step++) bar(step, 4, { unit: "steps", metrics: { loss: 1 / step } });
    expect(msgs[0]!.type).toBe("display_data");
    const updates = msgs.slice(1);
    expect(updates.length).toBeGreaterThanOrEqual(1);
    for (const m of updates) {
      expect(m.type).toBe("update_display_data");
      expect(m.content.transient.display_id).toBe(msgs[0]!.content.transient.display_id);
    }
    const last = updates.at(-1)!.content.data;
    expect(last["text/plain"]).toMatch(/^training 100% \[#{30}\] 4\/4 steps · [\d.]+ steps\/s · 0:00 total · loss 0\.25$/);
    expect(last["text/html"]).toContain('<progress value="4" max="4"');
    expect(last["text/html"]).toContain("loss 0.25");
  });

  it("plugs into fromPretrained: the last update shows the whole checkpoint loaded", async () => {
    const { msgs, display } = globals();
    const m = await LlamaForCausalLM.fromPretrained("test/fixtures/hf/tiny-llama", { onProgress: display.progress("loading") });
    m.backend.dispose?.();
    const total = dataBytes("test/fixtures/hf/tiny-llama/model.safetensors");
    const last = msgs.at(-1)!;
    expect(last.type).toBe("update_display_data");
    const mib = (total / 1048576).toFixed(2);
    expect(last.content.data["text/plain"]).toContain(`100% [${"#".repeat(30)}] ${mib}/${mib} MiB`);
    expect(last.content.data["text/html"]).toContain(`<progress value="${total}" max="${total}"`);
  });
});
