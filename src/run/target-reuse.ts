/**
 * The run's side of up-to-date targets: asking before a target's container starts whether it has anything to do,
 * handing out the kept tarball when it has not, and keeping what a successful run made for the next one.
 */
import { join } from "node:path";
import { keep, linkOrCopy, type RunMode } from "../cache/kept-tarballs.js";
import type { BuildcacheLocation } from "../config/factory.js";
import { ociRepositoryOf, type RegistryCredentials } from "../plan/placement.js";
import type { TargetPlan } from "../plan/types.js";
import { writeFileAtomic } from "../fs/write-atomic.js";
import { rm } from "node:fs/promises";
import type { Reporter } from "../ui/reporter.js";
import { hostPathOf } from "./host-caches.js";
import type { TargetResult } from "./run-plan.js";
import { TargetLog } from "./target-log.js";
import { findLock, type LockKey } from "./lock-reuse.js";
import { checkUpToDate, type Answer, type BuildcacheSource } from "./up-to-date-check.js";
import { digestOf, LOCK_INPUT, type KeptTarball } from "./up-to-date.js";

/** How a run decides that targets are up to date (absent from RunOptions: every target runs). */
export interface UpToDateOptions {
  /** `build`: what packing depends on, and where a kept tarball goes. Absent: warm (no tarballs). */
  packaging?: {
    inputsOf(target: TargetPlan): Promise<Record<string, string>>;
    outDir: string;
    /** Signs a tarball handed out again (`<file>.asc`), with the run's current key. */
    sign?: (file: string) => Promise<string>;
  };
}

export interface ReuseContext {
  /** The factory's cache root. */
  cacheRoot: string;
  fresh: boolean;
  buildcache?: BuildcacheLocation;
  credentials?: RegistryCredentials;
  /** The registry's own CA (PEM, `buildcache_ca`). */
  registryCa?: string;
  engine: { name: string; local: boolean; cacheRoot: string };
  signal: AbortSignal;
}

/** The inputs a target is judged by, computed once and used both to check and to keep. */
export interface TargetInputs {
  mode: RunMode;
  lockKey: LockKey;
  inputs: Record<string, string>;
}

export async function targetInputs(
  placed: TargetPlan,
  lockKey: LockKey,
  concretization: Record<string, string>,
  options: UpToDateOptions,
): Promise<TargetInputs> {
  const packaging = options.packaging === undefined ? {} : await options.packaging.inputsOf(placed);
  return {
    mode: options.packaging === undefined ? "warm" : "build",
    lockKey,
    inputs: { ...concretization, ...packaging },
  };
}

export function upToDateOf(placed: TargetPlan, judged: TargetInputs, ctx: ReuseContext): Promise<Answer> {
  return checkUpToDate({
    mode: judged.mode,
    fresh: ctx.fresh,
    compilerBuiltBySpack: placed.steps.some((s) => s.id === "compiler-install"),
    lockKey: judged.lockKey,
    inputs: judged.inputs,
    cacheRoot: ctx.cacheRoot,
    targetDir: placed.outputs.dirName,
    buildcache: buildcacheSource(placed, ctx),
    signal: ctx.signal,
  });
}

function buildcacheSource(placed: TargetPlan, ctx: ReuseContext): BuildcacheSource {
  const shared = ctx.buildcache;
  if (shared?.kind === "oci") {
    const repository = `${shared.repository}/${ociRepositoryOf(shared, placed.buildcacheKey).slice(shared.url.length + 1)}`;
    return {
      kind: "oci",
      location: shared,
      repository,
      ...(ctx.credentials === undefined ? {} : { credentials: ctx.credentials }),
      ...(ctx.registryCa === undefined ? {} : { ca: ctx.registryCa }),
    };
  }
  const mount = placed.mounts.find((m) => m.kind === "buildcache");
  if (mount === undefined) return { kind: "unreadable", reason: "the target mounts no buildcache" };
  if (shared === undefined && !ctx.engine.local)
    return {
      kind: "unreadable",
      reason: `the buildcache is under engine ${ctx.engine.name}'s cache root, on its host`,
    };
  return { kind: "path", dir: hostPathOf(mount, ctx.engine.cacheRoot), signed: placed.signing !== undefined };
}

/** Writes a kept tarball to the output directory again: the file (a hard link when possible), its .sha256, its .asc. */
export async function handOut(
  kept: KeptTarball,
  packaging: NonNullable<UpToDateOptions["packaging"]>,
): Promise<{ tarball: string; signature?: string }> {
  const tarball = join(packaging.outDir, kept.file);
  await rm(`${tarball}.asc`, { force: true });
  await linkOrCopy(kept.path, tarball);
  await writeFileAtomic(`${tarball}.sha256`, `${kept.sha256}  ${kept.file}\n`);
  if (packaging.sign === undefined) return { tarball };
  return { tarball, signature: await packaging.sign(tarball) };
}

