// `llama-ts dpo`, `reward-train` and `score` (the built CLI, the default model, pairs from
// datasets/preference/): a short run writes a PEFT-format adapter whose matrices are exactly the
// library's trainDpo result for the same options (the library is checked against TRL itself in
// test/trl-dpo.test.ts), the first step's loss is ln 2 (policy = reference at B = 0) and its logps are the
// reference's; `score --json` prints the library's rewards; bad input is one line naming file, line and
// field, exit non-zero, nothing written; --help lists the flags with their defaults.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SafetensorsFile } from "../lib/io/safetensors.js";
import { createDifferentiableBackend } from "../lib/autograd/differentiable.js";
import { LlamaForCausalLM } from "../lib/model/causal-lm.js";
import { AutoTokenizer } from "../lib/tokenizer/auto-tokenizer.js";
import { LoraModel } from "../lib/peft/lora-train.js";
import { readLoraAdapter } from "../lib/peft/lora.js";
import { readPreferenceFile, tokenizeDpoRows, tokenizeReward } from "../lib/peft/preference-data.js";
import { trainDpo } from "../lib/peft/dpo.js";
import { RewardModel, loadRewardBase } from "../lib/peft/reward.js";
import { ALL_LINEAR } from "../lib/peft/lora-train.js";

// PEFT saves "all-linear" as the names it expanded to
const LINEAR_NAMES = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"];
import { DPO_DEFAULTS } from "../cli/commands/dpo.js";
import { DPO_RECIPE } from "../lib/peft/dpo-recipe.js";
import { spawn } from "node:child_process";

/** The built CLI in a child process, without blocking the test worker (long runs made vitest's RPC time out). */
function runCli(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/llama-ts.js", ...args], { timeout: options.timeoutMs ?? 120_000 });
    let stdout = "", stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

const MODEL = "models/tiny-stories";
const PEFT_CONFIG = JSON.parse(fs.readFileSync("test/fixtures/peft/tiny-llama-lora/adapter_config.json", "utf8")) as Record<string, unknown>;
const rows = fs.readFileSync("datasets/preference/train.jsonl", "utf8").trim().split("\n").slice(0, 4);

function stepLines(stdout: string): Record<string, number>[] {
  return stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, number>);
}

