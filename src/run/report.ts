import { FactoryError } from "../errors.js";
import { readFile } from "node:fs/promises";
import { keptPackages, summariseInstallLog } from "../spack/contract.js";
import type { BuildPlan } from "../plan/types.js";
import type { NodeFloor, RunResult, TargetStatus } from "./run-plan.js";
import type { StepTiming } from "./run-target.js";
import { formatBytes } from "../ui/format.js";

export interface TargetReport {
  target: string;
  status: TargetStatus;
  seconds: number;
  /** Packages compiled from source in this run. */
  built: string[];
  /** Packages installed from the buildcache. */
  fromCache: string[];
  /**
   * A failed target's packages built before the failure and pushed to the buildcache after it (a rerun takes them
   * from there). Only when a push ran after the failure.
   */
  kept?: string[];
  tarball?: string;
  tarballBytes?: number;
  /** sha256 (hex) of the tarball. */
  tarballSha256?: string;
  /** What a node needs to run the tarball: CPU target, ELF machine, newest glibc symbol version. */
  nodeFloor?: NodeFloor;
  /** Portability hazards of the tarball (a library outside the view a node may lack, ...). */
  warnings?: string[];
  /** "reused lock", or "concretized: <why the earlier concretization could not be reused>". */
  concretization?: string;
  /** The engine that built it (runs over several engines). */
  engine?: string;
  /** "up to date: nothing started", or why the target ran (what changed, what is missing or unreadable). */
  reason?: string;
  logPath: string;
  steps: StepTiming[];
  error?: string;
  /** A failed target's last log lines (the full log is at `logPath`). */
  logTail?: string[];
}

/** Steps that run only after a failure, to keep what was built (`afterFailureOf`). */
const KEEP_STEPS: ReadonlySet<string> = new Set(["keep", "compiler-keep"]);

/** Version of the run report's shape (`--report`): bumped when a field changes meaning or goes. */
export const REPORT_FORMAT_VERSION = 3;

/** Lines of a failed target's log kept in the report (`logTail`). */
export const LOG_TAIL_LINES = 40;

export interface RunReport {
  format_version: number;
  runId: string;
  mode: "build" | "warm";
  /** When the run started (ISO 8601, UTC); steps carry their own `startedAt`. */
  startedAt?: string;
  stack: BuildPlan["stack"];
  image: RunResult["image"];
  spackCommit: string;
  /** Commit of spack-packages (Spack v1.x). */
  spackPackagesCommit?: string;
  concurrency: number;
  jobs: number;
  seconds: number;
  exitCode: number;
  /** Why the run stopped before any target could finish (image build, Spack clone, early Ctrl-C). */
  error?: string;
  targets: TargetReport[];
}

/** The report of a run that failed before any target could finish: same shape, no targets. */
export function failedRunReport(plan: BuildPlan, runId: string, mode: "build" | "warm", error: unknown): RunReport {
  return {
    format_version: REPORT_FORMAT_VERSION,
    runId,
    mode,
    stack: plan.stack,
    image: { tag: plan.builder.tag, built: false, id: "" },
    spackCommit: "unknown",
    concurrency: 0,
    jobs: 0,
    seconds: 0,
    exitCode: error instanceof FactoryError ? error.exitCode : 1,
    error: error instanceof Error ? error.message : String(error),
    targets: [],
  };
}

/** Exit code of a run: 0 only when every target succeeded, 130 when interrupted, 1 otherwise. */
export function exitCodeOf(result: RunResult): number {
  if (result.cancelled) return 130;
  return result.targets.every((t) => t.status === "ok") ? 0 : 1;
}

