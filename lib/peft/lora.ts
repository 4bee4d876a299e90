/**
 * PEFT LoRA adapters (`adapter_config.json` + `adapter_model.safetensors`,
 * keys `base_model.model.<module>.lora_A.weight` [r, in] and `.lora_B.weight`
 * [out, r]) on our LLaMA models.
 *
 * A LoRA layer computes y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ = x·(W + s·B·A)ᵀ with
 * s = lora_alpha / r. The model's forward fuses q/k/v and gate/up into one
 * pass over the weights, so an active adapter is applied as that effective
 * weight: `loadLora` swaps each targeted Linear's weight for W + s·B·A kept
 * in float32 (so an f16/bf16 base loses nothing to rounding while the
 * adapter is on) and keeps the base tensor untouched; `unload` puts the base
 * weights back bit for bit; `merge` makes it permanent, rounded to the base
 * weight's dtype (PEFT's merge_and_unload), and frees the base copies.
 *
 * A SEQ_CLS adapter also carries its classification head whole (PEFT's
 * modules_to_save, key `base_model.model.score.weight`); loading it swaps the
 * model's `score.weight` the same way.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError, LlamaError } from "../errors.js";
import type { Backend, DeviceTensor } from "../backend/backend.js";
import type { ParameterRef } from "../model/modules.js";
import { SafetensorsFile } from "../io/safetensors.js";
import { TorchCheckpoint } from "../io/pth.js";
import { Tensor } from "../tensor/tensor.js";
import { f32ToBf16, f32ToF16 } from "../tensor/dtype.js";
import { type LoraConfig, isTargeted, loraScaling, readLoraConfig } from "./lora-config.js";

/** One adapted module: A [r, in], B [out, r] (float32 host tensors) and its scaling. */
export interface LoraModuleWeights {
  readonly module: string;
  readonly A: Tensor;
  readonly B: Tensor;
  readonly scaling: number;
}

export interface LoraAdapter {
  readonly source: string;
  readonly config: LoraConfig;
  /** Keyed by module name, e.g. `model.layers.0.self_attn.q_proj`. */
  readonly modules: ReadonlyMap<string, LoraModuleWeights>;
  /** SEQ_CLS: the trained classification head [num_labels, hidden] (modules_to_save), float32. */
  readonly head?: Tensor;
}

/** What a model must offer to take an adapter (LlamaForCausalLM, LlamaModel, LlamaForSequenceClassification). */
export interface AdaptableModel {
  readonly backend: Backend;
  parameters(): ParameterRef[];
}

const KEY = /^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/;
/** A modules_to_save head as PEFT saves it (the wrapper's copy under the module's own name). */
const HEAD_KEY = /^(?:base_model\.model\.)?(?:score|classifier)(?:\.modules_to_save\.[^.]+)?\.weight$/;

