import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { BuildcacheLocation } from "../config/factory.js";
import { removeByLabel, removeDeadRuns, type BuildContainer, type Engine } from "../docker/index.js";
import { BuildError, CancelledError, FactoryError } from "../errors.js";
import { ANY_ARCH, dispatch, eligibleEngines, familyOfEngineArch } from "../plan/dispatch.js";
import { placeTarget, remoteRootNeeds, type RegistryCredentials } from "../plan/placement.js";
import { ensureImages, type EngineImage } from "./engine-images.js";
import type { DownEngine, RunEngine } from "./engines.js";
import type { BuildPlan, TargetPlan } from "../plan/types.js";
import { formatBytes } from "../ui/format.js";
import type { Reporter } from "../ui/reporter.js";
import { CACHE_LAYOUT } from "../cache/layout.js";
import { registerRun } from "../cache/usage.js";
import { hostPathOf, prepareCacheDirs } from "./host-caches.js";
import {
  concretizationKey,
  plannedEnvironments,
  repoDigest,
  treeIdentity,
  type ConcretizationInputs,
  type LockKey,
} from "./lock-reuse.js";
import { concretizationInputsByName } from "./up-to-date-inputs.js";
import { upToDateTarget, type UpToDateOptions } from "./target-reuse.js";
import { prepareSharedOut, removeSharedOut, type SharedOut } from "./shared-out.js";
import { runTarget, type LockOutcome, type StepTiming } from "./run-target.js";
import { BUILTIN_IN_CHECKOUT } from "../config/inspect.js";
import type { Origin } from "../config/types.js";
import { canRun, detectHostFromSystem } from "../targets/index.js";
import { ensureSpackCheckout, headOf } from "./spack-checkout.js";
import { clearPoisonedPackageRepos } from "./user-cache.js";
import { prepareRemoteRoot, treeLister } from "./remote-root.js";
import type { TargetLog } from "./target-log.js";
import type { FileSigningKey } from "../sign/key.js";

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

