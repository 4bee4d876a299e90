// Prints the closing line of a test run from vitest's JSON report.
import { readFileSync, existsSync } from "node:fs";

const file = process.argv[2];
if (!existsSync(file)) {
  console.log("tests: 0 passed, 1 failed (no vitest report was written)");
  process.exit(1);
}
const r = JSON.parse(readFileSync(file, "utf8"));
const passed = r.numPassedTests ?? 0;
const failed = (r.numFailedTests ?? 0) + (r.numFailedTestSuites ?? 0);
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