/** Reads an adapter folder (adapter_model.safetensors, or a torch-zip adapter_model.bin). */
export function readLoraAdapter(dir: string): LoraAdapter {
  const config = readLoraConfig(path.join(dir, "adapter_config.json"));
  const st = path.join(dir, "adapter_model.safetensors");
  const bin = path.join(dir, "adapter_model.bin");
  let names: string[];
  let read: (n: string) => Tensor;
  let close: () => void;
  let file: string;
  if (fs.existsSync(st)) {
    const f = SafetensorsFile.open(st);
    [names, read, close, file] = [f.names(), (n) => f.read(n), () => f.close(), st];
  } else if (fs.existsSync(bin)) {
    const f = TorchCheckpoint.open(bin);
    [names, read, close, file] = [f.names(), (n) => f.read(n), () => f.close(), bin];
  } else {
    throw new FormatError(dir, "no adapter_model.safetensors or adapter_model.bin");
  }
  try {
    const parts = new Map<string, { A?: string; B?: string }>();
    let headName: string | undefined;
    for (const n of names) {
      if (config.modules_to_save && HEAD_KEY.test(n)) {
        headName = n;
        continue;
      }
      const m = KEY.exec(n);
      if (!m) {
        if (/lora_embedding_/.test(n)) throw new FormatError(file, `tensor "${n}": LoRA on embeddings is not supported`);
        throw new FormatError(file, `tensor "${n}" is not a LoRA weight (expected <module>.lora_A.weight / .lora_B.weight)`);
      }
      const entry = parts.get(m[1]!) ?? {};
      entry[m[2] as "A" | "B"] = n;
      parts.set(m[1]!, entry);
    }
    const modules = new Map<string, LoraModuleWeights>();
    for (const [module, { A, B }] of parts) {
      if (!A || !B) throw new FormatError(file, `module "${module}" has lora_${A ? "A" : "B"} but no lora_${A ? "B" : "A"}`);
      if (!isTargeted(config, module)) throw new FormatError(file, `module "${module}" has LoRA weights but is not in target_modules ${JSON.stringify(config.target_modules)}`);
      const a = read(A).float();
      const b = read(B).float();
      const { r, scaling } = loraScaling(config, module);
      if (a.rank !== 2 || b.rank !== 2 || a.shape[0] !== r || b.shape[1] !== r) {
        throw new FormatError(file, `module "${module}": lora_A [${a.shape}] / lora_B [${b.shape}] do not have rank ${r} (expected [${r}, in] and [out, ${r}])`);
      }
      modules.set(module, { module, A: a, B: b, scaling });
    }
    if (modules.size === 0) throw new FormatError(file, "the adapter holds no LoRA weights");
    if (config.modules_to_save && !headName) throw new FormatError(file, `modules_to_save ${JSON.stringify(config.modules_to_save)} but no base_model.model.score.weight tensor`);
    const head = headName ? read(headName).float() : undefined;
    if (head && head.rank !== 2) throw new FormatError(file, `tensor "${headName}" has shape [${head.shape}], expected [num_labels, hidden]`);
    return { source: dir, config, modules, head };
  } finally {
    close();
  }
}

/** W + s·B·A for W [out, in] (host f32), A [r, in], B [out, r]; accumulated in float64, rounded once. */
export function mergedWeight(W: Float32Array, w: LoraModuleWeights): Float32Array {
  const [r, inF] = w.A.shape as [number, number];
  const outF = w.B.shape[0]!;
  if (W.length !== outF * inF) throw new LlamaError(`LoRA ${w.module}: base weight has ${W.length} elements, adapter implies [${outF}, ${inF}]`);
  const A = w.A.toFloat32();
  const B = w.B.toFloat32();
  const out = new Float32Array(W.length);
  const row = new Float64Array(inF);
  for (let o = 0; o < outF; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const b = B[o * r + k]!;
      if (b === 0) continue;
      const aOff = k * inF;
      for (let i = 0; i < inF; i++) row[i]! += b * A[aOff + i]!;
    }
    for (let i = 0; i < inF; i++) out[o * inF + i] = W[o * inF + i]! + w.scaling * row[i]!;
  }
  return out;
}

interface Swapped {
  readonly ref: ParameterRef;
  readonly base: DeviceTensor;
  readonly active: DeviceTensor;
}

const ACTIVE = new WeakMap<AdaptableModel, LoadedLora>();

/** An adapter applied to a model; `unload()` or `merge()` ends it. */
export class LoadedLora {
  private done = false;

  constructor(
    readonly model: AdaptableModel,
    readonly adapter: LoraAdapter,
    private readonly swapped: readonly Swapped[],
  ) {}

  /** Names of the weights the adapter changes. */
  get targets(): string[] {
    return this.swapped.map((s) => s.ref.name);
  }

  private finish(): void {
    if (this.done) throw new LlamaError(`LoRA adapter ${this.adapter.source} was already unloaded or merged`);
    this.done = true;
    ACTIVE.delete(this.model);
  }

  /** Restores the base weights exactly (the adapter's effective weights are freed). */
  unload(): void {
    this.finish();
    const be = this.model.backend;
    for (const s of this.swapped) {
      s.ref.set(s.base);
      be.release(s.active);
    }
  }

