/**
 * The globals every cell has: `display`, `clearOutput`, `input`, `comms`.
 *
 *   const h = display.html("<b>step 1</b>");   // display_data
 *   h.update("<b>step 2</b>");                 // update_display_data, same output area
 *   display(fig)                               // any value, rich repr (plotly, tables…)
 *   await LlamaForCausalLM.fromPretrained(dir, { onProgress: display.progress("loading") })
 *   await trainPrompt(pm, rows, { …, onProgress: display.progress("training") })  // any onProgress(done, total, info?)
 *   clearOutput(true)                          // clear when the next output arrives
 *   const name = await input("name? ")         // stdin input_request
 */
import { randomUUID } from "node:crypto";
import type { Comms } from "../comm.js";
import { plotlyBundle, richRepr, withFallbacks, type MimeBundle } from "./mime.js";
import type { PlotlyFigure } from "./plotly-html.js";
import { progressStats, progressText, type ProgressInfo } from "../../lib/progress.js";

export type { MimeBundle } from "./mime.js";
export type { PlotlyFigure } from "./plotly-html.js";

/** Marks display handles and progress bars: a cell ending in `display.html(…)` shows the output once, not the handle too. */
export const DISPLAY_HANDLE = Symbol.for("llama-ts.display-handle");

export function isDisplayHandle(v: unknown): boolean {
  return (typeof v === "object" || typeof v === "function") && v !== null && DISPLAY_HANDLE in v;
}

/** A displayed output that can be replaced in place. */
export interface DisplayHandle<T> {
  readonly [DISPLAY_HANDLE]: true;
  readonly displayId: string;
  update(value: T): void;
}

/**
 * A progress bar shown as one updating output (a bar, done/total, rate, time
 * left, and the metrics of `info`); callable as the library's
 * `onProgress(done, total, info?)` (lib/progress.ts) for loading, converting,
 * scoring, patching and training.
 */
export interface ProgressBar {
  (done: number, total?: number, info?: ProgressInfo): void;
  /** Marks it finished (draws 100% if the total was reached) and stops updating. */
  close(): void;
}

export interface Display {
  /** Shows any value with its rich representation (like IPython's display()). */
  (value: unknown): DisplayHandle<unknown>;
  html(html: string): DisplayHandle<string>;
  markdown(markdown: string): DisplayHandle<string>;
  svg(svg: string): DisplayHandle<string>;
  /** PNG bytes, or base64 text (a data: URL prefix is accepted). */
  png(png: Uint8Array | string): DisplayHandle<Uint8Array | string>;
  json(value: unknown): DisplayHandle<unknown>;
  plotly(figure: PlotlyFigure): DisplayHandle<PlotlyFigure>;
  mime(bundle: MimeBundle, metadata?: Record<string, unknown>): DisplayHandle<MimeBundle>;
  progress(label?: string, total?: number): ProgressBar;
}

export type ClearOutput = (wait?: boolean) => void;
export type Input = (prompt?: string, options?: { password?: boolean }) => Promise<string>;

export interface CellGlobals {
  display: Display;
  clearOutput: ClearOutput;
  input: Input;
  comms: Comms;
}

/** What the kernel gives the display API: a way to publish on IOPub and to ask stdin. */
export interface OutputSink {
  publish(msgType: "display_data" | "update_display_data" | "clear_output", content: object): void;
  requestInput(prompt: string, password: boolean): Promise<string>;
}

type Render<T> = (value: T) => { data: MimeBundle; metadata?: Record<string, unknown> };

