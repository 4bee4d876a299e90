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

  /**
   * Normalizes `text`. With `origin`, also fills origin[i] = the UTF-16 index
   * in `text` where normalized char i came from (length normalized.length + 1).
   */
  normalize(text: string, origin?: number[]): string {
    if (text.length === 0) return "";
    const input = wellFormed(text);
    const escape = this.spec.escapeWhitespaces;
    // Fast path for LLaMA: identity rules, no whitespace removal.
    if (!this.charsmap && !this.spec.removeExtraWhitespaces && !origin) {
      const body = escape ? input.replaceAll(" ", SPACE) : input;
      if (!this.spec.addDummyPrefix) return body;
      const ws = escape ? SPACE : " ";
      return this.treatWhitespaceAsSuffix ? body + ws : ws + body;
    }
    // General path, mirroring Normalizer::Normalize.
    const pieces = this.charsmap ? this.charsmap.split(input) : splitChars(input);
    let k = 0;
    let consumed = 0;
    if (this.spec.removeExtraWhitespaces) {
      while (k < pieces.length && pieces[k]!.out === " ") {
        consumed += pieces[k]!.inLen;
        k++;
      }
      if (k === pieces.length) return "";
    }
    const ws = escape ? SPACE : " ";
    let out = "";
    const org: number[] = [];
    const addWs = (at: number) => {
      out += ws;
      org.push(at);
    };
    if (!this.treatWhitespaceAsSuffix && this.spec.addDummyPrefix) addWs(consumed);
    let prevSpace = this.spec.removeExtraWhitespaces;
    for (; k < pieces.length; k++) {
      let sp = pieces[k]!.out;
      if (prevSpace) while (sp.startsWith(" ")) sp = sp.slice(1);
      if (sp.length > 0) {
        for (let n = 0; n < sp.length; n++) {
          out += escape && sp[n] === " " ? SPACE : sp[n];
          org.push(consumed);
        }
        prevSpace = sp.endsWith(" ");
      }
      consumed += pieces[k]!.inLen;
      if (!this.spec.removeExtraWhitespaces) prevSpace = false;
    }
    if (this.spec.removeExtraWhitespaces) {
      while (out.endsWith(ws)) {
        out = out.slice(0, -ws.length);
        consumed = org[out.length] ?? consumed;
        org.length = out.length;
      }
    }
    if (this.treatWhitespaceAsSuffix && this.spec.addDummyPrefix) addWs(consumed);
    org.push(consumed);
    if (origin) for (const o of org) origin.push(o);
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
