/**
 * A one-line progress bar on stderr for long conversions. In a terminal it
 * redraws in place (at most ~10 times a second); when stderr is not a TTY
 * (CI logs, pipes) it prints a plain line every 10% so logs stay readable.
 */
export interface ProgressSink {
  update(done: number, label?: string): void;
  finish(label?: string): void;
}

export class ProgressBar implements ProgressSink {
  private lastDraw = 0;
  private lastDecile = -1;
  private readonly start = Date.now();
  private readonly tty: boolean;

  constructor(
    private readonly title: string,
    private readonly total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly unit: "bytes" | "items" = "bytes",
  ) {
    this.tty = Boolean(stream.isTTY);
  }

  update(done: number, label = ""): void {
    const frac = this.total > 0 ? Math.min(1, done / this.total) : 1;
    if (this.tty) {
      const now = Date.now();
      if (now - this.lastDraw < 100 && frac < 1) return;
      this.lastDraw = now;
      const width = 30;
      const filled = Math.round(frac * width);
      const bar = "#".repeat(filled) + "-".repeat(width - filled);
      const cols = this.stream.columns ?? 100;
      const line = `${this.title} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${this.amount(done)} ${label}`;
      this.stream.write(`\r${line.slice(0, cols - 1).padEnd(Math.min(cols - 1, line.length))}\x1b[K`);
    } else {
      const decile = Math.floor(frac * 10);
      if (decile > this.lastDecile) {
        this.lastDecile = decile;
        this.stream.write(`${this.title}: ${(decile * 10).toString().padStart(3)}% ${this.amount(done)}\n`);
      }
    }
  }

  finish(label = "done"): void {
    const secs = ((Date.now() - this.start) / 1000).toFixed(1);
    if (this.tty) this.stream.write(`\r\x1b[K`);
    this.stream.write(`${this.title}: ${label} (${this.amount(this.total)} in ${secs}s)\n`);
  }

  private amount(n: number): string {
    if (this.unit === "items") return `${n}/${this.total}`;
    const mb = (x: number) => (x / 1048576).toFixed(x < 10 * 1048576 ? 2 : 0);
    return `${mb(n)}/${mb(this.total)} MiB`;
  }
}

/** A sink that shows nothing (library calls without a terminal). */
export const SILENT_PROGRESS: ProgressSink = { update() {}, finish() {} };
