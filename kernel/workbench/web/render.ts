/**
 * Draws kernel outputs into the page: plotly figures with the local plotly.js
 * (window.Plotly, loaded from /vendor/plotly.min.js), HTML in a sandboxed
 * iframe (so a figure's inline script runs without touching the page),
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
    const frame = h("iframe", { class: "html-output", sandbox: "allow-scripts allow-same-origin" }) as HTMLIFrameElement;
    frame.srcdoc = `<!doctype html><meta charset="utf-8"><style>body{font:13px system-ui,sans-serif;margin:4px}</style>${html}`;
    const fit = () => {
      const doc = frame.contentDocument;
      if (doc?.documentElement) frame.style.height = `${Math.min(1200, doc.documentElement.scrollHeight + 8)}px`;
    };
    frame.addEventListener("load", () => {
      fit();
      setTimeout(fit, 300);
    });
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
