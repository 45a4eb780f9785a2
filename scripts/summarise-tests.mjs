// Prints the closing line of a test run, "N passed, N failed, N skipped", from vitest JSON reports.
import { existsSync, readFileSync } from "node:fs";

let passed = 0;
let failed = 0;
let skipped = 0;
const args = process.argv.slice(2);
const extra = args.indexOf("--extra-failed");
if (extra >= 0) {
  failed += Number(args[extra + 1] ?? 0);
  args.splice(extra, 2);
}
for (const file of args) {
  if (!existsSync(file)) {
    console.error(`no report at ${file}: that test run did not finish`);
    failed += 1;
    continue;
  }
  const report = JSON.parse(readFileSync(file, "utf8"));
  passed += report.numPassedTests;
  // A file that failed without a failing test (an error while loading it, or in a hook) counts as one failure.
  const brokenFiles = (report.testResults ?? []).filter(
    (file) => file.status === "failed" && !(file.assertionResults ?? []).some((t) => t.status === "failed"),
  ).length;
  failed += report.numFailedTests + brokenFiles;
  skipped += report.numPendingTests + (report.numTodoTests ?? 0);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
