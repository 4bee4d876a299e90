/**
 * Running a model with hooks: `runWithCache` captures named activations into
 * an ActivationCache; `runWithHooks` lets hooks read or replace activations
 * (ablation, patching, steering). Both are thin layers over the model's own
 * `forward({ hooks })`, so they work on every backend (on WebGPU the values
 * are read back to the host) and cost nothing when nothing is hooked: the
 * hook picker answers `undefined` for every point it does not need, so the
 * model never builds per-head z or patterns it would not otherwise compute.
 */
import { InputError } from "../errors.js";
import type { LlamaConfig } from "../config.js";
import type { Tensor } from "../tensor/tensor.js";
import type { CausalLMOutput, ForwardArgs, HookFn, HookMap } from "../model/types.js";
import { ActivationCache } from "./cache.js";
import { hookPointNames, selectHookPoints, type HookSelector } from "./hook-points.js";
import { cloneTensor } from "./math.js";

/** Anything with a hookable forward pass: LlamaForCausalLM (and LlamaForSequenceClassification). */
export interface HookableModel {
  readonly config: LlamaConfig;
  forward(args: ForwardArgs): Promise<CausalLMOutput>;
}

/** Token ids of one sequence, a batch of them, or full forward arguments (without hooks). */
export type RunInput = readonly number[] | readonly (readonly number[])[] | Omit<ForwardArgs, "hooks">;

/** One hook at one point. Several specs may name the same point: they run in order, each seeing the previous result. */
export interface HookSpec {
  name: string;
  fn: HookFn;
}

/** Hooks as a map, a picker function, or a list of specs. */
export type Hooks = HookMap | readonly HookSpec[];

/** Normalizes a RunInput to forward arguments. */
export function toForwardArgs(input: RunInput): ForwardArgs {
  if (Array.isArray(input)) {
    if (input.length === 0) throw new InputError("no input tokens given");
    const batch = typeof input[0] === "number" ? [input as readonly number[]] : (input as readonly (readonly number[])[]);
    return { inputIds: batch.map((r) => [...r]), useCache: false };
  }
  const args = { ...(input as ForwardArgs) };
  if ("hooks" in args && args.hooks) throw new InputError("pass hooks as runWithHooks' argument, not inside the forward arguments");
  args.useCache ??= false; // analyses never continue a sequence; no KV cache to build
  return args;
}

/** Turns any Hooks form into a picker returning the chain of hook functions for a name. */
function chainsOf(hooks: Hooks | undefined, numLayers: number): (name: string) => HookFn[] {
  if (!hooks) return () => [];
  if (typeof hooks === "function") {
    const pick = hooks;
    return (name) => {
      const fn = pick(name);
      return fn ? [fn] : [];
    };
  }
  const known = new Set(hookPointNames(numLayers));
  const byName = new Map<string, HookFn[]>();
  const specs: readonly HookSpec[] = Array.isArray(hooks)
    ? (hooks as readonly HookSpec[])
    : Object.entries(hooks as Record<string, HookFn>).map(([name, fn]) => ({ name, fn }));
  for (const s of specs) {
    if (!known.has(s.name)) {
      throw new InputError(`hook on unknown point "${s.name}" (this model has ${numLayers} layers; e.g. "layers.0.self_attn.z", "layers.${numLayers - 1}.resid_post")`);
    }
    if (typeof s.fn !== "function") throw new InputError(`hook for "${s.name}" is not a function`);
    byName.set(s.name, [...(byName.get(s.name) ?? []), s.fn]);
  }
  return (name) => byName.get(name) ?? [];
}

/**
 * Builds the model's HookMap from intervention chains plus an optional
 * capture set. Interventions run first; the cache records the value the rest
 * of the forward pass will see (after any replacement).
 */
function buildHookMap(chains: (name: string) => HookFn[], capture?: { names: Set<string>; store: Map<string, Tensor> }): HookMap | undefined {
  const picker = (name: string): HookFn | undefined => {
    const fns = chains(name);
    const capturing = capture?.names.has(name) ?? false;
    if (!fns.length && !capturing) return undefined;
    return async (value: Tensor, pointName: string) => {
      let cur = value;
      let replaced = false;
      for (const fn of fns) {
        const r = await fn(cur, pointName);
        if (r) {
          cur = r;
          replaced = true;
        }
      }
      // A replacement is handed to the model (which may take over its buffer): cache a copy.
      if (capturing) capture!.store.set(pointName, replaced ? cloneTensor(cur) : cur);
      return replaced ? cur : undefined;
    };
  };
  return picker;
}

/** Runs the model with hooks that may read or replace activations; returns the forward output. */
export async function runWithHooks(model: HookableModel, input: RunInput, hooks: Hooks): Promise<CausalLMOutput> {
  const args = toForwardArgs(input);
  return model.forward({ ...args, hooks: buildHookMap(chainsOf(hooks, model.config.num_hidden_layers)) });
}

export interface RunWithCacheOptions {
  /** Which points to capture (default: all of them). */
  names?: HookSelector;
  /** Interventions applied during the same run (the cache sees their results). */
  hooks?: Hooks;
}

export interface RunWithCacheResult {
  output: CausalLMOutput;
  /** Shortcut for output.logits [B, T, V]. */
  logits: Tensor;
  cache: ActivationCache;
}

/** Runs the model once and captures the selected activations (TransformerLens's run_with_cache). */
export async function runWithCache(model: HookableModel, input: RunInput, options: RunWithCacheOptions = {}): Promise<RunWithCacheResult> {
  const L = model.config.num_hidden_layers;
  const names = new Set(selectHookPoints(L, options.names));
  const store = new Map<string, Tensor>();
  const args = toForwardArgs(input);
  const output = await model.forward({ ...args, hooks: buildHookMap(chainsOf(options.hooks, L), { names, store }) });
  // Keep forward order (hooks fire in that order already; sort defensively by the canonical list).
  const order = hookPointNames(L).filter((n) => store.has(n));
  const cache = new ActivationCache(order.map((n) => [n, store.get(n)!] as [string, Tensor]), L);
  return { output, logits: output.logits, cache };
}
