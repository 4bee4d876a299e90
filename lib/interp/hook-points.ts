/**
 * Naming and selecting the model's hook points. The names are the model's
 * (lib/model/types.ts `hookPointNames`): `embed`, `layers.{i}.self_attn.pattern`,
 * `layers.{i}.resid_post`, …, `norm`, `logits`. This file resolves a user's
 * selection (a list, a glob like "layers.*.self_attn.pattern", a RegExp or a
 * predicate) into the exact set, rejecting names the model does not have.
 */
import { InputError } from "../errors.js";
import { hookPointNames } from "../model/types.js";

export { hookPointNames };

/** The per-layer hook point suffixes, in forward order. */
export const LAYER_POINTS = [
  "input_layernorm", "self_attn.q", "self_attn.k", "self_attn.v", "self_attn.pattern", "self_attn.z",
  "self_attn.o_proj", "resid_mid", "post_attention_layernorm", "mlp.act", "mlp.down_proj", "resid_post",
] as const;
export type LayerPoint = (typeof LAYER_POINTS)[number];

/** The full name of a per-layer point: `actName("resid_post", 3)` → "layers.3.resid_post". */
export function actName(point: LayerPoint, layer: number): string {
  return `layers.${layer}.${point}`;
}

/**
 * The residual stream entering layer i: "embed" for layer 0, else the previous
 * layer's resid_post (the model has no separate resid_pre point: they are the same tensor).
 */
export function residPreName(layer: number): string {
  return layer === 0 ? "embed" : actName("resid_post", layer - 1);
}

/** Which hook points to capture: exact names, a glob ("*" = any run of characters), a RegExp, or a predicate. */
export type HookSelector = readonly string[] | string | RegExp | ((name: string) => boolean);

function globToRegExp(glob: string): RegExp {
  const esc = glob.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
  return new RegExp(`^${esc}$`);
}

/**
 * The hook point names a selector picks, in forward order. Exact names that
 * the model does not have are an error (naming the bad one and an example);
 * a glob, RegExp or predicate that matches nothing is an error too, so a typo
 * cannot silently capture nothing.
 */
export function selectHookPoints(numLayers: number, selector?: HookSelector): string[] {
  const all = hookPointNames(numLayers);
  if (selector === undefined) return all;
  if (Array.isArray(selector)) {
    const known = new Set(all);
    for (const n of selector as readonly string[]) {
      if (!known.has(n)) {
        throw new InputError(
          `unknown hook point "${n}" (this model has ${numLayers} layers; names look like "embed", "layers.0.self_attn.pattern", "layers.${numLayers - 1}.resid_post", "norm", "logits")`,
        );
      }
    }
    const want = new Set(selector as readonly string[]);
    return all.filter((n) => want.has(n));
  }
  const test: (n: string) => boolean =
    typeof selector === "function" ? selector : typeof selector === "string" ? (n) => globToRegExp(selector).test(n) : (n) => (selector as RegExp).test(n);
  const picked = all.filter((n) => test(n));
  if (!picked.length) throw new InputError(`hook selector ${String(selector)} matches no hook point of this model`);
  return picked;
}
