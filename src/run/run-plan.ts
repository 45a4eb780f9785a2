import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import PQueue from "p-queue";
import {
  ensureImage,
  removeByLabel,
  removeDeadRuns,
  type BuildContainer,
  type Engine,
} from "../docker/index.js";
import { BuildError, CancelledError, FactoryError } from "../errors.js";
import type { BuildPlan, TargetPlan } from "../plan/types.js";
import type { Reporter } from "../ui/reporter.js";
import { CACHE_LAYOUT } from "../cache/layout.js";
import { registerRun } from "../cache/usage.js";
import { hostPathOf, prepareCacheDirs } from "./host-caches.js";
import { concretizationKey, repoDigest, treeIdentity, type LockKey } from "./lock-reuse.js";
import { runTarget, type LockOutcome, type StepTiming } from "./run-target.js";
import { BUILTIN_IN_CHECKOUT } from "../config/inspect.js";
import type { Origin } from "../config/types.js";
import { canRun, detectHostFromSystem } from "../targets/index.js";
import { ensureSpackCheckout, headOf } from "./spack-checkout.js";
import { clearPoisonedPackageRepos } from "./user-cache.js";
import type { TargetLog } from "./target-log.js";
import type { FileSigningKey } from "../sign/key.js";

export interface RunOptions {
  engine: Engine;
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
}

/** What a packer knows of the run besides the target. */
export type PackContext = SourceCommits & { imageId: string; captured: Record<string, string> };

/** Turns a built target, in its still-running container, into what the run reports (a tarball). */
export interface TargetPacker {
  pack(target: TargetPlan, container: BuildContainer, log: TargetLog, context: PackContext): Promise<TargetExtra>;
}

/** What a packer adds to a target's result. */
export interface TargetExtra {
  tarball?: string;
  tarballBytes?: number;
  /** Portability hazards of the packed tree (libraries outside the view a node may lack, ...). */
  warnings?: string[];
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
  const { engine, reporter, signal } = options;
  // The engine labels everything it creates with this run's id, pid and host.
  const runId = engine.runId;
  reporter.emit({ type: "run-start", runId, targets: plan.targets.map((t) => t.target), concurrency: options.concurrency });

  const leftovers = await removeDeadRuns(engine);
  if (leftovers.length > 0) reporter.emit({ type: "info", message: `removed ${leftovers.length} container(s) left by dead runs` });

