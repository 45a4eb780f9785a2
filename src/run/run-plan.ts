import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { BuildcacheLocation } from "../config/factory.js";
import type { BuildContainer, Engine } from "../docker/index.js";
import { dispatch, eligibleEngines } from "../plan/dispatch.js";
import { placePlan, type RegistryCredentials } from "../plan/placement.js";
import { factoryIdentity } from "../factory-identity.js";
import type { DownEngine, RunEngine } from "./engines.js";
import type { BuildPlan, TargetPlan } from "../plan/types.js";
import type { Reporter } from "../ui/reporter.js";
import { CACHE_LAYOUT } from "../cache/layout.js";
import { registerRun } from "../cache/usage.js";
import { prepareCacheDirs } from "./host-caches.js";
import type { UpToDateOptions } from "./target-reuse.js";
import type { SharedOut } from "./shared-out.js";
import type { LockOutcome, StepTiming } from "./run-target.js";
import { canRun, detectHostFromSystem } from "../targets/index.js";
import type { TargetLog } from "./target-log.js";
import type { FileSigningKey } from "../sign/key.js";
import { buildOn, type RunContext } from "./build-on.js";
import { builderImages } from "./builder-images.js";
import { EngineSet } from "./engine-set.js";
import { lockKeys } from "./lock-keys.js";
import { prepareHost, type SourceCommits } from "./prepare-host.js";
import { prepareRemoteRoots } from "./remote-roots.js";
import { plannedEngines } from "./planned-engines.js";

export type { SourceCommits } from "./prepare-host.js";

export interface RunOptions {
  /** The one engine of a run over a single engine (absent when `engines` is given). */
  engine?: Engine;
  reporter: Reporter;
  signal: AbortSignal;
  cacheRoot: string;
  /** Containers building at once. */
  concurrency: number;
  failFast?: boolean;
  keepContainer?: boolean;
  cpus?: number;
  memory?: number;
  extraEnv?: Record<string, string>;
  /** Reuse a target's spack.lock when nothing that feeds concretization changed (default true). */
  reuseLocks?: boolean;
  /** Register the compiler and externals even when a target's concretization is reused (benchmarks; default false). */
  registerWithReusedLock?: boolean;
  /** Packs each built target while its container is still there (absent: nothing is packed, as in warm). */
  packer?: TargetPacker;
  /** The secret key of a plan that signs its buildcache pushes (targets' `signing`). */
  signingKey?: FileSigningKey;
  /**
   * Several engines, each with its cache root (on its host) and concurrency; targets go to engines of their
   * architecture. Absent: `engine` alone, with `cacheRoot` and `concurrency`, taking every target as before.
   */
  engines?: RunEngine[];
  /** Engines of the settings that did not answer: they get no targets, and targets only they could build fail. */
  downEngines?: DownEngine[];
  /** The buildcache every engine shares (a registry or a path every engine's host sees); absent: under each cache root. */
  buildcache?: BuildcacheLocation;
  /** The registry's credentials, for an oci:// buildcache that needs them. */
  credentials?: RegistryCredentials;
  /** Know before a target's container starts whether it has anything to do (absent: every target runs). */
  upToDate?: UpToDateOptions;
  /** The CA (PEM) the registry's certificate is signed by, for build containers to trust. */
  registryCa?: string;
}

/** What a packer knows of the run besides the target. */
export type PackContext = SourceCommits & {
  imageId: string;
  captured: Record<string, string>;
  /** The output directory's staging directory, mounted in the container (an engine of this machine). */
  sharedOut?: SharedOut;
};

/** Turns a built target, in its still-running container, into what the run reports (a tarball). */
export interface TargetPacker {
  pack(target: TargetPlan, container: BuildContainer, log: TargetLog, context: PackContext): Promise<TargetExtra>;
  /** Where tarballs go: on an engine of this machine, mounted in the container for the packer to write into. */
  outDir?: string;
}

/** What a packer adds to a target's result. */
export interface TargetExtra {
  tarball?: string;
  tarballBytes?: number;
  /** The tarball's sha256 (hex), as its `.sha256` sidecar says. */
  tarballSha256?: string;
  /** What a node needs to run the tarball (from its manifest's `portability`). */
  nodeFloor?: NodeFloor;
  /** Portability hazards of the packed tree (libraries outside the view a node may lack, ...). */
  warnings?: string[];
}

/** The least a node must offer to run a target's tarball. */
export interface NodeFloor {
  /** The microarchitecture the tree was built for (the target). */
  cpu: string;
  /** ELF machine of its binaries (`x86_64`, `aarch64`). */
  machine: string;
  /** The newest glibc symbol version it needs (`GLIBC_2.34`), when it needs glibc at all. */
  glibc?: string;
}

