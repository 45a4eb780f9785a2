/**
 * The programmatic API behind `build` and `warm`: a stack in, tarballs (or a warm buildcache) and a run report out.
 * The CLI turns flags into these options and calls it; tests can call it directly.
 */
import { mkdir } from "node:fs/promises";
import { availableParallelism, totalmem } from "node:os";
import { loadRegistryCredentials, type BuildcacheLocation, type EngineSetting } from "../config/factory.js";
import { loadRegistryCa } from "../config/registry-ca.js";
import type { Stack } from "../config/types.js";
import { connectEngine, type Engine } from "../docker/index.js";
import { InputError } from "../errors.js";
import type { Compression } from "../package/compressor.js";
import { planBuild } from "../plan/plan.js";
import type { BuildPlan, PlanPlacement } from "../plan/types.js";
import { loadTemplates } from "../render/templates.js";
import type { SigningKey } from "../sign/key.js";
import { chooseConcurrency } from "../run/concurrency.js";
import { buildReport, type RunReport } from "../run/report.js";
import { factoryIdentity } from "../factory-identity.js";
import { placePlan } from "../plan/placement.js";
import { defaultPlannedEngine, enginesForPlan, oneEngine, plannedEngines } from "../run/planned-engines.js";
import { runPlan, type RunResult } from "../run/run-plan.js";
import type { UpToDateOptions } from "../run/target-reuse.js";
import { buildEngines, type BuildEngines } from "./build-engines.js";
import { keptTarballs, tarballPacker } from "./build-outputs.js";
import type { Reporter } from "../ui/reporter.js";

export interface BuildStackOptions {
  /** "build" packs a tarball per target; "warm" only fills the buildcache. Default "build". */
  mode?: "build" | "warm";
  /** Targets to build (default: every target of the stack). */
  targets?: readonly string[];
  cacheRoot: string;
  /** Where tarballs go (build mode). */
  outDir?: string;
  compression?: Compression;
  /** Containers at once; default from the host's cores and memory. */
  concurrency?: number;
  /** Build jobs per container; default cores / concurrency. */
  jobs?: number;
  cpus?: number;
  /** Memory limit per container, bytes. */
  memory?: number;
  failFast?: boolean;
  keepContainer?: boolean;
  /** Concretize every target afresh, even when an earlier spack.lock with the same inputs would do. */
  fresh?: boolean;
  extraEnv?: Record<string, string>;
  reporter: Reporter;
  signal: AbortSignal;
  /** Default: the local engine. */
  engine?: Engine;
  /**
   * Sign each tarball (`<tarball>.asc`, the fingerprint in its manifest); a key from files also signs the buildcache
   * (a buildcache of its own: signed pushes, signature checks on install).
   */
  signing?: SigningKey;
  /**
   * The engines to build on (`--engine`, or `engines:` of the factory settings), each with its cache root and
   * concurrency (default: `cacheRoot` and the concurrency chosen from this host). Absent: `engine` alone, as before.
   */
  engines?: readonly EngineSetting[];
  /** The buildcache every engine shares (factory settings `buildcache:`). */
  buildcache?: BuildcacheLocation;
  /** The registry credentials file (factory settings `credentials:`), read here and never passed on as a value. */
  credentialsFile?: string;
  /**
   * Know before a target's container starts that it has nothing to do (default true); false runs every target, as
   * benchmarks measure the path it saves.
   */
  upToDate?: boolean;
  /** The CA file the registry's certificate is signed by (factory settings `buildcache_ca:`). */
  registryCaFile?: string;
  /** Changes the plan before it runs (a build from a kit adds the kit's bootstrap source). */
  adjustPlan?: (plan: BuildPlan) => BuildPlan;
}

/** What running a placed plan takes: the run's own choices (what is planned is in the plan). */
export type RunStackOptions = Pick<
  BuildStackOptions,
  | "mode"
  | "engine"
  | "outDir"
  | "compression"
  | "cpus"
  | "memory"
  | "failFast"
  | "keepContainer"
  | "fresh"
  | "extraEnv"
  | "reporter"
  | "signal"
  | "signing"
  | "credentialsFile"
  | "registryCaFile"
  | "upToDate"
>;

export interface BuildStackResult {
  plan: BuildPlan;
  result: RunResult;
  report: RunReport;
}

