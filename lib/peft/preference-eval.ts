/**
 * The measure of the preference task (datasets/preference/README.md): sample
 * continuations of test prompts and ask of them what a DPO run should change
 * and what it must not break.
 *
 *   share        continuations that mention the whole word `friend` (any case): what the tuning moves
 *   distinct-2   unique word bigrams / all word bigrams over the samples: a repetition loop makes it
 *                fall, gibberish from an over-trained policy makes it jump up (reward accuracy hides both)
 *   non-printable  control characters or U+FFFD (a broken byte sequence) in the samples: gibberish again
 *   mean words   the stories' length (an early `</s>` shortens them)
 *
 * bench/trl-dpo-baseline.py computes the same four numbers the same way for TRL's samples.
 */
import { generate } from "../generate/generate.js";
import type { GenerationModel } from "../generate/types.js";

export interface PreferenceMetrics {
  /** Number of continuations measured. */
  samples: number;
  /** Share of continuations that mention `friend` (or the task's pattern) as a whole word, any case. */
  share: number;
  /** Unique word bigrams / all word bigrams (bigrams within each continuation, words lower-cased). */
  distinctBigrams: number;
  /** Non-printable characters over all continuations. */
  nonPrintable: number;
  /** Mean words per continuation. */
  meanWords: number;
}

const FRIEND = /\bfriend\b/i;
// C0/C1 control characters except tab and newline, and the replacement character of a broken UTF-8 byte run.
const NON_PRINTABLE = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\uFFFD]/g;

/** Whether a continuation mentions a friend (the whole word, so not "friendly" or "friends"). */
export function mentionsFriend(text: string): boolean {
  return FRIEND.test(text);
}

/** Lower-cased words split on ASCII whitespace (as the Python twin, scripts/fixtures/preference_metrics.py). */
function words(text: string): string[] {
  return text.toLowerCase().split(/[ \t\n\r\f\v]+/).filter(Boolean);
}

/**
 * The four numbers of the task over a list of continuations (new text only, without the prompt).
 * `wanted` is what the share counts (default: the whole word `friend`, the shared task's preference;
 * another task of the kind passes its own, e.g. /\bball\b/i).
 */
export function preferenceMetrics(texts: readonly string[], wanted: RegExp = FRIEND): PreferenceMetrics {
  // a g or y flag would make test() carry its position from one text to the next
  const want = wanted.global || wanted.sticky ? new RegExp(wanted.source, wanted.flags.replace(/[gy]/g, "")) : wanted;
  let hits = 0, nonPrintable = 0, wordCount = 0, bigrams = 0;
  const unique = new Set<string>();
  for (const t of texts) {
    if (want.test(t)) hits++;
    nonPrintable += t.match(NON_PRINTABLE)?.length ?? 0;
    const w = words(t);
    wordCount += w.length;
    for (let i = 1; i < w.length; i++) {
      unique.add(`${w[i - 1]} ${w[i]}`);
      bigrams++;
    }
  }
  const n = texts.length;
  return {
    samples: n,
    share: n ? hits / n : 0,
    distinctBigrams: bigrams ? unique.size / bigrams : 0,
    nonPrintable,
    meanWords: n ? wordCount / n : 0,
  };
}

export interface SampleOptions {
  /** Continuations per prompt (default 8). */
  perPrompt?: number;
  /** New tokens per continuation (default 48). */
  maxNewTokens?: number;
  /** Prompt i samples with seed `seed + i` (default 0), so a run is repeatable. */
  seed?: number;
  /** Called after each prompt. */
  onProgress?: (done: number, total: number) => void;
}

/** The tokenizer surface sampling needs. */
export interface SampleTokenizer {
  encode(text: string): number[];
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
}

/**
 * The task's sampling protocol: for each prompt (BOS + its tokens), `perPrompt`
 * continuations at temperature 1.0, top-k 0, top-p 1.0 (plain ancestral
 * sampling), `maxNewTokens` new tokens, seeded per prompt. Returns the new
 * text of each continuation, prompt by prompt.
 */
export async function sampleContinuations(
  model: GenerationModel, tokenizer: SampleTokenizer, prompts: readonly string[], options: SampleOptions = {},
): Promise<string[][]> {
  const n = options.perPrompt ?? 8;
  const out: string[][] = [];
  for (const [i, prompt] of prompts.entries()) {
    const ids = tokenizer.encode(prompt);
    const seqs = await generate(model, {
      inputIds: [ids], doSample: true, temperature: 1.0, topK: 0, topP: 1.0,
      maxNewTokens: options.maxNewTokens ?? 48, numReturnSequences: n, seed: (options.seed ?? 0) + i,
    });
    out.push(seqs.map((s) => tokenizer.decode(s.slice(ids.length), { skipSpecialTokens: true })));
    options.onProgress?.(i + 1, prompts.length);
  }
  return out;
}