export type TargetStatus = "ok" | "failed" | "cancelled" | "skipped";

export interface TargetResult extends TargetExtra {
  target: string;
  status: TargetStatus;
  seconds: number;
  logPath: string;
  steps: StepTiming[];
  captured: Record<string, string>;
  /** Whether the target's concretization was reused from an earlier run, and why or why not. */
  lock?: LockOutcome;
  /** The engine that built it (runs over several engines). */
  engine?: string;
  /** Whether it was up to date (nothing started), or why it ran. */
  upToDate?: { upToDate: boolean; reason: string };
  /** An up-to-date target: the concrete specs its buildcache holds (`<name>-<version>-<hash>`). */
  reusedSpecs?: string[];
  error?: string;
}

export interface RunResult {
  runId: string;
  image: { tag: string; built: boolean; id: string };
  spackCommit: string;
  spackPackagesCommit?: string;
  targets: TargetResult[];
  cancelled: boolean;
}

/**
 * Carry out a build plan, in this order: the engines cleared of dead runs, the host's caches and checkouts, the
 * builder image on every engine, the cache roots of engines of other hosts, then each target on a free engine of
 * its family (`concurrency` at a time on each), and no container of the run left behind.
 */
export async function runPlan(given: BuildPlan, options: RunOptions): Promise<RunResult> {
  const { reporter, signal } = options;
  const engines = EngineSet.of(options);
  // A plan placed when it was made runs as placed; one that was not is placed here, the same way.
  const plan =
    given.placement === undefined
      ? await placeOnEngines(given, engines, {
          ...options,
          credentials: options.credentials !== undefined,
          jobs: plannedJobs(given),
        })
      : given;
  const runId = engines.runId;
  // A target no engine builds is refused before anything runs (unless an engine that did not answer might have).
  if (engines.down.size === 0) eligibleEngines(plan.targets, [...engines.members]);
  const targets = plan.targets.map((t) => t.target);
  reporter.emit({ type: "run-start", runId, targets, concurrency: engines.concurrency });
  await engines.removeLeftovers(reporter);
  // The cache root of every engine of this host, and the factory's own (logs, records, locks).
  const engineRoots = [...new Set(engines.members.filter((e) => e.engine.local).map((e) => e.cacheRoot))];
  const unregisters: (() => Promise<void>)[] = [];
  try {
    // Registered first, so that a concurrent `cache prune` leaves alone what this run is about to use.
    for (const root of new Set([...engineRoots, options.cacheRoot])) {
      await mkdir(root, { recursive: true });
      unregisters.push(await registerRun(root, runId, usedEntries(plan, options)));
    }
    // The clones live under the first local engine's cache root, or the factory's own when every engine is remote
    // (they are sent from there): cache directories only where a local engine mounts them.
    const sourceRoot = engineRoots[0] ?? options.cacheRoot;
    const commits = await prepareHosts(plan, options, engines, engineRoots, sourceRoot);
    const images = await builderImages(plan, engines, options);
    const synced = await prepareRemoteRoots(plan, engines, sourceRoot, options);
    const keys = await lockKeys(plan, sourceRoot);
    const failFast = new AbortController();
    const targetSignal = AbortSignal.any([signal, failFast.signal]);
    const context = {
      plan,
      options,
      engines,
      runId,
      imageOf: images.of,
      synced,
      keys,
      commits,
      targetSignal,
      failFast,
    };
    return {
      runId,
      image: { tag: plan.builder.tag, built: images.built, id: images.first.id },
      ...commits,
      targets: await dispatchTargets(context),
      cancelled: signal.aborted,
    };
  } finally {
    // Whatever happened, no container of this run outlives it on any engine (unless kept on purpose for inspection).
    await engines.settle();
    if (options.keepContainer !== true || signal.aborted) await engines.removeRun(runId);
    for (const unregister of unregisters) await unregister();
  }
}

/** The plan placed on the run's engines, as `plan --out` would have placed it. */
export async function placeOnEngines(
  plan: BuildPlan,
  engines: EngineSet,
  options: Pick<RunOptions, "cacheRoot" | "buildcache" | "registryCa"> & { credentials: boolean; jobs: number },
): Promise<BuildPlan> {
  return placePlan(plan, {
    factory: await factoryIdentity(),
    cacheRoot: options.cacheRoot,
    jobs: options.jobs,
    engines: plannedEngines(engines.members),
    credentials: options.credentials,
    ...(options.buildcache === undefined ? {} : { buildcache: options.buildcache }),
    ...(options.registryCa === undefined ? {} : { registryCa: options.registryCa }),
  });
}

