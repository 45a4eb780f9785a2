/**
 * One target on one engine, in the order of its life: skipped when the run stops, placed on the engine, up to date
 * (nothing started) or built in its container and packed there, then its result (a failure fails this target only).
 */
import { join } from "node:path";
import { CACHE_LAYOUT } from "../cache/layout.js";
import type { BuildContainer } from "../docker/index.js";
import { CancelledError, FactoryError } from "../errors.js";
import { withRunValues } from "../plan/placement.js";
import type { BuildPlan, TargetPlan } from "../plan/types.js";
import type { EngineImage } from "./engine-images.js";
import type { EngineSet } from "./engine-set.js";
import type { RunEngine } from "./engines.js";
import type { LockKeys } from "./lock-keys.js";
import type { RunOptions, SourceCommits, TargetExtra, TargetResult } from "./run-plan.js";
import { runTarget, type StepTiming } from "./run-target.js";
import { prepareSharedOut, removeSharedOut, type SharedOut } from "./shared-out.js";
import type { TargetLog } from "./target-log.js";
import { upToDateTarget, type UpToDateOutcome } from "./target-reuse.js";

/** What every target of a run shares. */
export interface RunContext {
  plan: BuildPlan;
  options: RunOptions;
  engines: EngineSet;
  runId: string;
  imageOf: (engine: string) => EngineImage;
  /** Trees sent to each engine of another host, by engine name. */
  synced: ReadonlyMap<string, ReadonlyMap<string, string>>;
  keys: LockKeys;
  commits: SourceCommits;
  /** The run's signal and fail-fast together. */
  targetSignal: AbortSignal;
  failFast: AbortController;
}

export async function buildOn(ctx: RunContext, target: TargetPlan, on: RunEngine): Promise<TargetResult> {
  const { options, engines } = ctx;
  const logPath = join(options.cacheRoot, CACHE_LAYOUT.targetLog(ctx.runId, target.target));
  if (ctx.targetSignal.aborted) {
    const status = options.signal.aborted ? "cancelled" : "skipped";
    return { target: target.target, status, seconds: 0, logPath, steps: [], captured: {}, ...engines.tag(on.name) };
  }
  options.reporter.emit({ type: "target-start", target: target.target });
  const started = performance.now();
  const placed = placeOn(ctx, target, on);
  // Nothing to do: said, and nothing started. Otherwise the reason it runs, and what it made is kept after it.
  const reuse = await checkUpToDate(ctx, placed, on, logPath);
  if (reuse?.result !== undefined) return { ...reuse.result, ...engines.tag(on.name) };
  // An engine of this machine packs straight into the output directory (through a mount, not the engine API).
  const staged =
    options.packer?.outDir !== undefined && on.engine.local
      ? await prepareSharedOut(options.packer.outDir, ctx.runId, target.target).catch(() => undefined)
      : undefined;
  const upToDate = reuse === undefined ? {} : { upToDate: reuse.verdict };
  try {
    let extra: TargetExtra = {};
    const outcome = await runTarget(
      staged === undefined ? placed : { ...placed, mounts: [...placed.mounts, staged.mount] },
      {
        engine: on.engine,
        image: ctx.plan.builder.tag,
        cacheRoot: options.cacheRoot,
        logPath,
        workDir: join(options.cacheRoot, CACHE_LAYOUT.targetRecord(ctx.runId, target.target)),
        reporter: options.reporter,
        signal: ctx.targetSignal,
        removeLater: (removal) => engines.removeLater(removal),
        ...pick(options, ["keepContainer", "cpus", "memory", "extraEnv", "signingKey", "registerWithReusedLock"]),
        ...(reuse?.skipWithReusedLock === undefined ? {} : { skipWithReusedLock: reuse.skipWithReusedLock }),
        ...(options.reuseLocks === false ? {} : { lockKey: ctx.keys.lockKeyOf(placed, ctx.imageOf(on.name).id) }),
        ...packHook(ctx, target, on, staged?.shared, (made) => {
          extra = made;
        }),
      },
    );
    await reuse?.keep(extra);
    const seconds = (performance.now() - started) / 1000;
    options.reporter.emit({
      type: "target-done",
      target: target.target,
      ok: true,
      seconds,
      detail: extra.tarball ?? "",
    });
    const lock = outcome.lock === undefined ? {} : { lock: outcome.lock };
    const { steps, captured } = outcome;
    return {
      target: target.target,
      status: "ok",
      seconds,
      logPath,
      steps,
      captured,
      ...lock,
      ...engines.tag(on.name),
      ...extra,
      ...upToDate,
    };
  } catch (error) {
    const { status, seconds, steps, message } = await failed(ctx, target, on, error, started);
    const result = { target: target.target, status, seconds, logPath, steps, captured: {}, ...engines.tag(on.name) };
    return { ...result, ...upToDate, error: message };
  } finally {
    if (staged !== undefined) await removeSharedOut(staged.shared).catch(() => undefined);
  }
}

