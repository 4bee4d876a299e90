/**
 * The one progress convention of the library: every long call (loading,
 * converting, quantizing, every training loop) takes an optional
 * `onProgress(done, total, info?)` and calls it as work advances. The caller
 * decides how to show it: the CLI renders it on stderr, a notebook with
 * `display.progress(label)`, a test collects the calls.
 */

/** What a progress call may carry besides the counts. */
export interface ProgressInfo {
  /** What `done` and `total` count (default "steps"). */
  unit?: "bytes" | "steps" | "tensors" | "items";
  /** A short phrase for the current piece of work, e.g. a tensor name. */
  label?: string;
  /** Numbers worth showing next to the bar (loss, reward margin, …). */
  metrics?: Readonly<Record<string, number>>;
}

export type OnProgress = (done: number, total: number, info?: ProgressInfo) => void;

/** Where a run stands: fraction done, rate (units per second) and seconds left, from the counts and the time since it started. */
export interface ProgressStats {
  fraction: number;
  rate: number;
  /** undefined until the rate is known. */
  secondsLeft: number | undefined;
}

export function progressStats(done: number, total: number, elapsedMs: number): ProgressStats {
  const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
  const rate = elapsedMs > 0 ? (1000 * done) / elapsedMs : 0;
  const secondsLeft = rate > 0 ? Math.max(0, total - done) / rate : undefined;
  return { fraction, rate, secondsLeft };
}

/** 75 → "1:15", 3725 → "1:02:05". */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return `${h ? `${h}:` : ""}${mm}:${String(r).padStart(2, "0")}`;
}

/** A metric as a short number: at most 4 significant digits, no trailing zeros. */
function formatMetric(v: number): string {
  return String(Number(v.toPrecision(4)));
}

/**
 * The words of a progress display after the bar, shared by the CLI renderer and
 * `display.progress`: "45/100 steps · 3.2 steps/s · 0:17 left · loss 0.1234".
 * Bytes show as MiB. A total ≤ 0 means "not known" (a run bounded by time only).
 */
export function progressText(done: number, total: number, elapsedMs: number, info?: ProgressInfo): string {
  const unit = info?.unit ?? "steps";
  const known = total > 0;
  const { rate, secondsLeft } = progressStats(done, total, elapsedMs);
  const mib = (x: number) => (x / 1048576).toFixed(x < 10 * 1048576 ? 2 : 0);
  const parts = unit === "bytes"
    ? [known ? `${mib(done)}/${mib(total)} MiB` : `${mib(done)} MiB`, `${(rate / 1048576).toFixed(1)} MiB/s`]
    : [known ? `${done}/${total} ${unit}` : `${done} ${unit}`, `${rate >= 10 ? rate.toFixed(0) : rate.toFixed(2)} ${unit}/s`];
  if (!known) parts.push(`${formatDuration(elapsedMs / 1000)} so far`);
  else if (done >= total) parts.push(`${formatDuration(elapsedMs / 1000)} total`);
  else if (secondsLeft !== undefined) parts.push(`${formatDuration(secondsLeft)} left`);
  for (const [k, v] of Object.entries(info?.metrics ?? {})) parts.push(`${k} ${formatMetric(v)}`);
  // The piece in hand (a tensor name) says nothing once the run is complete.
  if (info?.label && !(known && done >= total)) parts.push(info.label);
  return parts.join(" · ");
}
