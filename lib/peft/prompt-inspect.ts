/**
 * Reading a learned soft prompt: for each virtual token, the vocabulary
 * tokens whose input embeddings are nearest by cosine similarity (the usual
 * way to "read" a prompt, which rarely sits on a real token).
 */
import { LlamaError } from "../errors.js";
import type { PromptTuningModel } from "./prompt-tuning.js";

export interface NearestToken {
  id: number;
  cosine: number;
}

/** Top-k nearest vocabulary tokens per virtual token: [n][k]. */
export async function nearestTokens(pm: PromptTuningModel, k = 5): Promise<NearestToken[][]> {
  const V = pm.base.config.vocab_size, H = pm.base.config.hidden_size;
  if (!(Number.isInteger(k) && k >= 1 && k <= V)) throw new LlamaError(`nearestTokens: k = ${k}, expected 1..${V}`);
  const table = (await pm.base.getInputEmbeddings([Array.from({ length: V }, (_, i) => i)])).toFloat32(); // [V, H]
  const norms = new Float64Array(V);
  for (let v = 0; v < V; v++) {
    let s = 0;
    for (let h = 0; h < H; h++) s += table[v * H + h]! ** 2;
    norms[v] = Math.sqrt(s) || 1;
  }
  const p = pm.prompt.value;
  const out: NearestToken[][] = [];
  for (let r = 0; r < pm.numVirtualTokens; r++) {
    let pn = 0;
    for (let h = 0; h < H; h++) pn += p[r * H + h]! ** 2;
    pn = Math.sqrt(pn) || 1;
    const sims: NearestToken[] = [];
    for (let v = 0; v < V; v++) {
      let d = 0;
      for (let h = 0; h < H; h++) d += p[r * H + h]! * table[v * H + h]!;
      sims.push({ id: v, cosine: d / (pn * norms[v]!) });
    }
    sims.sort((a, b) => b.cosine - a.cosine);
    out.push(sims.slice(0, k));
  }
  return out;
}
