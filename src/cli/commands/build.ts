import { resolve } from "node:path";
import { buildStack, RunStartError, type BuildStackResult } from "../../api/build-stack.js";
import { engineChoice, loadFactorySettings, secretFiles, type FactorySettings } from "../../config/factory.js";
import { loadStack } from "../../config/index.js";
import type { Stack } from "../../config/types.js";
import { connectEngine } from "../../docker/index.js";
import type { Reporter } from "../../ui/reporter.js";
import { InputError } from "../../errors.js";
import { writeFileAtomic } from "../../fs/write-atomic.js";
import { COMPRESSIONS, type Compression } from "../../package/compressor.js";
import { CACHE_LAYOUT } from "../../cache/layout.js";
import { renderHtmlReport } from "../../run/report-html.js";
import { failedRunReport, reportMarkdown, reportTable, type RunReport } from "../../run/report.js";
import { loadSigningKey, type SigningKey } from "../../sign/key.js";
import { chooseReporter } from "../../ui/live.js";
import { cacheRoot, engineUrls, envPairs, memoryBytes, positiveInt, positiveNumber, targetList } from "../options.js";
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
  reportHtml?: string;
  summary?: string;
  compress?: string;
  verbose?: boolean;
  fresh?: boolean;
  signKey?: string;
  signPassphraseFile?: string;
  signKeyId?: string;
  engine?: unknown;
  factory?: string;
  /** build: also merge the targets' tarballs into one multi-target bundle (`stack-factory bundle`). */
  bundle?: boolean;
  kit?: string;
  /** With --kit: kit.json.asc must verify against this public key file. */
  keyring?: string;
  /** build: run a plan written earlier by `plan --out DIR` (no stack file). */
  plan?: string;
}

/** `build` and `warm`: flags into options for `buildStack`, then the report. Returns the exit code. */
export async function buildCommand(
  stackFile: string | undefined,
  flags: BuildFlags,
  mode: "build" | "warm" = "build",
): Promise<number> {
  if (flags.keyring !== undefined && flags.kit === undefined)
    throw new InputError("--keyring goes with --kit DIR: it checks the kit's signature (kit.json.asc)");
  if (flags.plan !== undefined) return buildFromPlan(stackFile, flags.plan, flags);
  if (stackFile === undefined)
    throw new InputError(`${mode}: give a stack file${mode === "build" ? " or --plan DIR" : ""}`);
  // Engines and the shared buildcache belong to the factory host: --engine URL..., or the --factory settings file.
  const settings = flags.factory === undefined ? undefined : await loadFactorySettings(flags.factory);
  // What the settings and flags keep secret never becomes part of a build, whatever the stack names.
  const secrets = [...secretFiles(settings), flags.signKey, flags.signPassphraseFile].filter(
    (f): f is string => f !== undefined,
  );
  const stack = await loadStack(stackFile, { secrets: secrets.map((f) => resolve(f)) });
  const targets = targetList(flags.target);
  const concurrency = positiveInt(flags.concurrency, "concurrency");
  const jobs = positiveInt(flags.jobs, "jobs");
  const compression = compressionOf(flags.compress);
  if (flags.bundle === true && compression !== "gzip")
    throw new InputError("--bundle: bundles are gzip tarballs; drop --compress");
  const signing = await loadSigningKey({
    ...(flags.signKey === undefined ? {} : { signKey: flags.signKey }),
    ...(flags.signPassphraseFile === undefined ? {} : { signPassphraseFile: flags.signPassphraseFile }),
    ...(flags.signKeyId === undefined ? {} : { signKeyId: flags.signKeyId }),
  });
  if (mode === "warm" && signing?.kind === "agent") {
    throw new InputError(
      "warm --sign-key-id: the buildcache is signed inside the build containers, which need the key as a file: give --sign-key FILE",
    );
  }
  const urls = engineUrls(flags.engine);
  const choice = engineChoice(settings, urls);
  const engines = choice.given ? choice.engines : undefined;
  const reporter = chooseReporter(process.stderr, { verbose: flags.verbose === true });
  const { signal, dispose } = abortOnSignals((sig) =>
    reporter.emit({ type: "info", message: `${sig}: stopping, removing this run's containers` }),
  );
  const kit = await kitBuildOf(flags, stack, { engines, targets, reporter, signal }).catch((error: unknown) => {
    reporter.close();
    dispose();
    throw error;
  });
  return runReported(
    () =>
      buildStack(kit?.stack ?? stack, {
        ...(kit === undefined ? {} : { engine: kit.engine, adjustPlan: kit.adjustPlan }),
        mode,
        ...(targets === undefined ? {} : { targets }),
        cacheRoot: cacheRoot(flags.cacheDir),
        ...runChoices(flags, signing, settings),
        reporter,
        signal,
        ...(concurrency === undefined ? {} : { concurrency }),
        ...(jobs === undefined ? {} : { jobs }),
        ...(engines === undefined ? {} : { engines }),
        ...(settings?.buildcache === undefined ? {} : { buildcache: settings.buildcache }),
      }),
    { stack, flags, mode, reporter, dispose },
  );
}

/** What a run's flags and settings choose beside its plan: outputs, limits, failure handling, signing, registry files. */
export function runChoices(flags: BuildFlags, signing: SigningKey | undefined, settings: FactorySettings | undefined) {
  const memory = memoryBytes(flags.memory);
  const cpus = positiveNumber(flags.cpus, "cpus");
  return {
    outDir: resolve(flags.out ?? "dist"),
    compression: compressionOf(flags.compress),
    extraEnv: envPairs(flags.env),
    ...(cpus === undefined ? {} : { cpus }),
    ...(memory === undefined ? {} : { memory }),
    ...(flags.failFast === true ? { failFast: true } : {}),
    ...(flags.keepContainer === true ? { keepContainer: true } : {}),
    ...(flags.fresh === true ? { fresh: true } : {}),
    ...(signing === undefined ? {} : { signing }),
    ...(settings?.credentials === undefined ? {} : { credentialsFile: settings.credentials }),
    ...(settings?.buildcacheCa === undefined ? {} : { registryCaFile: settings.buildcacheCa }),
  };
}

