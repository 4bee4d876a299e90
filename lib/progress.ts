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