/** Carry out a build plan: image, Spack checkout, one container per target, `concurrency` at a time. */
export async function runPlan(plan: BuildPlan, options: RunOptions): Promise<RunResult> {
  const { reporter, signal } = options;
  const several = options.engines !== undefined;
  const engines: RunEngine[] =
    options.engines ??
    (options.engine === undefined
      ? []
      : [
          {
            name: options.engine.name,
            engine: options.engine,
            cacheRoot: options.cacheRoot,
            concurrency: options.concurrency,
            arch: ANY_ARCH,
          },
        ]);
  if (engines[0] === undefined) throw new BuildError("runPlan: no engine to build on (give engine or engines)");
  // Every engine labels what it creates with this run's id, pid and host.
  const runId = engines[0].engine.runId;
  // Engines that went down: they take no more targets. Those of the settings that never answered are down already.
  const down = new Map<string, string>(
    (options.downEngines ?? []).map((d) => [d.name, `did not answer at ${d.where}: ${d.reason}`]),
  );
  // A target no engine builds is refused before anything runs (unless an engine that did not answer might have).
  if (down.size === 0) eligibleEngines(plan.targets, engines);
  reporter.emit({
    type: "run-start",
    runId,
    targets: plan.targets.map((t) => t.target),
    concurrency: engines.reduce((n, e) => n + e.concurrency, 0),
  });

  for (const e of engines) {
    const leftovers = await removeDeadRuns(e.engine).catch((error: unknown) => {
      // One engine: its failure is the run's, as ever. Several: that engine is down, the others go on.
      if (!several) throw error;
      down.set(e.name, error instanceof Error ? error.message : String(error));
      return undefined;
    });
    if (leftovers !== undefined && leftovers.length > 0) {
      reporter.emit({
        type: "info",
        message: `removed ${leftovers.length} container(s) left by dead runs${several ? ` on engine ${e.name}` : ""}`,
      });
    }
  }

  const entries = [
    ...new Set(plan.targets.flatMap((t) => t.mounts.filter((m) => !m.hostIsAbsolute).map((m) => m.host))),
    // Kept tarballs a run may hand out: stamped as used, and left alone by `cache prune` while the run lives.
    ...(options.upToDate === undefined ? [] : plan.targets.map((t) => CACHE_LAYOUT.kept(t.outputs.dirName))),
  ];
  const unregisters: (() => Promise<void>)[] = [];
  // The cache root of every engine of this host, and the factory's own (logs, records, locks).
  const engineRoots = [...new Set(engines.filter((e) => e.engine.local).map((e) => e.cacheRoot))];
  const roots = [...new Set([...engineRoots, options.cacheRoot])];
  // A buildcache the settings put elsewhere is no cache directory of the engines.
  const hostPlan: BuildPlan =
    options.buildcache === undefined
      ? plan
      : {
          ...plan,
          targets: plan.targets.map((t) => ({ ...t, mounts: t.mounts.filter((m) => m.kind !== "buildcache") })),
        };
  try {
    // Registered first, so that a concurrent `cache prune` leaves alone what this run is about to use.
    for (const root of roots) {
      await mkdir(root, { recursive: true });
      unregisters.push(await registerRun(root, runId, entries));
    }
    // The clones live under the first local engine's cache root, or the factory's own when every engine is remote
    // (they are sent from there): cache directories only where a local engine mounts them.
    const sourceRoot = engineRoots[0] ?? options.cacheRoot;
    const { spackCommit, spackPackagesCommit } = await prepareHost(hostPlan, sourceRoot, reporter, signal, {
      cacheDirs: engineRoots.length > 0,
    });
    for (const root of engineRoots.slice(1)) await prepareHost(hostPlan, root, reporter, signal, { cacheDirs: true });
    const shared = options.buildcache;
    if (shared?.kind === "path") {
      for (const t of plan.targets) {
        await prepareCacheDirs(
          t.mounts.filter((m) => m.kind === "buildcache").map((m) => ({ ...m, host: t.buildcacheKey })),
          shared.path,
        );
      }
    }
    // This host's CPU says something only of targets built on engines of this host.
    await noteForeignTargets(
      {
        ...plan,
        targets: plan.targets.filter((t) =>
          engines.some((e) => e.engine.local && (e.arch === ANY_ARCH || familyOfEngineArch(e.arch) === t.family)),
        ),
      },
      reporter,
    );
    const images = await ensureImages(
      engines.filter((e) => !down.has(e.name)),
      plan.builder,
      { reporter, signal },
    );
    const firstImage = [...images.values()].find((i): i is EngineImage => !(i instanceof Error));
    if (firstImage === undefined) {
      // No engine has the builder image: the run cannot start (as with one engine whose image build failed).
      throw (
        [...images.values()].find((i) => i instanceof Error) ??
        new BuildError(`no engine can build: ${[...down].map(([name, why]) => `${name} ${why}`).join("; ")}`)
      );
    }
    for (const [name, image] of images)
      if (image instanceof Error) down.set(name, `has no builder image: ${image.message}`);
    reporter.emit({
      type: "image",
      tag: plan.builder.tag,
      built: [...images.values()].some((i) => !(i instanceof Error) && i.built),
    });
    const imageOf = (name: string): EngineImage => images.get(name) as EngineImage;
    // Engines of other hosts get their cache directories and this host's trees through the engine itself.
    const synced = new Map<string, ReadonlyMap<string, string>>();
    const trees = treeLister(sourceRoot);
    await Promise.all(
      engines
        .filter((e) => !e.engine.local && !down.has(e.name))
        .map(async (e) => {
          const theirs = plan.targets.filter((t) => e.arch === ANY_ARCH || familyOfEngineArch(e.arch) === t.family);
          try {
            const prepared = await prepareRemoteRoot(e, remoteRootNeeds(theirs, options.buildcache), {
              image: plan.builder.tag,
              trees,
              reporter,
              signal,
            });
            synced.set(e.name, prepared.synced);
            reporter.emit({
              type: "info",
              message: `engine ${e.name}: cache root ${e.cacheRoot} ready${prepared.sent.length === 0 ? "" : ` (sent ${prepared.sent.length} tree(s), ${formatBytes(prepared.bytesSent)})`}`,
            });
          } catch (error) {
            if (signal.aborted) throw error;
            down.set(
              e.name,
              `could not prepare its cache root: ${error instanceof Error ? error.message : String(error)}`,
            );
          }
        }),
    );
    const repoDigests = await digestRepos(plan);
    // What the checkouts hold rather than their commits: a checkout inside a larger repository keeps its identity
    // while only other files of that repository change, and uncommitted changes count.
    const identityOf = async (kind: "spack" | "spack-packages"): Promise<string | undefined> => {
      const mount = plan.targets[0]?.mounts.find((m) => m.kind === kind);
      return mount === undefined ? undefined : treeIdentity(hostPathOf(mount, sourceRoot));
    };
    const spackIdentity = (await identityOf("spack")) ?? "unknown";
    const packagesIdentity = await identityOf("spack-packages");
    const inputsOf = (target: TargetPlan, imageId: string): ConcretizationInputs => ({
      environments: plannedEnvironments(target.files),
      spackCommit: spackIdentity,
      ...(packagesIdentity === undefined ? {} : { spackPackagesCommit: packagesIdentity }),
      repoDigests,
      imageId,
    });
    const lockKeyOf = (target: TargetPlan, imageId: string): LockKey => concretizationKey(inputsOf(target, imageId));

    const failFast = new AbortController();
    const targetSignal = AbortSignal.any([signal, failFast.signal]);
    const byName = new Map(engines.map((e) => [e.name, e]));
    const buildOn = async (planned: TargetPlan, runEngine: RunEngine): Promise<TargetResult> => {
      const target = planned;
      const engine = runEngine.engine;
      const image = imageOf(runEngine.name);
      const onEngine = several ? { engine: runEngine.name } : {};
      const logPath = join(options.cacheRoot, CACHE_LAYOUT.targetLog(runId, target.target));
      if (targetSignal.aborted) {
        return {
          target: target.target,
          status: signal.aborted ? "cancelled" : "skipped",
          seconds: 0,
          logPath,
          steps: [],
          captured: {},
          ...onEngine,
        };
      }
      reporter.emit({ type: "target-start", target: target.target });
      const started = performance.now();
      let extra: TargetExtra = {};
      // The target as it runs there: caches under that engine's cache root, the shared buildcache, credentials.
      const placed = placeTarget(target, {
        engine: runEngine.name,
        cacheRoot: runEngine.cacheRoot,
        factoryCacheRoot: options.cacheRoot,
        ...(options.buildcache === undefined ? {} : { buildcache: options.buildcache }),
        ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
        ...(options.registryCa === undefined ? {} : { registryCa: options.registryCa }),
        ...(synced.has(runEngine.name) ? { synced: synced.get(runEngine.name) as ReadonlyMap<string, string> } : {}),
        ...(runEngine.jobs === undefined ? {} : { jobs: runEngine.jobs }),
      });
      // Nothing to do: said, and nothing started. Otherwise the reason it runs, and what it made is kept after it.
      const reuse =
        options.upToDate === undefined
          ? undefined
          : await upToDateTarget(placed, options.upToDate, {
              lockKey: lockKeyOf(placed, image.id),
              concretization: concretizationInputsByName(inputsOf(placed, image.id)),
              cacheRoot: options.cacheRoot,
              fresh: options.reuseLocks === false,
              ...pick(options, ["buildcache", "credentials", "registryCa"]),
              engine: { name: runEngine.name, local: engine.local, cacheRoot: runEngine.cacheRoot },
              signal: targetSignal,
              logPath,
              reporter,
            });
      if (reuse?.result !== undefined) return { ...reuse.result, ...onEngine };
      // An engine of this machine packs straight into the output directory (through a mount, not the engine API).
      const staged =
        options.packer?.outDir !== undefined && engine.local
          ? await prepareSharedOut(options.packer.outDir, runId, target.target).catch(() => undefined)
          : undefined;
      try {
        const outcome = await runTarget(
          staged === undefined ? placed : { ...placed, mounts: [...placed.mounts, staged.mount] },
          {
            engine,
            image: plan.builder.tag,
            cacheRoot: options.cacheRoot,
            logPath,
            workDir: join(options.cacheRoot, CACHE_LAYOUT.targetRecord(runId, target.target)),
            reporter,
            signal: targetSignal,
            ...pick(options, ["keepContainer", "cpus", "memory", "extraEnv", "signingKey"]),
            ...(reuse?.skipWithReusedLock === undefined ? {} : { skipWithReusedLock: reuse.skipWithReusedLock }),
            ...(options.reuseLocks === false ? {} : { lockKey: lockKeyOf(placed, image.id) }),
            ...(options.packer === undefined
              ? {}
              : {
                  afterSteps: async (c: BuildContainer, log: TargetLog, captured: Record<string, string>) => {
                    extra = await options.packer!.pack(target, c, log, {
                      spackCommit,
                      ...(spackPackagesCommit === undefined ? {} : { spackPackagesCommit }),
                      imageId: image.id,
                      captured,
                      ...(staged === undefined ? {} : { sharedOut: staged.shared }),
                    });
                  },
                }),
          },
        );
        await reuse?.keep(extra);
        const seconds = (performance.now() - started) / 1000;
        reporter.emit({ type: "target-done", target: target.target, ok: true, seconds, detail: extra.tarball ?? "" });
        return {
          target: target.target,
          status: "ok",
          seconds,
          logPath,
          steps: outcome.steps,
          captured: outcome.captured,
          ...(outcome.lock === undefined ? {} : { lock: outcome.lock }),
          ...onEngine,
          ...extra,
          ...(reuse === undefined ? {} : { upToDate: reuse.verdict }),
        };
      } catch (error) {
        const seconds = (performance.now() - started) / 1000;
        const cancelled = error instanceof CancelledError || signal.aborted;
        // Any error fails this target only; one that is not the factory's own says where it came from.
        let message =
          error instanceof FactoryError || !(error instanceof Error)
            ? String(error instanceof Error ? error.message : error)
            : `target ${target.target}: ${error.stack ?? error.message}`;
        // An engine that stopped answering takes no more targets; the failure names it.
        if (several && !cancelled) {
          const gone = await engine.unreachable();
          if (gone !== undefined) down.set(runEngine.name, gone);
          message = `on engine ${runEngine.name}${gone === undefined ? "" : ` (it ${gone})`}: ${message}`;
        }
        reporter.emit({
          type: "target-done",
          target: target.target,
          ok: false,
          seconds,
          detail: cancelled ? "cancelled" : message,
        });
        if (options.failFast === true) failFast.abort();
        const steps = (error as { steps?: StepTiming[] }).steps ?? [];
        return {
          target: target.target,
          status: cancelled ? "cancelled" : "failed",
          seconds,
          logPath,
          steps,
          captured: {},
          ...onEngine,
          ...(reuse === undefined ? {} : { upToDate: reuse.verdict }),
          error: message,
        };
      } finally {
        if (staged !== undefined) await removeSharedOut(staged.shared).catch(() => undefined);
      }
    };
    // Targets only engines that are down could have built fail now; the others take the next free slot of their family.
    const failedEarly = (target: TargetPlan, reason: string): TargetResult => {
      const message = `target ${target.target}: ${reason}`;
      reporter.emit({ type: "target-done", target: target.target, ok: false, seconds: 0, detail: message });
      const logPath = join(options.cacheRoot, CACHE_LAYOUT.targetLog(runId, target.target));
      return { target: target.target, status: "failed", seconds: 0, logPath, steps: [], captured: {}, error: message };
    };
    const planned = new Map(plan.targets.map((t) => [t.target, t]));
    const live = engines.filter((e) => !down.has(e.name));
    const orphans = plan.targets.filter(
      (t) => !live.some((e) => e.arch === ANY_ARCH || familyOfEngineArch(e.arch) === t.family),
    );
    const dispatched = await dispatch<TargetResult>({
      targets: plan.targets.filter((t) => !orphans.includes(t)),
      engines: live.map((e) => ({ name: e.name, arch: e.arch, concurrency: e.concurrency })),
      run: (t, name) => buildOn(planned.get(t.target) as TargetPlan, byName.get(name) as RunEngine),
      down: (name) => down.get(name),
      stranded: (t, reason) => failedEarly(planned.get(t.target) as TargetPlan, reason),
    });
    const unbuildableReason = (t: TargetPlan): string =>
      `no engine that builds ${t.family} targets is up; engines down: ${[...down].map(([n, why]) => `${n} ${why}`).join("; ")}`;
    const byTarget = new Map(dispatched.map((r) => [r.target, r]));
    const results = plan.targets.map((t) => byTarget.get(t.target) ?? failedEarly(t, unbuildableReason(t)));
    const image = firstImage;
    return {
      runId,
      image: {
        tag: plan.builder.tag,
        built: [...images.values()].some((i) => !(i instanceof Error) && i.built),
        id: image.id,
      },
      spackCommit,
      ...(spackPackagesCommit === undefined ? {} : { spackPackagesCommit }),
      targets: results,
      cancelled: signal.aborted,
    };
  } finally {
    // Whatever happened, no container of this run outlives it on any engine (unless kept on purpose for inspection).
    if (options.keepContainer !== true || signal.aborted) {
      await Promise.all(engines.map((e) => removeByLabel(e.engine, { run: runId }).catch(() => [])));
    }
    for (const unregister of unregisters) await unregister();
  }
}

