/**
 * sentencepiece's normalizer (normalizer.cc) for the settings LLaMA uses:
 * the `identity` rule set, an optional dummy prefix, whitespace escaped as
 * ▁ (U+2581), and optional removal of extra whitespace. Models with a
 * precompiled character map (nmt_nfkc…) are normalized through
 * CharsMap (spm-charsmap.ts) first, character by character, as spm does.
 *
 * Lone UTF-16 surrogates cannot be UTF-8; they become U+FFFD, which is what
 * sentencepiece does with any invalid UTF-8 it is given.
 */
import type { NormalizerSpec } from "./sentencepiece-model.js";
import { CharsMap } from "./spm-charsmap.js";
import { wellFormed } from "./utf8.js";

const SPACE = "\u2581";

export class SpmNormalizer {
  private readonly charsmap: CharsMap | null;

  constructor(
    private readonly spec: NormalizerSpec,
    private readonly treatWhitespaceAsSuffix: boolean,
    file: string,
  ) {
    this.charsmap = spec.precompiledCharsmap.length > 0 ? new CharsMap(spec.precompiledCharsmap, file) : null;
  }

  get addDummyPrefix(): boolean {
    return this.spec.addDummyPrefix;
  }

  get removeExtraWhitespaces(): boolean {
    return this.spec.removeExtraWhitespaces;
  }

  /** Normalizes `text` as sentencepiece does before BPE ("" stays ""). */
  normalize(text: string): string {
    if (text.length === 0) return "";
    const input = wellFormed(text);
    const escape = this.spec.escapeWhitespaces;
    // Fast path for LLaMA: identity rules, no whitespace removal.
    if (!this.charsmap && !this.spec.removeExtraWhitespaces) {
      const body = escape ? input.replaceAll(" ", SPACE) : input;
      if (!this.spec.addDummyPrefix) return body;
      const ws = escape ? SPACE : " ";
      return this.treatWhitespaceAsSuffix ? body + ws : ws + body;
    }
    // General path, mirroring Normalizer::Normalize.
    const pieces = this.charsmap ? this.charsmap.split(input) : splitChars(input);
    const remove = this.spec.removeExtraWhitespaces;
    let k = 0;
    if (remove) {
      while (k < pieces.length && pieces[k]!.out === " ") k++; // leading whitespace
      if (k === pieces.length) return "";
    }
    const ws = escape ? SPACE : " ";
    let out = !this.treatWhitespaceAsSuffix && this.spec.addDummyPrefix ? ws : "";
    let prevSpace = remove;
    for (; k < pieces.length; k++) {
      let sp = pieces[k]!.out;
      if (prevSpace) while (sp.startsWith(" ")) sp = sp.slice(1);
      if (sp.length > 0) {
        out += escape ? sp.replaceAll(" ", SPACE) : sp;
        prevSpace = sp.endsWith(" ");
      }
      if (!remove) prevSpace = false;
    }
    if (remove) while (out.endsWith(ws)) out = out.slice(0, -ws.length); // trailing whitespace
    if (this.treatWhitespaceAsSuffix && this.spec.addDummyPrefix) out += ws;
    return out;
  }
}

interface NormPiece {
  readonly out: string;
  readonly inLen: number;
}

function splitChars(text: string): NormPiece[] {
  const out: NormPiece[] = [];
  for (const ch of text) out.push({ out: ch, inLen: ch.length });
  return out;
}