/**
 * A run, then its report: a run that fails before any target finished (image build, Spack clone, Ctrl-C early)
 * still leaves a report. Closes the reporter and the signal handlers whatever happens.
 */
export async function runReported(
  runIt: () => Promise<BuildStackResult>,
  ctx: { stack: Stack | undefined; flags: BuildFlags; mode: "build" | "warm"; reporter: Reporter; dispose: () => void },
): Promise<number> {
  const { flags, mode, reporter } = ctx;
  try {
    let outcome;
    try {
      outcome = await runIt();
    } catch (error) {
      if (error instanceof RunStartError) {
        const failure = failedRunReport(error.plan, error.runId, mode, error.cause);
        if (flags.report !== undefined)
          await writeFileAtomic(resolve(flags.report), `${JSON.stringify(failure, null, 2)}\n`);
        await writeHtmlReport(failure, flags).catch(() => undefined);
        throw error.cause;
      }
      throw error;
    }
    reporter.close();
    return await finishRun(outcome, ctx.stack, flags, mode);
  } finally {
    reporter.close();
    ctx.dispose();
  }
}

/** After a run: the table, warm's summary line, each failure, the reports, the bundle. Returns the exit code. */
export async function finishRun(
  outcome: BuildStackResult,
  stack: Stack | undefined,
  flags: BuildFlags,
  mode: "build" | "warm",
): Promise<number> {
  const { report, result } = outcome;
  process.stdout.write(`\n${reportTable(report)}`);
  if (mode === "warm") {
    const built = report.targets.reduce((n, t) => n + t.built.length, 0);
    process.stdout.write(
      built === 0 && report.exitCode === 0
        ? "nothing to build: the buildcache already had everything\n"
        : `${built} package(s) built and pushed\n`,
    );
  }
  for (const t of result.targets.filter((t) => t.status === "failed"))
    process.stderr.write(`stack-factory: ${t.error ?? ""}\n`);
  if (result.cancelled)
    process.stderr.write(`stack-factory: run ${result.runId} interrupted; its containers were removed\n`);
  if (flags.report !== undefined) await writeFileAtomic(resolve(flags.report), `${JSON.stringify(report, null, 2)}\n`);
  if (flags.summary !== undefined) await writeFileAtomic(resolve(flags.summary), reportMarkdown(report));
  await writeHtmlReport(report, flags);
  if (mode === "build" && flags.bundle === true && report.exitCode === 0 && stack !== undefined) {
    const tarballs = result.targets.flatMap((t) =>
      t.tarball === undefined ? [] : [{ target: t.target, path: t.tarball }],
    );
    const { makeBundle } = await import("../../bundle/make-bundle.js");
    const made = await makeBundle({ stack, tarballs, outDir: resolve(flags.out ?? "dist") });
    process.stdout.write(`bundle: ${made.path} (${made.bytes} bytes; the target tarballs: ${made.inputBytes})\n`);
  }
  return report.exitCode;
}

async function buildFromPlan(stackFile: string | undefined, dir: string, flags: BuildFlags): Promise<number> {
  const { buildPlanCommand } = await import("./build-plan.js");
  return buildPlanCommand(stackFile, dir, flags);
}

/**
 * The run report as a page: at `--report-html`, else beside the run's logs (`logs/<run>/report.html` under the cache
 * root). Its path is the run's last line.
 */
export async function writeHtmlReport(report: RunReport, flags: BuildFlags): Promise<void> {
  const path = resolve(
    flags.reportHtml ?? resolve(cacheRoot(flags.cacheDir), CACHE_LAYOUT.logs(report.runId), "report.html"),
  );
  await writeFileAtomic(path, renderHtmlReport(report));
  process.stdout.write(`report: ${path}\n`);
}

export function compressionOf(flag: string | undefined): Compression {
  if (flag === undefined) return "gzip";
  if ((COMPRESSIONS as readonly string[]).includes(flag)) return flag as Compression;
  throw new InputError(`--compress: expected one of ${COMPRESSIONS.join(", ")}, got "${flag}"`);
}

/**
 * `--kit DIR`: the kit must be as kit.json (and, with --keyring, its signature) says and cover the build, all
 * refused before any engine is reached; every container of the run, image loads aside, has no network at all.
 */
async function kitBuildOf(
  flags: BuildFlags,
  stack: Stack,
  context: { engines: unknown; targets: readonly string[] | undefined; reporter: Reporter; signal: AbortSignal },
) {
  if (flags.kit === undefined) return undefined;
  if (context.engines !== undefined)
    throw new InputError("--kit builds on this host's engine: give neither --engine nor --factory with it");
  const { checkKitForBuild, prepareKitBuild } = await import("../../kit/use-kit.js");
  const kitDir = resolve(flags.kit);
  const checked = await checkKitForBuild(kitDir, stack, {
    ...(context.targets === undefined ? {} : { targets: context.targets }),
    ...(flags.keyring === undefined ? {} : { keyring: flags.keyring }),
  });
  for (const message of checked.warnings) context.reporter.emit({ type: "info", message: `WARNING ${message}` });
  const engine = await connectEngine({ network: "none" });
  const prepared = await prepareKitBuild(kitDir, stack, checked.manifest, {
    engine,
    reporter: context.reporter,
    signal: context.signal,
  });
  return { ...prepared, engine };
}