/** Where Spack and its builtin packages came from, by commit ("unknown" for a plain local copy). */
export interface SourceCommits {
  spackCommit: string;
  /** Spack v1.x only. */
  spackPackagesCommit?: string;
}

/**
 * Cache directories, the Spack checkout and Spack v1.x's builtin package repository on the host, so that no build
 * clones anything; poisoned package-repository clones in Spack's user caches are cleared.
 */
async function prepareHost(
  plan: BuildPlan,
  cacheRoot: string,
  reporter: Reporter,
  signal: AbortSignal,
  options: { cacheDirs: boolean },
): Promise<SourceCommits> {
  for (const target of options.cacheDirs ? plan.targets : []) {
    await prepareCacheDirs(target.mounts, cacheRoot);
    for (const mount of target.mounts.filter((m) => m.kind === "spack-user")) {
      const cleared = await clearPoisonedPackageRepos(hostPathOf(mount, cacheRoot));
      for (const name of cleared) {
        reporter.emit({
          type: "info",
          message: `removed a failed package repository clone (package_repos/${name}) from Spack's user cache`,
        });
      }
    }
  }
  const mounts = plan.targets[0]?.mounts ?? [];
  const fetch = async (
    kind: "spack" | "spack-packages",
    origin: Origin,
    what: string,
    marker?: string,
  ): Promise<string> => {
    const mount = mounts.find((m) => m.kind === kind);
    if (mount === undefined) return "unknown";
    const path = hostPathOf(mount, cacheRoot);
    if (origin.kind === "local") return headOf(path);
    const checkout = await ensureSpackCheckout(path, origin.url, origin.ref, signal, marker, what).catch(
      (error: unknown) => {
        if (error instanceof BuildError && kind === "spack-packages") {
          throw new BuildError(`Spack's builtin packages: ${error.message}`, {
            cause: error,
            hint: "an offline factory needs a local spack-packages checkout: set spack.builtin.source in the stack file",
          });
        }
        throw error;
      },
    );
    reporter.emit({
      type: "info",
      message: `${kind} ${origin.ref}: ${checkout.cloned ? "cloned" : "reused the clone"} in ${path}`,
    });
    return checkout.commit;
  };
  const spackCommit = await fetch("spack", plan.spack, "a Spack checkout");
  if (plan.builtin === undefined) return { spackCommit };
  const spackPackagesCommit = await fetch(
    "spack-packages",
    plan.builtin,
    "a spack-packages checkout",
    `${BUILTIN_IN_CHECKOUT}/repo.yaml`,
  );
  return { spackCommit, spackPackagesCommit };
}

/** Digest of every extra repository's files, by namespace (its mount point's last component). */
async function digestRepos(plan: BuildPlan): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const mount of plan.targets[0]?.mounts ?? []) {
    if (mount.kind !== "repo") continue;
    out[mount.container.split("/").pop() as string] = await repoDigest(mount.host);
  }
  return out;
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

function pick<T extends object, K extends keyof T>(obj: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (obj[k] !== undefined) out[k] = obj[k];
  return out;
}
