/**
 * The bar the model-loading commands (forward, generate) draw on stderr while
 * weights upload: redrawn only when the whole percentage changes, and only on
 * a terminal (no bar in pipes and CI logs).
 */
export function loadProgressBar(label = "loading"): ((done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  let last = -1;
  return (done, total) => {
    const pct = total ? Math.floor((100 * done) / total) : 100;
    if (pct === last) return;
    last = pct;
    const width = 30;
    const fill = Math.round((width * pct) / 100);
    process.stderr.write(`\r${label} [${"#".repeat(fill)}${" ".repeat(width - fill)}] ${pct}%${pct === 100 ? "\n" : ""}`);
  };
}
