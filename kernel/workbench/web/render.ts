/**
 * Draws kernel outputs into the page: plotly figures with the local plotly.js
 * (window.Plotly, loaded from /vendor/plotly.min.js), HTML in a sandboxed
 * iframe (so a figure's inline script runs without touching the page or its cookie),
 * text as <pre>. Displays with an id are replaced in place on update.
 */
import type { Output } from "./kernel-client.js";
import { h } from "./dom.js";

declare global {
  interface Window {
    Plotly?: {
      newPlot(el: HTMLElement, data: unknown[], layout?: unknown, config?: unknown): Promise<unknown>;
      react(el: HTMLElement, data: unknown[], layout?: unknown, config?: unknown): Promise<unknown>;
    };
  }
}

const PLOTLY = "application/vnd.plotly.v1+json";

/** Runs inside a result frame: tells the page how tall the content is, now and on every resize. */
const REPORT_HEIGHT = `<script>(function(){
  function report(){ parent.postMessage({ llamaTsFrameHeight: document.body.scrollHeight + 8 }, "*"); }
  addEventListener("load", report);
  if (window.ResizeObserver) new ResizeObserver(report).observe(document.body);
})();</script>`;

/**
 * A plotly HTML fallback that does not inline plotly.js (the kernel inlines it once per
 * session) waits for window.Plotly: a frame is a page of its own, so it gets the local copy.
 * The served copy is public (no cookie needed), and an inlined one skips itself when it finds it.
 */
function plotlyFor(html: string): string {
  return /Plotly\.newPlot/.test(html) ? `<script src="${location.origin}/vendor/plotly.min.js"></script>` : "";
}

/** Result frames report their content height (REPORT_HEIGHT); only a message from a frame of ours is used. */
window.addEventListener("message", (e: MessageEvent) => {
  const height = Number((e.data as { llamaTsFrameHeight?: unknown } | null)?.llamaTsFrameHeight);
  if (!Number.isFinite(height)) return;
  for (const frame of document.querySelectorAll<HTMLIFrameElement>("iframe.html-output")) {
    if (frame.contentWindow === e.source) frame.style.height = `${Math.min(1200, Math.max(24, Math.ceil(height)))}px`;
  }
});

/** Renders a MIME bundle into `el` (replacing its content). */
export function renderBundle(el: HTMLElement, data: Record<string, unknown>): void {
  if (PLOTLY in data && window.Plotly) {
    const fig = data[PLOTLY] as { data: unknown[]; layout?: Record<string, unknown>; config?: Record<string, unknown> };
    // Reuse the plot div on updates so a live curve does not flicker.
    let plot = el.querySelector<HTMLElement>(":scope > .plotly-host");
    if (!plot) {
      el.replaceChildren();
      plot = h("div", { class: "plotly-host" });
      el.append(plot);
      void window.Plotly.newPlot(plot, fig.data, fig.layout, { responsive: true, ...(fig.config ?? {}) });
    } else {
      void window.Plotly.react(plot, fig.data, fig.layout, { responsive: true, ...(fig.config ?? {}) });
    }
    return;
  }
  if ("text/html" in data) {
    const html = String(data["text/html"]);
    if (!/<script/i.test(html)) {
      // Static HTML (tables, token spans, progress bars): a shadow root keeps its styles to itself.
      const host = h("div", { class: "html-output" });
      host.attachShadow({ mode: "open" }).innerHTML = html;
      el.replaceChildren(host);
      return;
    }
    // HTML with its own script (head view, plotly fallback): an iframe, sized to its content.
    // Sandboxed without allow-same-origin: the frame's origin is opaque, so its script can
    // neither reach this page nor call /api/ with the page's cookie (the server refuses
    // `Origin: null`). It reports its height by postMessage instead (see frameHeights below).
    const frame = h("iframe", { class: "html-output", sandbox: "allow-scripts" }) as HTMLIFrameElement;
    frame.srcdoc = `<!doctype html><meta charset="utf-8"><style>body{font:13px system-ui,sans-serif;margin:4px}</style>${plotlyFor(html)}${html}${REPORT_HEIGHT}`;
    frame.style.height = "420px";
    el.replaceChildren(frame);
    return;
  }
  if ("image/svg+xml" in data) {
    el.innerHTML = String(data["image/svg+xml"]);
    return;
  }
  if ("image/png" in data) {
    el.replaceChildren(h("img", { src: `data:image/png;base64,${String(data["image/png"])}` }));
    return;
  }
  if ("application/json" in data) return; // data for the page, not for display
  if ("text/plain" in data) el.replaceChildren(h("pre", {}, String(data["text/plain"])));
}

/** Collects a cell's outputs into one container, honoring display ids and clear_output. */
export class OutputArea {
  private readonly byDisplayId = new Map<string, HTMLElement>();
  private clearPending = false;
  private streamEl: HTMLPreElement | undefined;

  /** `showStdout: false` leaves stdout to the caller (the generate panel draws its own live stream). */
  constructor(readonly el: HTMLElement, private readonly opts: { showStdout?: boolean } = {}) {}

  clear(): void {
    this.el.replaceChildren();
    this.byDisplayId.clear();
    this.streamEl = undefined;
  }

  add(o: Output): void {
    if (o.kind === "clear") {
      if (o.wait) this.clearPending = true;
      else this.clear();
      return;
    }
    if (this.clearPending) {
      this.clearPending = false;
      this.clear();
    }
    if (o.kind === "stream") {
      if (o.name === "stdout" && this.opts.showStdout === false) return;
      if (!this.streamEl) {
        this.streamEl = h("pre", { class: `stream ${o.name}` });
        this.el.append(this.streamEl);
      }
      this.streamEl.textContent += o.text;
      return;
    }
    if (o.kind === "display" && o.update) {
      const target = o.displayId ? this.byDisplayId.get(o.displayId) : undefined;
      if (target) renderBundle(target, o.data);
      return;
    }
    if ("application/json" in o.data && Object.keys(o.data).every((k) => k === "application/json" || k === "text/plain")) return;
    const box = h("div", { class: "output" });
    this.el.append(box);
    renderBundle(box, o.data);
    if (o.kind === "display" && o.displayId) this.byDisplayId.set(o.displayId, box);
  }
}
