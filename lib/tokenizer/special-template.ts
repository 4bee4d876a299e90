/**
 * Where special tokens go around one sequence or a pair: HF's
 * TemplateProcessing, which also expresses LlamaTokenizer's
 * `bos? + A + eos? (+ bos? + B + eos?)` rule. One structure drives
 * encode(), build_inputs_with_special_tokens, get_special_tokens_mask and
 * create_token_type_ids_from_sequences, so they can never disagree.
 */
import { FormatError } from "../errors.js";

export type TemplatePart =
  | { readonly kind: "special"; readonly ids: readonly number[]; readonly typeId: number }
  | { readonly kind: "sequence"; readonly which: "A" | "B"; readonly typeId: number };

export interface SpecialTemplate {
  readonly single: readonly TemplatePart[];
  readonly pair: readonly TemplatePart[];
}

/** One built sequence with, per position, whether it is special and its segment (type id). */
export interface BuiltSequence {
  readonly ids: number[];
  readonly specialMask: number[];
  readonly typeIds: number[];
}

export const EMPTY_TEMPLATE: SpecialTemplate = {
  single: [{ kind: "sequence", which: "A", typeId: 0 }],
  pair: [{ kind: "sequence", which: "A", typeId: 0 }, { kind: "sequence", which: "B", typeId: 1 }],
};

/** LlamaTokenizer's rule: bos/eos around each sequence when add_bos_token/add_eos_token. */
export function llamaTemplate(bosId: number | null, eosId: number | null): SpecialTemplate {
  const around = (which: "A" | "B", typeId: number): TemplatePart[] => [
    ...(bosId !== null ? [{ kind: "special" as const, ids: [bosId], typeId }] : []),
    { kind: "sequence" as const, which, typeId },
    ...(eosId !== null ? [{ kind: "special" as const, ids: [eosId], typeId }] : []),
  ];
  return { single: around("A", 0), pair: [...around("A", 0), ...around("B", 1)] };
}

export function applyTemplate(t: SpecialTemplate, a: readonly number[], b?: readonly number[]): BuiltSequence {
  const parts = b === undefined ? t.single : t.pair;
  const out: BuiltSequence = { ids: [], specialMask: [], typeIds: [] };
  for (const p of parts) {
    const ids = p.kind === "special" ? p.ids : p.which === "A" ? a : (b ?? []);
    const special = p.kind === "special" ? 1 : 0;
    for (const id of ids) {
      out.ids.push(id);
      out.specialMask.push(special);
      out.typeIds.push(p.typeId);
    }
  }
  return out;
}

export function countSpecials(t: SpecialTemplate, pair: boolean): number {
  return (pair ? t.pair : t.single).reduce((n, p) => n + (p.kind === "special" ? p.ids.length : 0), 0);
}

type Json = Record<string, unknown>;

/**
 * Builds the template of a tokenizer.json `post_processor`: TemplateProcessing
 * (possibly inside a Sequence next to ByteLevel, which does not change ids),
 * BertProcessing or RobertaProcessing. `tokenId` resolves token strings.
 */
export function templateFromPostProcessor(spec: unknown, file: string, tokenId: (t: string) => number | undefined): SpecialTemplate {
  if (spec === null || spec === undefined) return EMPTY_TEMPLATE;
  const s = spec as Json;
  switch (s.type) {
    case "Sequence": {
      const procs = Array.isArray(s.processors) ? s.processors : [];
      let result = EMPTY_TEMPLATE;
      for (const p of procs) {
        const t = templateFromPostProcessor(p, file, tokenId);
        if (t !== EMPTY_TEMPLATE) result = t;
      }
      return result;
    }
    case "ByteLevel":
      return EMPTY_TEMPLATE; // only adjusts offsets
    case "TemplateProcessing": {
      const specials = (s.special_tokens ?? {}) as Record<string, { ids?: unknown }>;
      const parse = (arr: unknown, where: string): TemplatePart[] => {
        if (!Array.isArray(arr)) throw new FormatError(file, `post_processor.${where} must be an array`);
        return arr.map((item, i) => {
          const it = item as Json;
          if (it.SpecialToken) {
            const st = it.SpecialToken as Json;
            const name = String(st.id);
            const entry = specials[name];
            const ids = Array.isArray(entry?.ids) ? (entry.ids as unknown[]).map(Number) : [tokenId(name)];
            if (ids.some((x) => x === undefined || !Number.isInteger(x))) {
              throw new FormatError(file, `post_processor.${where}[${i}]: special token ${JSON.stringify(name)} has no id`);
            }
            return { kind: "special" as const, ids: ids as number[], typeId: Number(st.type_id ?? 0) };
          }
          if (it.Sequence) {
            const sq = it.Sequence as Json;
            return { kind: "sequence" as const, which: sq.id === "B" ? ("B" as const) : ("A" as const), typeId: Number(sq.type_id ?? 0) };
          }
          throw new FormatError(file, `post_processor.${where}[${i}] is neither SpecialToken nor Sequence`);
        });
      };
      return { single: parse(s.single, "single"), pair: parse(s.pair, "pair") };
    }
    case "BertProcessing":
    case "RobertaProcessing": {
      const cls = s.cls as [string, number] | undefined;
      const sep = s.sep as [string, number] | undefined;
      if (!Array.isArray(cls) || !Array.isArray(sep)) throw new FormatError(file, `post_processor ${s.type} needs cls and sep`);
      const C = { kind: "special" as const, ids: [cls[1]], typeId: 0 };
      const S0 = { kind: "special" as const, ids: [sep[1]], typeId: 0 };
      const bType = s.type === "BertProcessing" ? 1 : 0;
      const S1 = { kind: "special" as const, ids: [sep[1]], typeId: bType };
      const A = { kind: "sequence" as const, which: "A" as const, typeId: 0 };
      const B = { kind: "sequence" as const, which: "B" as const, typeId: bType };
      return s.type === "BertProcessing"
        ? { single: [C, A, S0], pair: [C, A, S0, B, S1] }
        : { single: [C, A, S0], pair: [C, A, S0, { ...S0, typeId: 0 }, B, S1] };
    }
    default:
      throw new FormatError(file, `post_processor: unsupported type "${String(s.type)}" (supported: TemplateProcessing, Sequence, ByteLevel, BertProcessing, RobertaProcessing)`);
  }
}
