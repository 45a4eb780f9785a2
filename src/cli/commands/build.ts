import { mkdir } from "node:fs/promises";
import { availableParallelism, totalmem } from "node:os";
import { resolve } from "node:path";
import { writeFileAtomic } from "../../fs/write-atomic.js";
import { chooseConcurrency } from "../../run/concurrency.js";
import { packageTarget } from "../../package/package-target.js";
import { FactoryError, InputError } from "../../errors.js";
import { COMPRESSIONS, type Compression } from "../../package/compressor.js";
import { buildReport, REPORT_FORMAT_VERSION, reportMarkdown, reportTable } from "../../run/report.js";
import { runPlan, type RunResult } from "../../run/run-plan.js";
import { loadStack } from "../../config/index.js";
import { connectEngine } from "../../docker/index.js";
import { planBuild } from "../../plan/plan.js";
import { loadTemplates } from "../../render/templates.js";
import { chooseReporter } from "../../ui/live.js";
import { cacheRoot, envPairs, memoryBytes, positiveInt, positiveNumber, targetList } from "../options.js";
import { abortOnSignals } from "../signals.js";

export interface BuildFlags {
  target?: unknown;
  cacheDir?: string;
  out?: string;
  jobs?: unknown;
  concurrency?: unknown;
  cpus?: unknown;
  memory?: unknown;
  keepContainer?: boolean;
  failFast?: boolean;
  env?: unknown;
  report?: string;
  summary?: string;
  compress?: string;
}

/** `build` and `warm`: plan, run every target (concurrently), report. Returns the exit code. */
export async function buildCommand(stackFile: string, flags: BuildFlags, mode: "build" | "warm" = "build"): Promise<number> {
  const started = performance.now();
  const stack = await loadStack(stackFile);
  const targets = targetList(flags.target) ?? stack.targets;
  const memory = memoryBytes(flags.memory);
  const cpus = positiveNumber(flags.cpus, "cpus");
  const given = { concurrency: positiveInt(flags.concurrency, "concurrency"), jobs: positiveInt(flags.jobs, "jobs") };
  const { concurrency, jobs, reason } = chooseConcurrency({
    targets: targets.length,
    cores: availableParallelism(),
    memoryBytes: totalmem(),
    ...(given.concurrency === undefined ? {} : { concurrency: given.concurrency }),
    ...(given.jobs === undefined ? {} : { jobs: given.jobs }),
    ...(memory === undefined ? {} : { memoryLimit: memory }),
  });
  const plan = planBuild(stack, targets, { templates: await loadTemplates(), jobs, mode });
  const extraEnv = envPairs(flags.env);
  const compression = compressionOf(flags.compress);
  const outDir = resolve(flags.out ?? "dist");
  // Fail now, not after the builds, when the output directory cannot be made.
  if (mode === "build") await mkdir(outDir, { recursive: true }).catch((error: NodeJS.ErrnoException) => {
    throw new InputError(`--out ${flags.out ?? "dist"}: cannot create it (${error.code ?? error.message})`);
  });
  const engine = await connectEngine();
  const reporter = chooseReporter();
  const { signal, dispose } = abortOnSignals((sig) =>
    reporter.emit({ type: "info", message: `${sig}: stopping, removing this run's containers` }),
  );
  try {
    reporter.emit({ type: "info", message: `${concurrency} container(s) at once, ${jobs} job(s) each (${reason})` });
    let result: RunResult;
    try {
      result = await runPlan(plan, {
        engine,
        reporter,
        signal,
        cacheRoot: cacheRoot(flags.cacheDir),
        concurrency,
        extraEnv,
        ...(flags.failFast === true ? { failFast: true } : {}),
        ...(flags.keepContainer === true ? { keepContainer: true } : {}),
        ...(cpus === undefined ? {} : { cpus }),
        ...(memory === undefined ? {} : { memory }),
        ...(mode === "build"
          ? {
              afterSteps: (target, container, log, context) =>
                packageTarget(plan, target, container, log, {
                  outDir,
                  compression,
                  signal,
                  spackCommit: context.spackCommit,
                  ...(context.spackPackagesCommit === undefined ? {} : { spackPackagesCommit: context.spackPackagesCommit }),
                  imageId: context.imageId,
                  specsJson: context.captured["specs.json"] ?? "",
                }),
            }
          : {}),
      });
    } catch (error) {
      // The run failed before any target finished (image build, Spack clone, Ctrl-C early): still leave a report.
      if (flags.report !== undefined) {
        const failure = {
          format_version: REPORT_FORMAT_VERSION,
          runId: engine.runId,
          mode,
          stack: plan.stack,
          exitCode: error instanceof FactoryError ? error.exitCode : 1,
          error: error instanceof Error ? error.message : String(error),
          targets: [],
        };
        await writeFileAtomic(resolve(flags.report), `${JSON.stringify(failure, null, 2)}\n`);
      }
      throw error;
    }
    reporter.close();
    const report = await buildReport(plan, result, { mode, concurrency, jobs, seconds: (performance.now() - started) / 1000 });
    process.stdout.write(`\n${reportTable(report)}`);
    if (mode === "warm") {
      const built = report.targets.reduce((n, t) => n + t.built.length, 0);
      process.stdout.write(built === 0 && report.exitCode === 0 ? "nothing to build: the buildcache already had everything\n" : `${built} package(s) built and pushed\n`);
    }
    for (const t of result.targets.filter((t) => t.status === "failed")) process.stderr.write(`stack-factory: ${t.error ?? ""}\n`);
    if (result.cancelled) process.stderr.write(`stack-factory: run ${result.runId} interrupted; its containers were removed\n`);
    if (flags.report !== undefined) await writeFileAtomic(resolve(flags.report), `${JSON.stringify(report, null, 2)}\n`);
    if (flags.summary !== undefined) await writeFileAtomic(resolve(flags.summary), reportMarkdown(report));
    return report.exitCode;
  } finally {
    reporter.close();
    dispose();
  }
}

function compressionOf(flag: string | undefined): Compression {
  if (flag === undefined) return "gzip";
  if ((COMPRESSIONS as readonly string[]).includes(flag)) return flag as Compression;
  throw new InputError(`--compress: expected one of ${COMPRESSIONS.join(", ")}, got "${flag}"`);
}
