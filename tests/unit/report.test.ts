import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildReport, exitCodeOf, reportMarkdown, reportTable } from "../../src/run/report.js";
import { formatBytes } from "../../src/ui/format.js";
import type { RunResult } from "../../src/run/run-plan.js";
import type { BuildPlan } from "../../src/plan/types.js";
import { summariseInstallLog } from "../../src/spack/contract.js";

const plan = { stack: { name: "s", version: "1", file: "/s.yaml", description: "" } } as BuildPlan;

async function result(targets: Partial<RunResult["targets"][number]>[], cancelled = false): Promise<RunResult> {
  const dir = await mkdtemp(join(tmpdir(), "sf-report-"));
  const full = await Promise.all(
    targets.map(async (t, i) => {
      const logPath = join(dir, `${i}.log`);
      await writeFile(logPath, t.logPath ?? "");
      return { target: `t${i}`, status: "ok" as const, seconds: 1.234, steps: [], captured: {}, ...t, logPath };
    }),
  );
  return { runId: "r", image: { tag: "x", built: false, id: "sha256:0" }, spackCommit: "c", targets: full, cancelled };
}

const LOG = [
  "==> Installing zlib-1.3-aaaa [1/3]",
  "==> zlib: Successfully installed zlib-1.3-aaaa",
  "==> Extracting libgreet-1.1-bbbb from binary cache",
  "==> Extracting hello-2.12-cccc from binary cache",
  "==> Extracting hello-2.12-cccc from binary cache",
].join("\n");

describe("run reports", () => {
  it("reads what was built and what came from the buildcache out of Spack's install log", () => {
    expect(summariseInstallLog(LOG)).toEqual({
      built: ["zlib-1.3-aaaa"],
      fromCache: ["libgreet-1.1-bbbb", "hello-2.12-cccc"],
    });
  });

  it("exits 0 only when every target succeeded, 1 when one failed, 130 when interrupted", async () => {
    expect(exitCodeOf(await result([{}, {}]))).toBe(0);
    expect(exitCodeOf(await result([{}, { status: "failed" }]))).toBe(1);
    expect(exitCodeOf(await result([{ status: "cancelled" }], true))).toBe(130);
  });

  it("tabulates each target with its counts, tarball and log, and summarises in Markdown", async () => {
    const run = await result([
      { logPath: LOG, tarball: "/d/s-1-t0.tar.gz", tarballBytes: 3 * 1024 * 1024 },
      { status: "failed", error: "boom" },
    ]);
    const report = await buildReport(plan, run, { mode: "build", concurrency: 2, jobs: 1, seconds: 5 });
    expect(report.exitCode).toBe(1);
    expect(report.targets[0]).toMatchObject({
      built: ["zlib-1.3-aaaa"],
      fromCache: ["libgreet-1.1-bbbb", "hello-2.12-cccc"],
      seconds: 1.23,
    });
    const table = reportTable(report);
    expect(table).toMatch(/^target\s+status\s+time\s+built\s+from cache\s+tarball\s+log$/m);
    expect(table).toMatch(/^t0\s+ok\s+1\.2 s\s+1\s+2\s+\/d\/s-1-t0\.tar\.gz \(3\.0 MiB\)/m);
    expect(table).toMatch(/^t1\s+failed/m);
    const md = reportMarkdown(report);
    expect(md).toContain("| t1 | **failed** | 0 | 0 |");
    expect(md).toMatch(/- t1 failed: see `.*1\.log`/);
  });

  it("says when a warm run had nothing to build", async () => {
    const run = await result([{ logPath: "==> Extracting a-1-x from binary cache" }]);
    const report = await buildReport(plan, run, { mode: "warm", concurrency: 1, jobs: 1, seconds: 1 });
    expect(reportMarkdown(report)).toContain("Nothing to build: all 1 package installs came from the buildcache.");
    expect(reportTable(report)).not.toContain("tarball");
  });

  it("formats sizes", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(5 * 1024 ** 3)).toBe("5.0 GiB");
  });
});