  /** Folds the adapter into the base weights permanently, in each base weight's dtype. */
  merge(): void {
    this.finish();
    const be = this.model.backend;
    for (const s of this.swapped) {
      if (s.base.dtype === "f32") {
        be.release(s.base);
        continue; // the active weight already is W + s·B·A in f32
      }
      // Round to the base dtype as PEFT does when merging into an f16/bf16 layer.
      const host = activeHost.get(s.active)!;
      const bits = s.base.dtype === "f16" ? f32ToF16(host) : f32ToBf16(host);
      const merged = be.upload(new Tensor(bits, s.active.shape, s.base.dtype));
      s.ref.set(merged);
      be.release(s.active);
      be.release(s.base);
    }
  }
}

/** Host copies of active f32 weights that a later merge into f16/bf16 rounds from. */
const activeHost = new WeakMap<DeviceTensor, Float32Array>();

/**
 * Applies a LoRA adapter (a folder or one read with readLoraAdapter) to a
 * model. Every module of the adapter must exist in the model with matching
 * shape; one adapter at a time.
 */
export async function loadLora(model: AdaptableModel, adapterOrDir: LoraAdapter | string): Promise<LoadedLora> {
  const adapter = typeof adapterOrDir === "string" ? readLoraAdapter(adapterOrDir) : adapterOrDir;
  if (ACTIVE.has(model)) throw new LlamaError(`a LoRA adapter (${ACTIVE.get(model)!.adapter.source}) is already loaded on this model: unload or merge it first`);
  const params = new Map(model.parameters().map((p) => [p.name, p]));
  const be = model.backend;
  const plan: { ref: ParameterRef; w: LoraModuleWeights }[] = [];
  for (const w of adapter.modules.values()) {
    const ref = params.get(`${w.module}.weight`);
    if (!ref) throw new FormatError(adapter.source, `module "${w.module}" of the adapter has no weight in this model`);
    const [outF, inF] = ref.get().shape as [number, number];
    if (w.A.shape[1] !== inF || w.B.shape[0] !== outF) {
      throw new FormatError(adapter.source, `module "${w.module}": lora_A [${w.A.shape}] / lora_B [${w.B.shape}] do not fit the base weight [${outF}, ${inF}]`);
    }
    plan.push({ ref, w });
  }
  let headPlan: { ref: ParameterRef; head: Tensor } | undefined;
  if (adapter.head) {
    const ref = params.get("score.weight");
    if (!ref) throw new FormatError(adapter.source, "the adapter carries a classification head (SEQ_CLS) but the model has no score head (load it as LlamaForSequenceClassification)");
    const shape = ref.get().shape;
    if (adapter.head.shape[0] !== shape[0] || adapter.head.shape[1] !== shape[1]) {
      throw new FormatError(adapter.source, `score head [${adapter.head.shape}] does not fit the model's score.weight [${shape}]`);
    }
    headPlan = { ref, head: adapter.head };
  }
  const swapped: Swapped[] = [];
  for (const { ref, w } of plan) {
    const base = ref.get();
    const host = (await be.read(base)).toFloat32();
    const eff = mergedWeight(host, w);
    const active = be.upload(new Tensor(eff, base.shape, "f32"));
    if (base.dtype !== "f32") activeHost.set(active, eff);
    ref.set(active);
    swapped.push({ ref, base, active });
  }
  if (headPlan) {
    const base = headPlan.ref.get();
    const host = headPlan.head.toFloat32();
    const active = be.upload(new Tensor(host.slice(), base.shape, "f32"));
    if (base.dtype !== "f32") activeHost.set(active, host);
    headPlan.ref.set(active);
    swapped.push({ ref: headPlan.ref, base, active });
  }
  const loaded = new LoadedLora(model, adapter, swapped);
  ACTIVE.set(model, loaded);
  return loaded;
}

/** The adapter currently loaded on a model, if any. */
export function activeLora(model: AdaptableModel): LoadedLora | undefined {
  return ACTIVE.get(model);
}