  const entries = [...new Set(plan.targets.flatMap((t) => t.mounts.filter((m) => !m.hostIsAbsolute).map((m) => m.host)))];
  let unregister = async (): Promise<void> => {};
  try {
    // Registered first, so that a concurrent `cache prune` leaves alone what this run is about to use.
    await mkdir(options.cacheRoot, { recursive: true });
    unregister = await registerRun(options.cacheRoot, runId, entries);
    const { spackCommit, spackPackagesCommit } = await prepareHost(plan, options.cacheRoot, reporter, signal);
    await noteForeignTargets(plan, reporter);
    const image = await ensureImage(engine, {
      tag: plan.builder.tag,
      files: plan.builder.files,
      signal,
      onLine: (line: string) => reporter.emit({ type: "image-line", line }),
    });
    reporter.emit({ type: "image", tag: plan.builder.tag, built: image.built });
    const repoDigests = await digestRepos(plan);
    // What the checkouts hold rather than their commits: a checkout inside a larger repository keeps its identity
    // while only other files of that repository change, and uncommitted changes count.
    const identityOf = async (kind: "spack" | "spack-packages"): Promise<string | undefined> => {
      const mount = plan.targets[0]?.mounts.find((m) => m.kind === kind);
      return mount === undefined ? undefined : treeIdentity(hostPathOf(mount, options.cacheRoot));
    };
    const spackIdentity = (await identityOf("spack")) ?? "unknown";
    const packagesIdentity = await identityOf("spack-packages");
    const lockKeyOf = (target: TargetPlan): LockKey =>
      concretizationKey({
        environments: Object.fromEntries(Object.entries(target.files).filter(([p]) => p.endsWith("/spack.yaml"))),
        spackCommit: spackIdentity,
        ...(packagesIdentity === undefined ? {} : { spackPackagesCommit: packagesIdentity }),
        repoDigests,
        imageId: image.id,
      });

    const queue = new PQueue({ concurrency: options.concurrency });
    const failFast = new AbortController();
    const targetSignal = AbortSignal.any([signal, failFast.signal]);
    const results = await Promise.all(
      plan.targets.map((target) =>
        queue.add(async (): Promise<TargetResult> => {
          const logPath = join(options.cacheRoot, CACHE_LAYOUT.targetLog(runId, target.target));
          if (targetSignal.aborted) {
            return { target: target.target, status: signal.aborted ? "cancelled" : "skipped", seconds: 0, logPath, steps: [], captured: {} };
          }
          reporter.emit({ type: "target-start", target: target.target });
          const started = performance.now();
          let extra: TargetExtra = {};
          try {
            const outcome = await runTarget(target, {
              engine,
              image: plan.builder.tag,
              cacheRoot: options.cacheRoot,
              logPath,
              workDir: join(options.cacheRoot, CACHE_LAYOUT.targetRecord(runId, target.target)),
              reporter,
              signal: targetSignal,
              ...pick(options, ["keepContainer", "cpus", "memory", "extraEnv", "signingKey"]),
              ...(options.reuseLocks === false ? {} : { lockKey: lockKeyOf(target) }),
              ...(options.packer === undefined
                ? {}
                : {
                    afterSteps: async (c: BuildContainer, log: TargetLog, captured: Record<string, string>) =>
                      void (extra = await options.packer!.pack(target, c, log, {
                        spackCommit,
                        ...(spackPackagesCommit === undefined ? {} : { spackPackagesCommit }),
                        imageId: image.id,
                        captured,
                      })),
                  }),
            });
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
              ...extra,
            };
          } catch (error) {
            const seconds = (performance.now() - started) / 1000;
            const cancelled = error instanceof CancelledError || signal.aborted;
            // Any error fails this target only; one that is not the factory's own says where it came from.
            const message =
              error instanceof FactoryError || !(error instanceof Error)
                ? String(error instanceof Error ? error.message : error)
                : `target ${target.target}: ${error.stack ?? error.message}`;
            reporter.emit({ type: "target-done", target: target.target, ok: false, seconds, detail: cancelled ? "cancelled" : message });
            if (options.failFast === true) failFast.abort();
            const steps = (error as { steps?: StepTiming[] }).steps ?? [];
            return { target: target.target, status: cancelled ? "cancelled" : "failed", seconds, logPath, steps, captured: {}, error: message };
          }
        }) as Promise<TargetResult>,
      ),
    );
    return {
      runId,
      image: { tag: plan.builder.tag, built: image.built, id: image.id },
      spackCommit,
      ...(spackPackagesCommit === undefined ? {} : { spackPackagesCommit }),
      targets: results,
      cancelled: signal.aborted,
    };
  } finally {
    // Whatever happened, no container of this run outlives it (unless kept on purpose for inspection).
    if (options.keepContainer !== true || signal.aborted) await removeByLabel(engine, { run: runId }).catch(() => []);
    await unregister();
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
async function prepareHost(plan: BuildPlan, cacheRoot: string, reporter: Reporter, signal: AbortSignal): Promise<SourceCommits> {
  for (const target of plan.targets) {
    await prepareCacheDirs(target.mounts, cacheRoot);
    for (const mount of target.mounts.filter((m) => m.kind === "spack-user")) {
      const cleared = await clearPoisonedPackageRepos(hostPathOf(mount, cacheRoot));
      for (const name of cleared) {
        reporter.emit({ type: "info", message: `removed a failed package repository clone (package_repos/${name}) from Spack's user cache` });
      }
    }
  }
  const mounts = plan.targets[0]?.mounts ?? [];
  const fetch = async (kind: "spack" | "spack-packages", origin: Origin, what: string, marker?: string): Promise<string> => {
    const mount = mounts.find((m) => m.kind === kind);
    if (mount === undefined) return "unknown";
    const path = hostPathOf(mount, cacheRoot);
    if (origin.kind === "local") return headOf(path);
    const checkout = await ensureSpackCheckout(path, origin.url, origin.ref, signal, marker, what).catch((error: unknown) => {
      if (error instanceof BuildError && kind === "spack-packages") {
        throw new BuildError(`Spack's builtin packages: ${error.message}`, {
          cause: error,
          hint: "an offline factory needs a local spack-packages checkout: set spack.builtin.source in the stack file",
        });
      }
      throw error;
    });
    reporter.emit({ type: "info", message: `${kind} ${origin.ref}: ${checkout.cloned ? "cloned" : "reused the clone"} in ${path}` });
    return checkout.commit;
  };
  const spackCommit = await fetch("spack", plan.spack, "a Spack checkout");
  if (plan.builtin === undefined) return { spackCommit };
  const spackPackagesCommit = await fetch("spack-packages", plan.builtin, "a spack-packages checkout", BUILTIN_IN_CHECKOUT + "/repo.yaml");
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
