/**
 * The WebGPU TokenSelector (lib/backend/token-select.ts): generate's
 * per-step choice of the next token, recorded behind the forward pass in the
 * same command buffer, so a decode step is one submit and reads back 4 bytes
 * per row (the chosen id with its EOS/error bits).
 *
 * Device state, made once per generate call: the EOS list, the seen-id flags
 * of every row (repetition penalty; prompt ids set at creation, each chosen id
 * set by the kernel), the finished flags, the output ids and, when sampling,
 * the candidate list and the per-step uniforms.
 */
import { InputError } from "../../lib/errors.js";
import type { DeviceTensor } from "../../lib/backend/backend.js";
import type { TokenChoice, TokenSelectSettings, TokenSelector, TokenStep } from "../../lib/backend/token-select.js";
import type { PooledBuffer } from "../buffers.js";
import type { Param } from "../executor.js";
import { EOS_BIT, ERR_BIT, SELECT_MAX_K, selectArgmax, selectDraw, selectTopK } from "../kernels/select.js";
import { act, type GpuRuntime } from "../runtime.js";

/** The selector for these settings, or undefined when the GPU kernels cannot honour them (top_k 0, or above 256 and V). */
export function createTokenSelector(rt: GpuRuntime, s: TokenSelectSettings): TokenSelector | undefined {
  if (s.sampling && !(s.sampling.topK >= 1 && Math.min(s.sampling.topK, s.vocabSize) <= SELECT_MAX_K)) return undefined;
  return new GpuTokenSelector(rt, s);
}

class GpuTokenSelector implements TokenSelector {
  private readonly eos: PooledBuffer;
  private readonly seen: PooledBuffer;
  private readonly finished: PooledBuffer;
  private readonly out: PooledBuffer;
  private readonly cand: PooledBuffer | undefined;
  private readonly uniforms: PooledBuffer | undefined;
  private readonly k: number;
  private readonly cap: number;
  private disposed = false;

  constructor(private readonly rt: GpuRuntime, private readonly s: TokenSelectSettings) {
    const { rows, vocabSize: V } = s;
    const pool = rt.pool;
    this.eos = pool.acquireForWrite(Math.max(4, s.eosTokenIds.length * 4));
    if (s.eosTokenIds.length) rt.exec.write(this.eos, Uint32Array.from(s.eosTokenIds));
    if (s.repetitionPenalty !== 1) {
      // HF penalises every id of input_ids, padding included.
      const flags = new Uint32Array(rows * V);
      s.prompts.forEach((ids, r) => {
        for (const id of ids) if (id >= 0 && id < V) flags[r * V + id] = 1;
      });
      this.seen = pool.acquireForWrite(flags.byteLength);
      rt.exec.write(this.seen, flags);
    } else {
      this.seen = pool.acquire(4);
    }
    this.finished = pool.acquireForWrite(rows * 4);
    rt.exec.write(this.finished, new Uint32Array(rows));
    this.out = pool.acquire(rows * 4);
    this.k = s.sampling ? Math.min(s.sampling.topK, V) : 1;
    this.cap = Math.min(SELECT_MAX_K, V);
    if (s.sampling) {
      this.cand = pool.acquire(rows * this.cap * 8);
      this.uniforms = pool.acquireForWrite(rows * 4);
    }
  }

  select(logitsIn: DeviceTensor, step: TokenStep): Promise<TokenChoice> {
    const { rows, vocabSize: V, sampling } = this.s;
    const rt = this.rt;
    rt.ctx.assertAlive();
    if (this.disposed) throw new InputError("token selector: used after dispose()");
    const x = act(logitsIn, "token selector logits");
    if (x.size !== rows * V) throw new InputError(`token selector: logits have shape [${x.shape.join(", ")}], expected ${rows} rows of ${V}`);
    const hasEos = this.s.eosTokenIds.length > 0;
    const params: Param[] = [
      V, this.s.eosTokenIds.length, this.s.repetitionPenalty !== 1 ? 1 : 0, step.suppressEos && hasEos ? 1 : 0,
      this.s.padTokenId ?? 0, hasEos && this.s.padTokenId !== null ? 1 : 0, this.k, this.cap,
      { f32: this.s.repetitionPenalty }, { f32: sampling?.temperature ?? 1 }, { f32: sampling?.topP ?? 1 }, { f32: sampling?.minP ?? 0 },
      { f32: -Infinity },
    ];
    if (!sampling) {
      rt.exec.dispatch(selectArgmax(), [{ buf: x.buf }, { buf: this.eos }, { buf: this.seen }, { buf: this.finished }, { buf: this.out }], params, [rows]);
    } else {
      const u = step.uniforms;
      if (!u || u.length !== rows) throw new InputError(`token selector: sampling needs ${rows} uniforms, got ${u?.length ?? 0}`);
      rt.exec.write(this.uniforms!, u);
      rt.exec.dispatch(selectTopK(), [{ buf: x.buf }, { buf: this.eos }, { buf: this.seen }, { buf: this.cand! }], params, [rows]);
      rt.exec.dispatch(selectDraw(), [
        { buf: this.cand! }, { buf: this.uniforms! }, { buf: this.eos }, { buf: this.seen }, { buf: this.finished }, { buf: this.out },
      ], params, [rows]);
    }
    return this.readChoice(rows);
  }

  private async readChoice(rows: number): Promise<TokenChoice> {
    const raw = new Uint32Array(await this.rt.exec.read({ buf: this.out }, rows * 4));
    const tokens = new Int32Array(rows);
    const eos: boolean[] = [];
    for (let r = 0; r < rows; r++) {
      const w = raw[r]!;
      if (w & ERR_BIT) throw new InputError("generate: every token has probability 0 (all scores are -inf or NaN) — check the logits processors");
      tokens[r] = w & ~(EOS_BIT | ERR_BIT);
      eos.push((w & EOS_BIT) !== 0);
    }
    return { tokens, eos };
  }

  markFinished(rows: readonly number[]): void {
    for (const r of rows) this.rt.exec.write(this.finished, Uint32Array.of(1), r * 4);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.rt.ctx.isDestroyed) return;
    for (const b of [this.eos, this.seen, this.finished, this.out, this.cand, this.uniforms]) if (b) this.rt.pool.release(b);
  }
}
