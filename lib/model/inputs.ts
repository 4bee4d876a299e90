/**
 * Checks and normalizes forward() inputs: ids in range, rectangular batches,
 * mask and position shapes. Errors name the argument, the index and what was
 * expected (InputError).
 */
import { InputError } from "../errors.js";
import type { LlamaConfig } from "../config.js";
import type { ForwardArgs } from "./types.js";

export interface PreparedInputs {
  B: number;
  T: number;
  /** [B*T] token ids, when inputIds were given. */
  ids?: Int32Array;
  /** [B, P+T] padding mask; undefined when there is no padding at all. */
  keyMask?: Uint8Array;
  /** [B][T] positions. */
  positions: number[][];
}

function checkRows(name: string, rows: unknown, B: number, width: number, what: string): asserts rows is number[][] {
  if (!Array.isArray(rows) || rows.length !== B) {
    throw new InputError(`${name}: expected ${B} rows (one per batch row), got ${Array.isArray(rows) ? rows.length : typeof rows}`);
  }
  rows.forEach((row, b) => {
    if (!Array.isArray(row) || row.length !== width) {
      throw new InputError(`${name}[${b}]: expected ${width} ${what}, got ${Array.isArray(row) ? row.length : typeof row}`);
    }
  });
}

export function prepareInputs(args: ForwardArgs, config: LlamaConfig, pastLength: number): PreparedInputs {
  let B: number;
  let T: number;
  let ids: Int32Array | undefined;
  if (args.inputIds !== undefined && args.inputsEmbeds !== undefined) {
    throw new InputError("give either inputIds or inputsEmbeds, not both");
  }
  if (args.inputIds !== undefined) {
    const rows = args.inputIds;
    if (!Array.isArray(rows) || rows.length === 0) throw new InputError("input_ids is empty: expected at least one sequence of token ids");
    B = rows.length;
    T = Array.isArray(rows[0]) ? rows[0].length : 0;
    if (T === 0) throw new InputError("input_ids is empty: expected at least one token per sequence");
    checkRows("input_ids", rows, B, T, "token ids (all rows must have the same length; pad them)");
    ids = new Int32Array(B * T);
    const V = config.vocab_size;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const id = rows[b]![t]!;
        if (!Number.isInteger(id) || id < 0 || id >= V) {
          throw new InputError(`input_ids[${b}][${t}] = ${JSON.stringify(id)}: expected a token id in [0, ${V}) (vocab_size ${V})`);
        }
        ids[b * T + t] = id;
      }
    }
  } else if (args.inputsEmbeds !== undefined) {
    const e = args.inputsEmbeds;
    if (e.shape.length !== 3 || e.shape[2] !== config.hidden_size) {
      throw new InputError(`inputs_embeds: expected shape [batch, seq, ${config.hidden_size}], got [${e.shape.join(", ")}]`);
    }
    [B, T] = e.shape as [number, number];
    if (B === 0 || T === 0) throw new InputError("inputs_embeds is empty: expected at least one position");
  } else {
    throw new InputError("forward: give inputIds or inputsEmbeds");
  }

  const S = pastLength + T;
  let keyMask: Uint8Array | undefined;
  if (args.attentionMask !== undefined) {
    checkRows("attention_mask", args.attentionMask, B, S, `entries (past ${pastLength} + new ${T} tokens)`);
    keyMask = new Uint8Array(B * S);
    let padded = false;
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < S; j++) {
        const m = args.attentionMask[b]![j];
        if (m !== 0 && m !== 1) throw new InputError(`attention_mask[${b}][${j}] = ${JSON.stringify(m)}: expected 0 or 1`);
        keyMask[b * S + j] = m;
        if (m === 0) padded = true;
      }
    }
    if (!padded) keyMask = undefined;
  }

  let positions: number[][];
  if (args.positionIds !== undefined) {
    checkRows("position_ids", args.positionIds, B, T, "positions");
    args.positionIds.forEach((row, b) => row.forEach((p, t) => {
      if (!Number.isInteger(p) || p < 0) throw new InputError(`position_ids[${b}][${t}] = ${JSON.stringify(p)}: expected a non-negative integer`);
    }));
    positions = args.positionIds;
  } else {
    // HF's plain forward: positions continue the cache (cache_position), the same for every row.
    const row = Array.from({ length: T }, (_, t) => pastLength + t);
    positions = Array.from({ length: B }, () => row);
  }
  return { B, T, ids, keyMask, positions };
}
