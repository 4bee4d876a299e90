/**
 * HF `tokenizers` compiles its Split/Replace patterns with Oniguruma; we run
 * them with V8's RegExp. The two differ in ways that change token ids:
 *  - Onig's `\s`/`\S` are Unicode White_Space; JS `\s` also matches U+FEFF
 *    and misses U+0085. We rewrite them to `\p{White_Space}`/`\P{White_Space}`.
 *  - `(?i:...)` scoped case-insensitivity (Llama 3's contractions) is not in
 *    Node 20's RegExp; we expand letters inside such groups to `[xX]`.
 * Anything else V8 rejects becomes a FormatError naming the pattern.
 */
import { FormatError } from "../errors.js";

export function compileOnigPattern(pattern: string, file: string, where: string): RegExp {
  let js: string;
  try {
    js = translate(pattern);
  } catch (err) {
    throw new FormatError(file, `${where}: unsupported regex ${JSON.stringify(pattern)} (${(err as Error).message})`);
  }
  try {
    return new RegExp(js, "gu");
  } catch (err) {
    throw new FormatError(file, `${where}: regex ${JSON.stringify(pattern)} does not compile in JavaScript (${(err as Error).message})`);
  }
}

/** Escapes a literal string for use inside a RegExp. */
export function escapeRegex(literal: string): string {
  return literal.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

function translate(p: string): string {
  let out = "";
  let inClass = false;
  // Stack of open groups: true where the group is case-insensitive.
  const groups: boolean[] = [];
  const caseless = () => groups.includes(true);
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === "\\") {
      const e = p[i + 1];
      if (e === undefined) throw new Error("pattern ends with a backslash");
      i++;
      if (e === "s") out += inClass ? "\\p{White_Space}" : "\\p{White_Space}";
      else if (e === "S") {
        if (inClass) throw new Error("\\S inside a character class");
        out += "\\P{White_Space}";
      } else if (e === "p" || e === "P") {
        // \p{L}, \p{N}...: copy the property name through.
        const close = p.indexOf("}", i);
        if (p[i + 1] !== "{" || close < 0) throw new Error(`malformed \\${e} escape`);
        out += "\\" + e + p.slice(i + 1, close + 1);
        i = close;
      } else out += "\\" + e;
      continue;
    }
    if (inClass) {
      if (c === "]") inClass = false;
      else if (caseless() && /[A-Za-z]/.test(c)) {
        if (p[i + 1] === "-") throw new Error("letter range inside a case-insensitive group");
        out += c.toLowerCase() + c.toUpperCase();
        continue;
      }
      out += c;
      continue;
    }
    if (c === "[") {
      inClass = true;
      out += c;
      if (p[i + 1] === "^") {
        out += "^";
        i++;
      }
      continue;
    }
    if (c === "(") {
      if (p.startsWith("(?i:", i)) {
        groups.push(true);
        out += "(?:";
        i += 3;
        continue;
      }
      if (p.startsWith("(?i)", i) || p.startsWith("(?-i", i) || p.startsWith("(?m", i) || p.startsWith("(?x", i)) {
        throw new Error("inline flags other than (?i:...)");
      }
      groups.push(false);
      out += c;
      continue;
    }
    if (c === ")") {
      groups.pop();
      out += c;
      continue;
    }
    if ((c === "+" || c === "?" || c === "*" || c === "}") && p[i + 1] === "+") {
      throw new Error("possessive quantifiers");
    }
    if (caseless() && /[A-Za-z]/.test(c)) {
      out += `[${c.toLowerCase()}${c.toUpperCase()}]`;
      continue;
    }
    out += c;
  }
  if (inClass) throw new Error("unterminated character class");
  return out;
}