/** Thrown when a run fails before any target could finish (image build, Spack clone, Ctrl-C early). */
export class RunStartError extends Error {
  constructor(
    readonly runId: string,
    readonly plan: BuildPlan,
    override readonly cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/**
 * The engines a placed plan runs on: those it was placed on, each at the same address with the same architecture
 * and cache root (refused otherwise), with the plan's concurrency; engines that do not answer now are down.
 */
async function enginesOfPlan(placed: PlacedStack, options: Pick<BuildStackOptions, "engine" | "reporter">) {
  const placement = placed.plan.placement as PlanPlacement;
  const connected = placed.engines?.connected;
  const first = placement.engines[0];
  if (first === undefined) throw new InputError("the plan is placed on no engine");
  if (connected !== undefined) {
    const checked = enginesForPlan(placement.engines, connected.up, connected.down);
    return { engine: (checked.up[0] ?? connected.up[0])!.engine, connected: checked } satisfies BuildEngines;
  }
  const engine = placed.engines?.engine ?? options.engine ?? (await connectEngine());
  enginesForPlan(placement.engines, [oneEngine(engine, first)], []);
  const each = `${placement.jobs} job(s) each${first.sizing === undefined ? "" : ` (${first.sizing})`}`;
  options.reporter.emit({ type: "info", message: `${first.concurrency} container(s) at once, ${each}` });
  return { engine } satisfies BuildEngines;
}

/** A stack planned and placed on the engines it runs on: what `plan --out` writes and `build` runs. */
export interface PlacedStack {
  /** The plan, with its placement. */
  plan: BuildPlan;
  /** The engines of the settings, connected when the plan was placed (absent: the one default engine). */
  engines?: BuildEngines;
}

/** Plan the stack and place it on its engines (connected, each sized): nothing is built. */
export async function planStack(stack: Stack, options: BuildStackOptions): Promise<PlacedStack> {
  const mode = options.mode ?? "build";
  const targets = options.targets ?? stack.targets;
  const { concurrency, jobs, reason } = chooseConcurrency({
    targets: targets.length,
    cores: availableParallelism(),
    memoryBytes: totalmem(),
    ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
    ...(options.jobs === undefined ? {} : { jobs: options.jobs }),
    ...(options.memory === undefined ? {} : { memoryLimit: options.memory }),
  });
  // A key from files signs the buildcache too (in the containers); a key of the user's agent signs tarballs only.
  const bcKey = options.signing?.kind === "file" ? options.signing : undefined;
  const planned = planBuild(stack, targets, {
    templates: await loadTemplates(),
    jobs,
    mode,
    ...(bcKey === undefined ? {} : { signing: { fingerprint: bcKey.fingerprint, publicKey: bcKey.publicKey } }),
  });
  const plan = options.adjustPlan === undefined ? planned : options.adjustPlan(planned);
  const oci = options.buildcache?.kind === "oci";
  const registryCa =
    options.registryCaFile !== undefined && oci ? await loadRegistryCa(options.registryCaFile) : undefined;
  // Engines of the settings are reached to learn their architecture and size; the one default engine need not be.
  const engines =
    options.engines === undefined
      ? undefined
      : await buildEngines(
          { ...options, engines: options.engines },
          { concurrency, jobs, reason, targets: targets.length },
        );
  const up = engines?.connected?.up;
  const placed = placePlan(plan, {
    factory: await factoryIdentity(),
    cacheRoot: options.cacheRoot,
    jobs,
    engines:
      up === undefined
        ? [defaultPlannedEngine(options.engine, { cacheRoot: options.cacheRoot, concurrency, reason })]
        : plannedEngines(up),
    credentials: options.credentialsFile !== undefined && oci,
    ...(options.buildcache === undefined ? {} : { buildcache: options.buildcache }),
    ...(registryCa === undefined ? {} : { registryCa }),
  });
  return { plan: placed, ...(engines === undefined ? {} : { engines }) };
}

export async function buildStack(stack: Stack, options: BuildStackOptions): Promise<BuildStackResult> {
  return runStack(await planStack(stack, options), options);
}

/** Run a placed plan (planned now, or written earlier by `plan --out`): tarballs or a warm buildcache, and the report. */
export async function runStack(placed: PlacedStack, options: RunStackOptions): Promise<BuildStackResult> {
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const mode = options.mode ?? "build";
  const { plan } = placed;
  const placement = plan.placement as PlanPlacement;
  const engines = await enginesOfPlan(placed, options);
  const outDir = options.outDir ?? "dist";
  // Fail now, not after the builds, when the output directory cannot be made.
  if (mode === "build") {
    await mkdir(outDir, { recursive: true }).catch((error: NodeJS.ErrnoException) => {
      throw new InputError(`output directory ${outDir}: cannot create it (${error.code ?? error.message})`);
    });
  }
  const credentials =
    options.credentialsFile !== undefined && placement.secrets.length > 0
      ? await loadRegistryCredentials(options.credentialsFile)
      : undefined;
  const registryCa =
    options.registryCaFile !== undefined && placement.buildcache?.kind === "oci"
      ? await loadRegistryCa(options.registryCaFile)
      : undefined;
  const compression = options.compression ?? "gzip";
  const outputs = {
    outDir,
    compression,
    signal: options.signal,
    ...(options.signing === undefined ? {} : { signing: options.signing }),
  };
  const bcKey = options.signing?.kind === "file" ? options.signing : undefined;
  const packer = mode === "build" ? tarballPacker(plan, outputs) : undefined;
  const upToDate: UpToDateOptions = mode === "build" ? keptTarballs(plan, outputs) : {};
  const { engine, connected } = engines;
  const concurrency = placement.engines[0]?.concurrency ?? 1;
  let result: RunResult;
  try {
    result = await runPlan(plan, {
      engine,
      ...(connected === undefined ? {} : { engines: connected.up, downEngines: connected.down }),
      ...(placement.buildcache === undefined ? {} : { buildcache: placement.buildcache }),
      ...(credentials === undefined ? {} : { credentials }),
      ...(registryCa === undefined ? {} : { registryCa }),
      reporter: options.reporter,
      signal: options.signal,
      cacheRoot: placement.cacheRoot,
      concurrency,
      extraEnv: options.extraEnv ?? {},
      ...(options.failFast === true ? { failFast: true } : {}),
      ...(options.keepContainer === true ? { keepContainer: true } : {}),
      ...(options.fresh === true ? { reuseLocks: false } : {}),
      ...(options.cpus === undefined ? {} : { cpus: options.cpus }),
      ...(options.memory === undefined ? {} : { memory: options.memory }),
      ...(packer === undefined ? {} : { packer }),
      ...(bcKey === undefined ? {} : { signingKey: bcKey }),
      ...(options.upToDate === false ? {} : { upToDate }),
    });
  } catch (error) {
    throw new RunStartError(engine.runId, plan, error);
  }
  const total = connected === undefined ? concurrency : connected.up.reduce((n, e) => n + e.concurrency, 0);
  const report = await buildReport(plan, result, {
    mode,
    concurrency: total,
    jobs: placement.jobs,
    seconds: (performance.now() - started) / 1000,
    startedAt,
  });
  return { plan, result, report };
}