export function createCellGlobals(sink: OutputSink, comms: Comms): CellGlobals {
  function show<T>(value: T, render: Render<T>): DisplayHandle<T> {
    const displayId = randomUUID();
    const out = render(value);
    sink.publish("display_data", { data: out.data, metadata: out.metadata ?? {}, transient: { display_id: displayId } });
    return {
      [DISPLAY_HANDLE]: true as const,
      displayId,
      update(next: T) {
        const o = render(next);
        sink.publish("update_display_data", { data: o.data, metadata: o.metadata ?? {}, transient: { display_id: displayId } });
      },
    };
  }

  const html: Render<string> = (s) => ({ data: { "text/html": s, "text/plain": htmlToText(s) } });
  const display = ((value: unknown) => show(value, richRepr)) as Display;
  display.html = (s) => show(s, html);
  display.markdown = (s) => show(s, (m) => ({ data: { "text/markdown": m, "text/plain": m } }));
  display.svg = (s) => show(s, (v) => ({ data: { "image/svg+xml": v, "text/plain": "<SVG image>" } }));
  display.png = (p) =>
    show(p, (v) => {
      const b64 = typeof v === "string" ? v.replace(/^data:image\/png;base64,/, "") : Buffer.from(v).toString("base64");
      return { data: { "image/png": b64, "text/plain": `<PNG image, ${Math.floor((b64.length * 3) / 4)} bytes>` } };
    });
  display.json = (j) => show(j, (v) => ({ data: { "application/json": v, "text/plain": JSON.stringify(v, null, 2) ?? "undefined" } }));
  display.plotly = (fig) => show(fig, (f) => ({ data: plotlyBundle(f) }));
  display.mime = (bundle, metadata) => show(bundle, (b) => ({ data: withFallbacks({ ...b }), metadata }));
  display.progress = (label = "", total?: number) => progressBar(show, label, total);

  return {
    display,
    clearOutput: (wait = false) => sink.publish("clear_output", { wait }),
    input: (prompt = "", options = {}) => sink.requestInput(prompt, options.password ?? false),
    comms,
  };
}

function progressBar(
  show: <T>(value: T, render: Render<T>) => DisplayHandle<T>,
  label: string,
  initialTotal: number | undefined,
): ProgressBar {
  interface State {
    done: number;
    total: number | undefined;
    info: ProgressInfo | undefined;
    elapsedMs: number;
  }
  const render: Render<State> = ({ done, total, info, elapsedMs }) => {
    if (total === undefined || total <= 0) {
      // No total (yet, or a run bounded by time only): an indeterminate bar, counts and rate.
      const words = progressText(done, 0, elapsedMs, info);
      const html = `<div class="llama-ts-progress"><span>${escapeHtml(label)}</span> <progress style="width:20em"></progress> <code>${escapeHtml(words)}</code></div>`;
      return { data: { "text/html": html, "text/plain": `${label ? `${label} ` : ""}${words}` } };
    }
    const { fraction } = progressStats(done, total, elapsedMs);
    const pct = `${Math.floor(fraction * 100)}%`;
    const words = progressText(done, total, elapsedMs, info);
    const width = 30;
    const filled = Math.round(fraction * width);
    const text = `${label ? `${label} ` : ""}${pct.padStart(4)} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${words}`;
    const html = `<div class="llama-ts-progress"><span>${escapeHtml(label)}</span> ` +
      `<progress value="${Math.min(done, total)}" max="${total}" style="width:20em"></progress> <code>${pct} ${escapeHtml(words)}</code></div>`;
    return { data: { "text/html": html, "text/plain": text } };
  };
  let started = Date.now();
  const state: State = { done: 0, total: initialTotal, info: undefined, elapsedMs: 0 };
  const handle = show({ ...state }, render);
  let last = 0;
  let closed = false;
  // Throttled: a training loop may report thousands of steps; the frontend needs ~10 updates a second.
  const bar = ((done: number, total?: number, info?: ProgressInfo) => {
    if (closed) return;
    // One bar reused for a second run (done going back) measures its rate afresh.
    if (done < state.done) started = Date.now();
    state.done = done;
    if (total !== undefined) state.total = total;
    if (info !== undefined) state.info = info;
    const now = Date.now();
    state.elapsedMs = now - started;
    const finished = state.total !== undefined && done >= state.total;
    if (finished || now - last >= 100) {
      last = now;
      handle.update({ ...state });
    }
  }) as ProgressBar;
  (bar as unknown as Record<symbol, boolean>)[DISPLAY_HANDLE] = true;
  bar.close = () => {
    if (closed) return;
    state.elapsedMs = Date.now() - started;
    handle.update({ ...state });
    closed = true;
  };
  return bar;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

/** A readable text/plain for an HTML output (tags dropped, whitespace squeezed). */
function htmlToText(html: string): string {
  const text = html.replace(/<(script|style)[\s\S]*?<\/\1>/gi, "").replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").trim();
  return text.length > 200 ? `${text.slice(0, 200)}…` : text || "<HTML>";
}
