// Prints the closing line of a test run from vitest's JSON report.
import { readFileSync, existsSync } from "node:fs";

const file = process.argv[2];
if (!existsSync(file)) {
  console.log("tests: 0 passed, 1 failed (no vitest report was written)");
  process.exit(1);
}
const r = JSON.parse(readFileSync(file, "utf8"));
const passed = r.numPassedTests ?? 0;
// A test file that failed before running any test (an import error, a failing beforeAll
// with no results) counts as one failure; failing tests are counted one by one.
const brokenFiles = (r.testResults ?? []).filter((f) => f.status === "failed" && !(f.assertionResults ?? []).some((a) => a.status === "failed")).length;
const failed = (r.numFailedTests ?? 0) + brokenFiles;
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 || r.success === false ? 1 : 0);