describe("llama-ts dpo / reward-train / score", () => {
  let tmp: string, pairs: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "dpo-cli-"));
    pairs = path.join(tmp, "pairs.jsonl");
    fs.writeFileSync(pairs, rows.join("\n") + "\n");
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("--help lists every flag with its default", async () => {
    const r = await runCli(["dpo", "--help"]);
    expect(r.status, r.stderr).toBe(0);
    for (const s of ["--data FILE", "--out DIR", "--beta B", "--loss sigmoid|ipo|LIST", "--loss-weights W,…", `default: ${DPO_DEFAULTS.loss}`, "--target-modules LIST", "--lr X", "--epochs N", "--max-steps N", "--time-budget S", "--batch-size N", "--device cpu|webgpu", "--seed N", "default: all-linear", `default: ${DPO_DEFAULTS.beta}`, `default: ${DPO_DEFAULTS.lr}`]) {
      expect(r.stdout).toContain(s);
    }
    for (const cmd of ["reward-train", "score"]) expect((await runCli([cmd, "--help"])).status).toBe(0);
  });

  it("a short run (default model, no --model, the default losses): PEFT's adapter format, the library's trainDpo matrices, step 1 at the reference", async () => {
    const out = path.join(tmp, "dpo");
    const r = await runCli(["dpo", "--data", pairs, "--out", out, "--max-steps", "2", "--batch-size", "2", "--r", "4", "--seed", "3"], { timeoutMs: 300_000 });
    expect(r.status, r.stderr).toBe(0);
    const steps = stepLines(r.stdout);
    expect(steps).toHaveLength(2);
    // policy = reference at step 1 (B = 0): the sigmoid part is ln 2, the NLL part adds to it
    expect(steps[0]!["rewards/margins"]).toBe(0);
    expect(steps[0]!.loss).toBeGreaterThan(Math.log(2) + 0.01);
    for (const k of ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "logps/chosen", "logps/rejected", "guard/chosen_logp_per_token"]) expect(steps[1]).toHaveProperty(k);
    expect(r.stdout.trim().split("\n").at(-1)).toBe(`adapter: ${out}`);
    // the reference pass before training shows its own progress, in pairs
    expect(r.stderr).toMatch(/dpo reference log-probs: 100% (\d+)\/\1 items/);

    // The folder as PEFT writes it: every config field is one of PEFT's, keys base_model.model.<module>.lora_{A,B}.weight.
    const config = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8")) as Record<string, unknown>;
    for (const k of Object.keys(config)) expect(PEFT_CONFIG, `adapter_config.json field ${k}`).toHaveProperty(k);
    expect(config).toMatchObject({ peft_type: "LORA", task_type: "CAUSAL_LM", r: 4, lora_alpha: 8, target_modules: LINEAR_NAMES, base_model_name_or_path: path.resolve(MODEL) });
    const st = SafetensorsFile.open(path.join(out, "adapter_model.safetensors"));
    const names = st.names();
    expect(names).toHaveLength(6 * 7 * 2);
    for (const n of names) expect(n).toMatch(/^base_model\.model\.model\.layers\.[0-5]\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.lora_[AB]\.weight$/);

    // The library with the same options gives the same matrices.
    const be = await createDifferentiableBackend("cpu");
    try {
      const model = await LlamaForCausalLM.fromPretrained(MODEL, { backend: be });
      const tok = AutoTokenizer.fromPretrained(MODEL);
      const { examples } = tokenizeDpoRows(tok, readPreferenceFile(pairs), { maxLength: 512 });
      const lora = LoraModel.create(model, { r: 4, lora_alpha: 8, target_modules: ALL_LINEAR }, { seed: 3 });
      const res = await trainDpo(lora, examples, {
        beta: DPO_RECIPE.beta, lossType: DPO_RECIPE.lossType, lossWeights: DPO_RECIPE.lossWeights, maxLength: 512, lr: Number(DPO_DEFAULTS.lr), batchSize: 2, seed: 3, steps: 2,
        optimizer: "adamw", schedule: "linear", precomputeRefLogProbs: true,
      });
      expect(steps.map((s) => s.loss)).toEqual(res.losses);
      const saved = readLoraAdapter(out);
      let worst = 0;
      for (const [m, { A, B }] of lora.modules) {
        const s = saved.modules.get(m)!;
        for (const [x, y] of [[A.value, s.A.toFloat32()], [B.value, s.B.toFloat32()]] as const) {
          for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
        }
      }
      expect(worst).toBe(0);
      expect(saved.modules.get("model.layers.0.mlp.down_proj")!.B.toFloat32().some((v) => v !== 0)).toBe(true); // it trained
    } finally {
      be.dispose();
    }
    // The adapter drives generation.
    const g = await runCli(["generate", "--adapter", out, "--prompt", "Once upon a time", "--max-new-tokens", "5"]);
    expect(g.status, g.stderr).toBe(0);
  });

  it("--init-adapter: the policy starts from a trained adapter and the reference is that adapter (step 1 at ln 2), or with --ref base the model without it", async () => {
    const sft = path.join(tmp, "dpo"); // the adapter the test above trained (B non-zero)
    expect(fs.existsSync(path.join(sft, "adapter_model.safetensors"))).toBe(true);
    const run = (out: string, extra: string[]) =>
      runCli(["dpo", "--data", pairs, "--out", path.join(tmp, out), "--init-adapter", sft, "--max-steps", "1", "--batch-size", "2", "--seed", "3", "--loss", "sigmoid", ...extra], { timeoutMs: 300_000 });
    const asRef = await run("from-sft", []);
    expect(asRef.status, asRef.stderr).toBe(0);
    const [s1] = stepLines(asRef.stdout);
    expect(s1!.loss).toBeCloseTo(Math.log(2), 6); // policy = reference at the first step
    expect(s1!["rewards/margins"]).toBe(0);
    // The adapter's own r and targets carry over.
    const config = JSON.parse(fs.readFileSync(path.join(tmp, "from-sft", "adapter_config.json"), "utf8")) as Record<string, unknown>;
    expect(config).toMatchObject({ r: 4, lora_alpha: 8, target_modules: LINEAR_NAMES });

    const baseRef = await run("from-sft-base", ["--ref", "base"]);
    expect(baseRef.status, baseRef.stderr).toBe(0);
    const [b1] = stepLines(baseRef.stdout);
    expect(Math.abs(b1!.loss! - Math.log(2))).toBeGreaterThan(1e-4); // the trained adapter already moved the policy off the base
    expect(b1!["rewards/margins"]).not.toBe(0);

    const noInit = await runCli(["dpo", "--data", pairs, "--out", path.join(tmp, "never"), "--ref", "adapter"]);
    expect(noInit.status).toBe(2);
    expect(noInit.stderr.trim().split("\n").filter((l) => l.startsWith("llama-ts"))).toHaveLength(1);
    expect(noInit.stderr).toMatch(/--ref adapter needs --init-adapter/);
    expect(fs.existsSync(path.join(tmp, "never"))).toBe(false);

    // An adapter made for another base model: one line naming the misfit and the adapter's base, nothing written.
    const other = await runCli(["dpo", "--data", pairs, "--out", path.join(tmp, "never"), "--init-adapter", "test/fixtures/peft/tiny-llama-lora"]);
    expect(other.status).toBe(1);
    const lines = other.stderr.trim().split("\n").filter((l) => l.startsWith("llama-ts"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/the model needs \[\d+, \d+\].*base_model_name_or_path/);
    expect(fs.existsSync(path.join(tmp, "never"))).toBe(false);
  });

  it("bad input: one line with file, line and field; exit 1; nothing written", async () => {
    const bad = (name: string, lines: string[]) => {
      const f = path.join(tmp, name);
      fs.writeFileSync(f, lines.join("\n") + "\n");
      return f;
    };
    const row = (i: number) => JSON.parse(rows[i]!) as Record<string, string>;
    const cases: [string, RegExp][] = [
      [bad("empty.jsonl", [rows[0]!, rows[1]!, JSON.stringify({ ...row(2), chosen: "" })]), /empty\.jsonl: line 3: field "chosen" is empty/],
      [bad("missing.jsonl", [rows[0]!, JSON.stringify({ prompt: "Hi", chosen: " there" })]), /missing\.jsonl: line 2: field "rejected" is missing/],
      [bad("long.jsonl", [JSON.stringify({ ...row(0), prompt: "Once upon a time there was a dog. ".repeat(80) }), rows[1]!]), /long\.jsonl: line 1: field "prompt" is \d+ tokens, the model's context is 512/],
      [bad("json.jsonl", [rows[0]!, "{not json"]), /json\.jsonl: line 2: not valid JSON/],
    ];
    for (const [file, message] of cases) {
      for (const cmd of ["dpo", "reward-train"]) {
        const out = path.join(tmp, `never-${cmd}`);
        const r = await runCli([cmd, "--data", file, "--out", out, "--max-steps", "1"]);
        expect(r.status, `${cmd} ${file}`).toBe(1);
        const lines = r.stderr.trim().split("\n").filter((l) => l.startsWith("llama-ts"));
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(message);
        expect(fs.existsSync(out)).toBe(false);
        expect(fs.readdirSync(tmp).filter((n) => n.includes(".tmp-"))).toEqual([]);
      }
    }
    const flags = await runCli(["dpo", "--data", pairs, "--out", path.join(tmp, "x"), "--epochs", "1", "--max-steps", "2"]);
    expect(flags.status).toBe(2);
    expect(flags.stderr).toMatch(/give one of --epochs, --max-steps and --time-budget/);
    expect((await runCli(["dpo", "--data", pairs, "--out", path.join(tmp, "x"), "--loss", "hinge"])).stderr).toMatch(/--loss: expected sigmoid or ipo or apo_zero or sft, got "hinge"/);
    const weights = await runCli(["dpo", "--data", pairs, "--out", path.join(tmp, "x"), "--loss", "sigmoid,sft", "--loss-weights", "1"]);
    expect(weights.status).toBe(2);
    expect(weights.stderr).toMatch(/--loss-weights: 1 weights for 2 loss types \(sigmoid,sft\)/);
    expect(fs.existsSync(path.join(tmp, "x"))).toBe(false);
  });

  it("identical chosen and rejected: a warning with the count, and the run goes on", async () => {
    const f = path.join(tmp, "same.jsonl");
    const r0 = JSON.parse(rows[0]!) as Record<string, string>;
    fs.writeFileSync(f, [JSON.stringify({ ...r0, rejected: r0.chosen }), rows[1]!, rows[2]!].join("\n") + "\n");
    const r = await runCli(["dpo", "--data", f, "--out", path.join(tmp, "same"), "--max-steps", "1", "--batch-size", "3", "--r", "2", "--target-modules", "q_proj"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: .*same\.jsonl: 1 of 3 rows have identical "chosen" and "rejected"/);
  });

  it("reward-train writes PEFT's SEQ_CLS adapter; score --json prints the library's rewards; an adapter for another base fails", async () => {
    const out = path.join(tmp, "rm");
    const t = await runCli(["reward-train", "--data", pairs, "--out", out, "--max-steps", "2", "--batch-size", "2", "--r", "4", "--target-modules", "q_proj,v_proj"], { timeoutMs: 300_000 });
    expect(t.status, t.stderr).toBe(0);
    const steps = stepLines(t.stdout);
    expect(steps).toHaveLength(2);
    for (const k of ["accuracy", "margin", "mean_reward"]) expect(steps[0]).toHaveProperty(k);
    const config = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8")) as Record<string, unknown>;
    expect(config).toMatchObject({ peft_type: "LORA", task_type: "SEQ_CLS" });
    expect(config.modules_to_save).toContain("score");

    const texts = path.join(tmp, "texts.jsonl");
    fs.writeFileSync(texts, [JSON.stringify({ text: "Tom and his friend played." }), JSON.stringify({ prompt: "Once", completion: " upon a time" })].join("\n") + "\n");
    const s1 = await runCli(["score", "--adapter", out, "--data", pairs, "--json"]);
    expect(s1.status, s1.stderr).toBe(0);
    const got = s1.stdout.trim().split("\n").map((l) => JSON.parse(l) as { chosen: number; rejected: number });
    expect(got).toHaveLength(4);
    expect(s1.stderr).toMatch(/chosen > rejected in \d of 4 pairs/);
    const s2 = await runCli(["score", "--adapter", out, "--data", texts, "--json"]);
    expect(s2.status, s2.stderr).toBe(0);
    const gotTexts = s2.stdout.trim().split("\n").map((l) => (JSON.parse(l) as { reward: number }).reward);

    const base = await loadRewardBase(MODEL);
    try {
      const rm = await RewardModel.fromPretrained(base, out);
      const tok = AutoTokenizer.fromPretrained(MODEL);
      const seqs = readPreferenceFile(pairs).flatMap((p) => { const e = tokenizeReward(tok, p); return [e.chosenIds, e.rejectedIds]; });
      const want = await rm.score(seqs);
      got.forEach((g, i) => {
        expect(g.chosen).toBeCloseTo(want[2 * i]!, 5);
        expect(g.rejected).toBeCloseTo(want[2 * i + 1]!, 5);
      });
      const wantTexts = await rm.score([
        tokenizeReward(tok, { prompt: "", chosen: "Tom and his friend played.", rejected: "x" }).chosenIds,
        tokenizeReward(tok, { prompt: "Once", chosen: " upon a time", rejected: "x" }).chosenIds,
      ]);
      gotTexts.forEach((g, i) => expect(g).toBeCloseTo(wantTexts[i]!, 5));
      expect(new Set(want.map((x) => x.toFixed(4))).size).toBeGreaterThan(1);
    } finally {
      base.backend.dispose();
    }

    // TRL's reward adapter was made for test/fixtures/hf/tiny-llama.
    const other = await runCli(["score", "--adapter", "test/fixtures/trl/reward-lora", "--data", pairs]);
    expect(other.status).toBe(1);
    const lines = other.stderr.trim().split("\n").filter((l) => l.startsWith("llama-ts"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/made for base_model_name_or_path "\.\.\/\.\.\/hf\/tiny-llama"/);
    expect(other.stdout).toBe("");
  });
});