/** The jobs the plan's install step was given (`-j N`), for a plan placed by the run itself. */
function plannedJobs(plan: BuildPlan): number {
  const argv = plan.targets[0]?.steps.find((s) => s.id === "install")?.argv ?? [];
  const at = argv.indexOf("-j");
  return at < 0 ? 1 : Number(argv[at + 1] ?? 1);
}

/** Cache entries the run uses, and kept tarballs it may hand out: left alone by `cache prune` while the run lives. */
function usedEntries(plan: BuildPlan, options: RunOptions): string[] {
  return [
    ...new Set(plan.targets.flatMap((t) => t.mounts.filter((m) => !m.hostIsAbsolute).map((m) => m.host))),
    ...(options.upToDate === undefined ? [] : plan.targets.map((t) => CACHE_LAYOUT.kept(t.outputs.dirName))),
  ];
}

/** Every local engine's cache root and checkouts, the shared path buildcache, and what this host's CPU cannot run. */
async function prepareHosts(
  plan: BuildPlan,
  options: RunOptions,
  engines: EngineSet,
  engineRoots: string[],
  sourceRoot: string,
): Promise<SourceCommits> {
  const { reporter, signal } = options;
  // A buildcache the settings put elsewhere is no cache directory of the engines.
  const hostPlan: BuildPlan =
    options.buildcache === undefined
      ? plan
      : {
          ...plan,
          targets: plan.targets.map((t) => ({ ...t, mounts: t.mounts.filter((m) => m.kind !== "buildcache") })),
        };
  const commits = await prepareHost(hostPlan, sourceRoot, reporter, signal, { cacheDirs: engineRoots.length > 0 });
  for (const root of engineRoots.slice(1)) await prepareHost(hostPlan, root, reporter, signal, { cacheDirs: true });
  const shared = options.buildcache;
  if (shared?.kind === "path") {
    for (const t of plan.targets) {
      const mounts = t.mounts.filter((m) => m.kind === "buildcache").map((m) => ({ ...m, host: t.buildcacheKey }));
      await prepareCacheDirs(mounts, shared.path);
    }
  }
  // This host's CPU says something only of targets built on engines of this host.
  const local = engines.members.filter((e) => e.engine.local);
  const here = plan.targets.filter((t) => local.some((e) => EngineSet.serves(e, t)));
  await noteForeignTargets({ ...plan, targets: here }, reporter);
  return commits;
}

/**
 * Each target on the next free engine of its family; targets only engines that are down could have built fail
 * at once, naming the engines down.
 */
async function dispatchTargets(ctx: RunContext): Promise<TargetResult[]> {
  const { plan, engines, options } = ctx;
  const failedEarly = (target: TargetPlan, reason: string): TargetResult => {
    const message = `target ${target.target}: ${reason}`;
    options.reporter.emit({ type: "target-done", target: target.target, ok: false, seconds: 0, detail: message });
    const logPath = join(options.cacheRoot, CACHE_LAYOUT.targetLog(ctx.runId, target.target));
    return { target: target.target, status: "failed", seconds: 0, logPath, steps: [], captured: {}, error: message };
  };
  const planned = new Map(plan.targets.map((t) => [t.target, t]));
  const live = engines.live();
  const orphans = plan.targets.filter((t) => !live.some((e) => EngineSet.serves(e, t)));
  const dispatched = await dispatch<TargetResult>({
    targets: plan.targets.filter((t) => !orphans.includes(t)),
    engines: live.map((e) => ({ name: e.name, arch: e.arch, concurrency: e.concurrency })),
    run: (t, name) => buildOn(ctx, planned.get(t.target) as TargetPlan, engines.get(name)),
    down: (name) => engines.down.get(name),
    stranded: (t, reason) => failedEarly(planned.get(t.target) as TargetPlan, reason),
  });
  const unbuildable = (t: TargetPlan): string =>
    `no engine that builds ${t.family} targets is up; engines down: ${engines.downList()}`;
  const byTarget = new Map(dispatched.map((r) => [r.target, r]));
  return plan.targets.map((t) => byTarget.get(t.target) ?? failedEarly(t, unbuildable(t)));
}

/** Say once per target when this host cannot run the target's code (build-time tests may then die with SIGILL). */
async function noteForeignTargets(plan: BuildPlan, reporter: Reporter): Promise<void> {
  const host = await detectHostFromSystem().catch(() => undefined);
  if (host === undefined) return;
  for (const { target } of plan.targets) {
    if (!canRun(host, target)) {
      reporter.emit({
        type: "info",
        message: `target ${target}: this host (${host}) cannot run ${target} code; it is built anyway, but anything the build runs (tests, generated tools) may die with SIGILL`,
      });
    }
  }
}
