/**
 * The programmatic API behind `build` and `warm`: a stack in, tarballs (or a warm buildcache) and a run report out.
 * The CLI turns flags into these options and calls it; tests can call it directly.
 */
import { mkdir } from "node:fs/promises";
import { availableParallelism, totalmem } from "node:os";
import { loadRegistryCredentials, type BuildcacheLocation, type EngineSetting } from "../config/factory.js";
import type { RegistryCredentials } from "../config/credentials.js";
import { loadRegistryCa } from "../config/registry-ca.js";
import type { Stack } from "../config/types.js";
import type { Engine } from "../docker/index.js";
import { InputError } from "../errors.js";
import type { Compression } from "../package/compressor.js";
import { planBuild } from "../plan/plan.js";
import type { BuildPlan } from "../plan/types.js";
import { loadTemplates } from "../render/templates.js";
import type { FileSigningKey, SigningKey } from "../sign/key.js";
import { chooseConcurrency } from "../run/concurrency.js";
import { buildReport, type RunReport } from "../run/report.js";
import { runPlan, type RunResult } from "../run/run-plan.js";
import type { UpToDateOptions } from "../run/target-reuse.js";
import { buildEngines } from "./build-engines.js";
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

export async function buildStack(stack: Stack, options: BuildStackOptions): Promise<BuildStackResult> {
  const started = performance.now();
  const startedAt = new Date().toISOString();
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
  const plan = await planStack(stack, targets, { mode, jobs, bcKey, adjustPlan: options.adjustPlan });
  const outDir = options.outDir ?? "dist";
  // Fail now, not after the builds, when the output directory cannot be made.
  if (mode === "build") await makeOutDir(outDir);
  const registry = await registryAccess(options);
  const { engine, connected } = await buildEngines(options, { concurrency, jobs, reason, targets: targets.length });
  const outputs = {
    outDir,
    compression: options.compression ?? "gzip",
    signal: options.signal,
    ...(options.signing === undefined ? {} : { signing: options.signing }),
  };
  const packer = mode === "build" ? tarballPacker(plan, outputs) : undefined;
  const upToDate: UpToDateOptions = mode === "build" ? keptTarballs(plan, outputs) : {};
  let result: RunResult;
  try {
    result = await runPlan(plan, {
      engine,
      ...(connected === undefined ? {} : { engines: connected.up, downEngines: connected.down }),
      ...(options.buildcache === undefined ? {} : { buildcache: options.buildcache }),
      ...registry,
      reporter: options.reporter,
      signal: options.signal,
      cacheRoot: options.cacheRoot,
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
  const seconds = (performance.now() - started) / 1000;
  const report = await buildReport(plan, result, { mode, concurrency: total, jobs, seconds, startedAt });
  return { plan, result, report };
}

/** The plan of the run: signed with a key from files, changed by `adjustPlan` (a kit's) when given. */
async function planStack(
  stack: Stack,
  targets: readonly string[],
  how: {
    mode: "build" | "warm";
    jobs: number;
    bcKey: FileSigningKey | undefined;
    adjustPlan: ((plan: BuildPlan) => BuildPlan) | undefined;
  },
): Promise<BuildPlan> {
  const { bcKey } = how;
  const planned = planBuild(stack, targets, {
    templates: await loadTemplates(),
    jobs: how.jobs,
    mode: how.mode,
    ...(bcKey === undefined ? {} : { signing: { fingerprint: bcKey.fingerprint, publicKey: bcKey.publicKey } }),
  });
  return how.adjustPlan === undefined ? planned : how.adjustPlan(planned);
}

async function makeOutDir(outDir: string): Promise<void> {
  await mkdir(outDir, { recursive: true }).catch((error: NodeJS.ErrnoException) => {
    throw new InputError(`output directory ${outDir}: cannot create it (${error.code ?? error.message})`);
  });
}

/** The registry's credentials and CA, read now (before any engine), for a buildcache in a registry. */
async function registryAccess(
  options: BuildStackOptions,
): Promise<{ credentials?: RegistryCredentials; registryCa?: string }> {
  if (options.buildcache?.kind !== "oci") return {};
  return {
    ...(options.credentialsFile === undefined
      ? {}
      : { credentials: await loadRegistryCredentials(options.credentialsFile) }),
    ...(options.registryCaFile === undefined ? {} : { registryCa: await loadRegistryCa(options.registryCaFile) }),
  };
}