export async function buildReport(
  plan: BuildPlan,
  result: RunResult,
  context: { mode: "build" | "warm"; concurrency: number; jobs: number; seconds: number; startedAt?: string },
): Promise<RunReport> {
  const targets: TargetReport[] = [];
  for (const t of result.targets) {
    const log = await readFile(t.logPath, "utf8").catch(() => "");
    const summary = summariseInstallLog(log);
    const { built } = summary;
    // An up-to-date target installed nothing: what it reuses is what the buildcache holds for it.
    const fromCache = t.upToDate?.upToDate === true ? (t.reusedSpecs ?? []) : summary.fromCache;
    const keptAfterFailure = t.status === "failed" && t.steps.some((s) => KEEP_STEPS.has(s.step));
    targets.push({
      target: t.target,
      status: t.status,
      seconds: round(t.seconds),
      built,
      fromCache,
      ...(keptAfterFailure ? { kept: keptPackages(built, log) } : {}),
      ...(t.tarball === undefined ? {} : { tarball: t.tarball }),
      ...(t.tarballBytes === undefined ? {} : { tarballBytes: t.tarballBytes }),
      ...(t.tarballSha256 === undefined ? {} : { tarballSha256: t.tarballSha256 }),
      ...(t.nodeFloor === undefined ? {} : { nodeFloor: t.nodeFloor }),
      ...(t.warnings === undefined ? {} : { warnings: t.warnings }),
      ...(t.lock === undefined
        ? {}
        : { concretization: t.lock.reused ? "reused lock" : `concretized: ${t.lock.reason}` }),
      ...(t.engine === undefined ? {} : { engine: t.engine }),
      ...(t.upToDate === undefined ? {} : { reason: t.upToDate.reason }),
      logPath: t.logPath,
      steps: t.steps.map((s) => ({ ...s, seconds: round(s.seconds) })),
      ...(t.error === undefined ? {} : { error: t.error }),
      ...(t.status === "failed" ? { logTail: logTail(log) } : {}),
    });
  }
  return {
    format_version: REPORT_FORMAT_VERSION,
    runId: result.runId,
    mode: context.mode,
    ...(context.startedAt === undefined ? {} : { startedAt: context.startedAt }),
    stack: plan.stack,
    image: result.image,
    spackCommit: result.spackCommit,
    ...(result.spackPackagesCommit === undefined ? {} : { spackPackagesCommit: result.spackPackagesCommit }),
    concurrency: context.concurrency,
    jobs: context.jobs,
    seconds: round(context.seconds),
    exitCode: exitCodeOf(result),
    targets,
  };
}

/** The end-of-run table: one row per target. */
export function reportTable(report: RunReport): string {
  const engines = report.targets.some((t) => t.engine !== undefined);
  const header = [
    "target",
    engines ? "engine" : "",
    "status",
    "time",
    "built",
    "from cache",
    report.mode === "build" ? "tarball" : "",
    "log",
  ];
  const rows = report.targets.map((t) => [
    t.target,
    engines ? (t.engine ?? "-") : "",
    t.status,
    `${t.seconds.toFixed(1)} s`,
    String(t.built.length),
    String(t.fromCache.length),
    report.mode === "build"
      ? t.tarball === undefined
        ? "-"
        : `${t.tarball} (${formatBytes(t.tarballBytes ?? 0)})`
      : "",
    t.logPath,
  ]);
  const keep = header.map((h, i) => h !== "" || rows.some((r) => r[i] !== ""));
  const table = [header, ...rows].map((r) => r.filter((_, i) => keep[i]));
  const widths = (table[0] ?? []).map((_, i) => Math.max(...table.map((r) => (r[i] ?? "").length)));
  return `${table
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}

/** A short Markdown summary for CI job pages. */
export function reportMarkdown(report: RunReport): string {
  const built = report.targets.reduce((n, t) => n + t.built.length, 0);
  const cached = report.targets.reduce((n, t) => n + t.fromCache.length, 0);
  const lines = [
    `## ${report.mode === "warm" ? "Cache warming" : "Build"}: ${report.stack.name} ${report.stack.version}`,
    "",
    built === 0 && report.exitCode === 0
      ? `Nothing to build: all ${cached} package installs came from the buildcache.`
      : `${built} package(s) built, ${cached} reused from the buildcache, in ${report.seconds.toFixed(0)} s.`,
    "",
    "| target | status | built | reused | time |",
    "| --- | --- | ---: | ---: | ---: |",
    ...report.targets.map(
      (t) =>
        `| ${t.target} | ${t.status === "ok" ? "ok" : `**${t.status}**`} | ${t.built.length} | ${t.fromCache.length} | ${t.seconds.toFixed(0)} s |`,
    ),
  ];
  const current = report.targets.filter((t) => t.reason?.startsWith("up to date") === true).length;
  if (current > 0) lines.push("", `${current} target(s) up to date: nothing started.`);
  const failed = report.targets.filter((t) => t.status === "failed");
  if (failed.length > 0)
    lines.push("", ...failed.map((t) => `- ${t.target} failed: see \`${t.logPath}\`${keptNote(t)}`));
  return `${lines.join("\n")}\n`;
}

/** The last lines of a log, without the trailing empty line. */
export function logTail(log: string, lines = LOG_TAIL_LINES): string[] {
  const all = log.split("\n");
  if (all.at(-1) === "") all.pop();
  return all.slice(-lines);
}

/** What a failed target kept in the buildcache, for its line in the summary. */
function keptNote(t: TargetReport): string {
  if (t.kept === undefined) return "";
  return t.kept.length === 0
    ? "; nothing built before the failure was kept"
    : `; ${t.kept.length} package(s) built before the failure kept in the buildcache, a rerun builds only what is left`;
}

function round(seconds: number): number {
  return Math.round(seconds * 100) / 100;
}
