/**
 * Jupyter counts cursor positions in Unicode code points (protocol ≥ 5.2);
 * JavaScript strings index UTF-16 code units. Astral characters (emoji, some
 * CJK) are one code point but two units, so positions must be converted.
 */

/** Code-point offset → UTF-16 offset (clamped to the string). */
export function toUtf16(text: string, codePoints: number): number {
  let units = 0;
  let cps = 0;
  while (units < text.length && cps < codePoints) {
    const c = text.codePointAt(units)!;
    units += c > 0xffff ? 2 : 1;
    cps++;
  }
  return units;
}

/** UTF-16 offset → code-point offset. */
export function toCodePoints(text: string, units: number): number {
  let cps = 0;
  for (let i = 0; i < units && i < text.length; ) {
    const c = text.codePointAt(i)!;
    i += c > 0xffff ? 2 : 1;
    cps++;
  }
  return cps;
}