/** After a successful run: the inputs it ran with (and, for build, its tarball) for the next run to compare. */
export async function keepAfterRun(
  cacheRoot: string,
  placed: TargetPlan,
  judged: TargetInputs,
  made: { tarball?: string; warnings?: string[] },
): Promise<void> {
  if (!("key" in judged.lockKey)) return;
  const lock = await findLock(cacheRoot, judged.lockKey.key);
  if (lock === undefined) return;
  if (judged.mode === "build" && made.tarball === undefined) return;
  await keep(cacheRoot, placed.outputs.dirName, judged.mode, {
    inputs: judged.mode === "build" ? { ...judged.inputs, [LOCK_INPUT]: digestOf(lock) } : judged.inputs,
    ...(made.tarball === undefined ? {} : { tarball: made.tarball }),
    ...(made.warnings === undefined ? {} : { warnings: made.warnings }),
  });
}

export interface UpToDateTargetContext extends ReuseContext {
  lockKey: LockKey;
  /** The concretization's inputs by name (concretizationInputsByName). */
  concretization: Record<string, string>;
  logPath: string;
  reporter: Reporter;
}

/** What the run does with a target: its result when it was up to date, else why it runs and how to keep its output. */
export interface UpToDateOutcome {
  verdict: { upToDate: boolean; reason: string };
  result?: TargetResult;
  /** Steps with nothing to do when the kept lock is reused (every spec of it is in the buildcache), and why. */
  skipWithReusedLock?: Record<string, string>;
  keep(made: { tarball?: string; warnings?: string[] }): Promise<void>;
}

/** Asks whether a target is up to date, hands out what was kept when it is, and never fails the target itself. */
export async function upToDateTarget(
  placed: TargetPlan,
  options: UpToDateOptions,
  ctx: UpToDateTargetContext,
): Promise<UpToDateOutcome> {
  const started = performance.now();
  const target = placed.target;
  const failed = (what: string, error: unknown) =>
    `${what} failed: ${error instanceof Error ? error.message : String(error)}`;
  let judged: TargetInputs;
  try {
    judged = await targetInputs(placed, ctx.lockKey, ctx.concretization, options);
  } catch (error) {
    if (ctx.signal.aborted) throw error;
    return { verdict: { upToDate: false, reason: failed("reading the inputs", error) }, keep: async () => {} };
  }
  const keepIt = async (made: { tarball?: string; warnings?: string[] }) => {
    // A failure to keep costs the next run its shortcut, never this run its target.
    await keepAfterRun(ctx.cacheRoot, placed, judged, made).catch(() => undefined);
  };
  const answer = await upToDateOf(placed, judged, ctx).catch((error: unknown): Answer => {
    if (ctx.signal.aborted) throw error;
    return { upToDate: false, reason: failed("the up-to-date check", error) };
  });
  let verdict = { upToDate: answer.upToDate, reason: answer.reason };
  let handed: { tarball: string; signature?: string } | undefined;
  if (answer.upToDate && answer.kept !== undefined && options.packaging !== undefined) {
    try {
      handed = await handOut(answer.kept, options.packaging);
    } catch (error) {
      if (ctx.signal.aborted) throw error;
      verdict = { upToDate: false, reason: failed("handing out the kept tarball", error) };
    }
  }
  const log = await TargetLog.open(ctx.logPath, () => undefined);
  log.note(verdict.upToDate ? `${verdict.reason} (${answer.reason})` : `runs: ${verdict.reason}`);
  if (handed !== undefined)
    log.note(
      `kept tarball written to ${handed.tarball}${handed.signature === undefined ? "" : `, signed: ${handed.signature}`}`,
    );
  await log.close();
  if (!verdict.upToDate || !answer.upToDate) {
    const all = "every spec of the reused concretization is in the buildcache";
    return {
      verdict,
      keep: keepIt,
      ...(!answer.upToDate && answer.allInBuildcache === true ? { skipWithReusedLock: { fetch: all, push: all } } : {}),
    };
  }
  const seconds = (performance.now() - started) / 1000;
  ctx.reporter.emit({ type: "step", target, step: "up-to-date", title: verdict.reason });
  ctx.reporter.emit({ type: "target-done", target, ok: true, seconds, detail: handed?.tarball ?? verdict.reason });
  const kept = answer.kept;
  return {
    verdict,
    keep: keepIt,
    result: {
      target,
      status: "ok",
      seconds,
      logPath: ctx.logPath,
      steps: [{ step: "up-to-date", seconds, exitCode: 0, reused: true }],
      captured: {},
      lock: { reused: true, reason: "inputs unchanged since an earlier run" },
      upToDate: verdict,
      reusedSpecs: answer.specs,
      ...(handed === undefined || kept === undefined ? {} : { tarball: handed.tarball, tarballBytes: kept.bytes }),
      ...(kept === undefined || kept.warnings.length === 0 ? {} : { warnings: kept.warnings }),
    },
  };
}
