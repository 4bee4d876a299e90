/**
 * The tokenizer settings a HF model folder carries next to the vocab:
 * `tokenizer_config.json` (special tokens, add_bos/eos, max length, padding
 * side, chat template, added_tokens_decoder) and `special_tokens_map.json`.
 * Parsed into one camelCase object; a field of the wrong type is a
 * ConfigError naming the file and field.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, FormatError } from "../errors.js";
import { addedTokenFromJson, type AddedToken } from "./added-tokens.js";

export interface TokenizerConfig {
  bosToken?: string | null;
  eosToken?: string | null;
  unkToken?: string | null;
  padToken?: string | null;
  addBosToken?: boolean;
  addEosToken?: boolean;
  /** Longest input the model accepts (truncation default). */
  modelMaxLength?: number;
  paddingSide?: "left" | "right";
  truncationSide?: "left" | "right";
  /** One template, or several by name (HF's list of {name, template}). */
  chatTemplate?: string | Record<string, string>;
  cleanUpTokenizationSpaces?: boolean;
  /** added_tokens_decoder, sorted by id. */
  addedTokens?: AddedToken[];
  additionalSpecialTokens?: string[];
  tokenizerClass?: string;
}

type Json = Record<string, unknown>;

function readJson(file: string): Json | null {
  if (!fs.existsSync(file)) return null;
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (err) {
    throw new FormatError(file, `not valid JSON (${(err as Error).message})`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new FormatError(file, "must be a JSON object");
  return v as Json;
}

/** A special token field: a string, null, or an AddedToken dict {"content": ...}. */
function tokenField(obj: Json, key: string, file: string): string | null | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (v === null || typeof v === "string") return v;
  if (typeof v === "object" && typeof (v as Json).content === "string") return (v as Json).content as string;
  throw new ConfigError(`${file}: field "${key}" must be a string, null or {"content": ...}, got ${JSON.stringify(v)}`);
}

function boolField(obj: Json, key: string, file: string): boolean | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") throw new ConfigError(`${file}: field "${key}" must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function sideField(obj: Json, key: string, file: string): "left" | "right" | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (v !== "left" && v !== "right") throw new ConfigError(`${file}: field "${key}" must be "left" or "right", got ${JSON.stringify(v)}`);
  return v;
}

/** Parses a tokenizer_config.json object (plus an optional special_tokens_map.json object layered under it). */
export function parseTokenizerConfig(cfg: Json, file: string, specialMap?: Json | null, mapFile = "special_tokens_map.json"): TokenizerConfig {
  const out: TokenizerConfig = {};
  for (const [src, f] of [[specialMap ?? {}, mapFile], [cfg, file]] as const) {
    for (const [key, field] of [["bos_token", "bosToken"], ["eos_token", "eosToken"], ["unk_token", "unkToken"], ["pad_token", "padToken"]] as const) {
      const v = tokenField(src, key, f);
      if (v !== undefined) out[field] = v;
    }
    const extra = src.additional_special_tokens;
    if (Array.isArray(extra)) out.additionalSpecialTokens = extra.map((t, i) => tokenField({ t }, "t", `${f} additional_special_tokens[${i}]`) ?? "");
  }
  out.addBosToken = boolField(cfg, "add_bos_token", file);
  out.addEosToken = boolField(cfg, "add_eos_token", file);
  out.cleanUpTokenizationSpaces = boolField(cfg, "clean_up_tokenization_spaces", file);
  out.paddingSide = sideField(cfg, "padding_side", file);
  out.truncationSide = sideField(cfg, "truncation_side", file);
  const mml = cfg.model_max_length;
  if (typeof mml === "number" && Number.isFinite(mml) && mml > 0) out.modelMaxLength = Math.min(mml, Number.MAX_SAFE_INTEGER);
  if (typeof cfg.tokenizer_class === "string") out.tokenizerClass = cfg.tokenizer_class;
  const ct = cfg.chat_template;
  if (typeof ct === "string") out.chatTemplate = ct;
  else if (Array.isArray(ct)) {
    const named: Record<string, string> = {};
    ct.forEach((t, i) => {
      const o = t as Json;
      if (typeof o?.name !== "string" || typeof o.template !== "string") throw new ConfigError(`${file}: chat_template[${i}] must be {"name": ..., "template": ...}`);
      named[o.name] = o.template;
    });
    out.chatTemplate = named;
  } else if (ct !== undefined && ct !== null) throw new ConfigError(`${file}: chat_template must be a string or a list of {name, template}`);
  const atd = cfg.added_tokens_decoder;
  if (atd && typeof atd === "object") {
    out.addedTokens = Object.entries(atd as Record<string, Json>)
      .map(([id, t]) => {
        const n = Number(id);
        if (!Number.isInteger(n) || n < 0 || typeof t?.content !== "string") throw new ConfigError(`${file}: added_tokens_decoder["${id}"] needs an integer id key and a string "content"`);
        return addedTokenFromJson(n, t.content, t);
      })
      .sort((a, b) => a.id - b.id);
  }
  for (const k of Object.keys(out) as (keyof TokenizerConfig)[]) if (out[k] === undefined) delete out[k];
  return out;
}

/** Reads tokenizer_config.json and special_tokens_map.json from a folder (both optional). */
export function readTokenizerConfig(dir: string): TokenizerConfig {
  const cfgFile = path.join(dir, "tokenizer_config.json");
  const mapFile = path.join(dir, "special_tokens_map.json");
  const cfg = readJson(cfgFile);
  const map = readJson(mapFile);
  if (!cfg && !map) return {};
  return parseTokenizerConfig(cfg ?? {}, cfgFile, map, mapFile);
}