/**
 * The target as the plan placed it on that engine, with what only the run knows: where its trees were sent, the
 * registry's credentials.
 */
function placeOn(ctx: RunContext, target: TargetPlan, on: RunEngine): TargetPlan {
  const placed = ctx.plan.placement?.targets[target.target]?.[on.name];
  if (placed === undefined)
    throw new FactoryError(`target ${target.target}: the plan does not place it on engine ${on.name}`);
  const synced = ctx.synced.get(on.name);
  const credentials = ctx.options.credentials;
  return withRunValues(placed, {
    engine: on.name,
    ...(synced === undefined ? {} : { synced }),
    ...(credentials === undefined ? {} : { credentials }),
  });
}

/** Whether the placed target has anything to do (absent when the run does not ask). */
async function checkUpToDate(
  ctx: RunContext,
  placed: TargetPlan,
  on: RunEngine,
  logPath: string,
): Promise<UpToDateOutcome | undefined> {
  const { options } = ctx;
  if (options.upToDate === undefined) return undefined;
  const imageId = ctx.imageOf(on.name).id;
  return upToDateTarget(placed, options.upToDate, {
    lockKey: ctx.keys.lockKeyOf(placed, imageId),
    concretization: ctx.keys.concretizationOf(placed, imageId),
    cacheRoot: options.cacheRoot,
    fresh: options.reuseLocks === false,
    ...pick(options, ["buildcache", "credentials", "registryCa"]),
    engine: { name: on.name, local: on.engine.local, cacheRoot: on.cacheRoot },
    signal: ctx.targetSignal,
    logPath,
    reporter: options.reporter,
  });
}

/** The packer, called while the target's container is still there (nothing when the run packs nothing). */
function packHook(
  ctx: RunContext,
  target: TargetPlan,
  on: RunEngine,
  sharedOut: SharedOut | undefined,
  made: (extra: TargetExtra) => void,
): { afterSteps?: (c: BuildContainer, log: TargetLog, captured: Record<string, string>) => Promise<void> } {
  const packer = ctx.options.packer;
  if (packer === undefined) return {};
  const { spackCommit, spackPackagesCommit } = ctx.commits;
  return {
    afterSteps: async (c, log, captured) => {
      made(
        await packer.pack(target, c, log, {
          spackCommit,
          ...(spackPackagesCommit === undefined ? {} : { spackPackagesCommit }),
          imageId: ctx.imageOf(on.name).id,
          captured,
          ...(sharedOut === undefined ? {} : { sharedOut }),
        }),
      );
    },
  };
}

/** A failed (or cancelled) target: said, and the run stopped when it fails fast. */
async function failed(
  ctx: RunContext,
  target: TargetPlan,
  on: RunEngine,
  error: unknown,
  started: number,
): Promise<{ status: "cancelled" | "failed"; seconds: number; steps: StepTiming[]; message: string }> {
  const { options } = ctx;
  const seconds = (performance.now() - started) / 1000;
  const cancelled = error instanceof CancelledError || options.signal.aborted;
  // Any error fails this target only; one that is not the factory's own says where it came from.
  const own =
    error instanceof FactoryError || !(error instanceof Error)
      ? String(error instanceof Error ? error.message : error)
      : `target ${target.target}: ${error.stack ?? error.message}`;
  // An engine that stopped answering takes no more targets; the failure names it.
  const message = await ctx.engines.failureMessage(on, own, cancelled);
  const detail = cancelled ? "cancelled" : message;
  options.reporter.emit({ type: "target-done", target: target.target, ok: false, seconds, detail });
  if (options.failFast === true) ctx.failFast.abort();
  const steps = (error as { steps?: StepTiming[] }).steps ?? [];
  return { status: cancelled ? "cancelled" : "failed", seconds, steps, message };
}

function pick<T extends object, K extends keyof T>(obj: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (obj[k] !== undefined) out[k] = obj[k];
  return out;
}
