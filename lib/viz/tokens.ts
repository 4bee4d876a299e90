/**
 * HTML views of a tokenization (string builders over TokenInspection, no
 * DOM): colored token boxes with id and token on hover, a table, and two
 * tokenizers compared on the same text. Whitespace is made visible (· for a
 * space, ↵ for a newline, → for a tab), byte-fallback tokens are dashed boxes
 * showing their byte, special tokens are gray. Self-contained: inline styles
 * only, no scripts.
 */
import type { TokenInspection, TokenRow } from "../tokenizer/inspect.js";
import { HtmlFigure } from "./figure.js";

const PALETTE = ["#fde68a", "#bfdbfe", "#bbf7d0", "#fecaca", "#ddd6fe", "#fed7aa", "#a5f3fc", "#f5d0fe"];

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** Makes whitespace and invisible characters visible; returns HTML. */
function visibleText(s: string): string {
  let out = "";
  for (const ch of s) {
    if (ch === " ") out += '<span style="opacity:.55">·</span>';
    else if (ch === "\n") out += '<span style="opacity:.55">↵</span>';
    else if (ch === "\r") out += '<span style="opacity:.55">␍</span>';
    else if (ch === "\t") out += '<span style="opacity:.55">→</span>';
    else if (/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Zs}]/u.test(ch)) {
      out += `<span style="opacity:.55;font-size:75%">U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}</span>`;
    } else out += escapeHtml(ch);
  }
  return out;
}

function label(r: TokenRow): string {
  if (r.isByte && r.text === "" && r.bytes) return `&lt;${r.bytes.map((b) => b.toString(16).toUpperCase().padStart(2, "0")).join(" ")}&gt;`;
  if (r.isSpecial) return escapeHtml(r.token);
  if (r.text === "" && r.bytes) return `&lt;${r.bytes.map((b) => b.toString(16).toUpperCase().padStart(2, "0")).join(" ")}&gt;`;
  return visibleText(r.text);
}

function tooltip(r: TokenRow): string {
  const kind = r.addedByTemplate ? " (added by template)" : r.isSpecial ? " (special)" : r.isByte ? " (byte)" : "";
  return escapeHtml(`#${r.index} id ${r.id} ${JSON.stringify(r.token)}${kind} bytes ${r.start}–${r.end}`);
}

function box(r: TokenRow): string {
  const color = r.isSpecial ? "#e5e7eb" : PALETTE[r.index % PALETTE.length]!;
  const border = r.isByte ? "1px dashed #6b7280" : "1px solid rgba(0,0,0,.12)";
  const font = r.isSpecial ? "font-style:italic;color:#374151;" : "";
  const br = !r.isSpecial && r.text.endsWith("\n") ? "<br>" : "";
  return `<span title="${tooltip(r)}" data-id="${r.id}" style="background:${color};border:${border};border-radius:3px;padding:0 1px;margin:0 1px 2px 0;display:inline-block;white-space:pre;${font}">${label(r)}</span>${br}`;
}

/** Colored boxes, one per token; hover shows index, id, token and byte span. */
export function tokenSpansHtml(insp: TokenInspection): string {
  const head = `<div style="font:12px sans-serif;color:#555;margin-bottom:4px">${escapeHtml(insp.tokenizer)}: ${insp.rows.length} tokens, ${insp.byteLength} bytes</div>`;
  return `<div class="llama-ts-tokens" style="font:14px/1.9 ui-monospace,monospace">${head}${insp.rows.map(box).join("")}</div>`;
}

/** A table: index, id, token, text, byte span, flags. */
export function tokenTableHtml(insp: TokenInspection): string {
  const th = ["#", "id", "token", "text", "bytes", "flags"].map((h) => `<th style="text-align:left;padding:2px 8px">${h}</th>`).join("");
  const rows = insp.rows
    .map((r) => {
      const flags = [r.isSpecial ? "special" : "", r.isByte ? "byte" : "", r.addedByTemplate ? "template" : ""].filter(Boolean).join(" ");
      const cells = [String(r.index), String(r.id), `<code>${escapeHtml(JSON.stringify(r.token))}</code>`, label(r), `${r.start}–${r.end}`, flags];
      return `<tr>${cells.map((c) => `<td style="padding:2px 8px">${c}</td>`).join("")}</tr>`;
    })
    .join("");
  return `<table class="llama-ts-token-table" style="border-collapse:collapse;font:13px ui-monospace,monospace"><thead><tr>${th}</tr></thead><tbody>${rows}</tbody></table>`;
}

/** Two (or more) tokenizations of the same text, one above the other, with token counts. */
export function tokenCompareHtml(inspections: readonly TokenInspection[], labels?: readonly string[]): string {
  const blocks = inspections.map((insp, i) => {
    const name = labels?.[i] ?? insp.tokenizer;
    const perToken = insp.rows.length ? (insp.byteLength / insp.rows.length).toFixed(2) : "–";
    return `<div style="margin:6px 0"><div style="font:bold 12px sans-serif">${escapeHtml(name)} — ${insp.rows.length} tokens (${perToken} bytes/token)</div><div style="font:14px/1.9 ui-monospace,monospace">${insp.rows.map(box).join("")}</div></div>`;
  });
  return `<div class="llama-ts-token-compare">${blocks.join("")}</div>`;
}

/** Displayable versions (for notebooks: the kernel renders `_repr_mimebundle_`). */
export function tokenSpans(insp: TokenInspection): HtmlFigure {
  return new HtmlFigure(tokenSpansHtml(insp), `tokens: ${insp.rows.length}`);
}

export function tokenTable(insp: TokenInspection): HtmlFigure {
  return new HtmlFigure(tokenTableHtml(insp), `token table: ${insp.rows.length} rows`);
}

export function tokenCompare(inspections: readonly TokenInspection[], labels?: readonly string[]): HtmlFigure {
  return new HtmlFigure(tokenCompareHtml(inspections, labels), `token comparison: ${inspections.map((x) => x.rows.length).join(" vs ")}`);
}
