/**
 * A target's steps in its container, in the plan's order: the concretization reused from an earlier run when its
 * inputs are unchanged (looked up before the first step), steps skipped with a reused lock (reused-lock-steps.ts),
 * each step under its host lock (with the secret key when it signs), and on a failure the stage logs saved and what
 * the failed step finished kept in the buildcache.
 */
import { writeFile } from "node:fs/promises";
import { join, posix } from "node:path";
import type { BuildContainer, Engine } from "../docker/index.js";
import { BuildError, CancelledError } from "../errors.js";
import type { Step, StepId, TargetPlan } from "../plan/types.js";
import { failedStageDirs, pushedPackages } from "../spack/contract.js";
import { withLock } from "../cache/host-lock.js";
import { CACHE_LAYOUT } from "../cache/layout.js";
import { saveLock } from "./lock-reuse.js";
import { lookUpLock, skipReason } from "./reused-lock-steps.js";
import { copyStageLogs } from "./stage-logs.js";
import type { TargetLog } from "./target-log.js";
import { keptContainerHint } from "./kept-container.js";
import { putSecretKey, removeSecretKey } from "../sign/container-key.js";
import type { ContainerUser } from "./target-container.js";
import type { LockOutcome, StepTiming, TargetRunOptions } from "./run-target.js";

/** What the steps leave for the rest of the target's life (the run report, packing, the container's removal). */
export interface StepsState {
  steps: StepTiming[];
  captured: Record<string, string>;
  lock?: LockOutcome;
  /** The failed target's container is kept for inspection. */
  keep: boolean;
}

export async function runSteps(
  container: BuildContainer,
  plan: TargetPlan,
  options: TargetRunOptions,
  log: TargetLog,
  user: ContainerUser,
  state: StepsState,
): Promise<void> {
  const { reporter, signal } = options;
  const target = plan.target;
  // Known before the first step: the steps before concretize may have nothing to do either.
  const lock = options.lockKey === undefined ? undefined : await lookUpLock(options.lockKey, options.cacheRoot);
  if (lock?.outcome.reused === true) log.note(`the earlier concretization will be reused: ${lock.outcome.reason}`);
  for (const step of plan.steps) {
    if (signal.aborted) throw new CancelledError();
    // Such a step runs only after the failure of the step it names (keepAfterFailure).
    if (step.afterFailureOf !== undefined) continue;
    if (step.id === "concretize" && lock !== undefined) {
      const started = performance.now();
      const startedAt = new Date().toISOString();
      state.lock = lock.outcome;
      log.note(`step concretize: ${lock.outcome.reused ? "reused lock" : "concretizing"}: ${lock.outcome.reason}`);
      if (lock.text !== undefined) {
        await container.putFiles(plan.envDir, { "spack.lock": lock.text }, user);
        reporter.emit({ type: "step", target, step: step.id, title: "reuse the earlier concretization" });
        const seconds = (performance.now() - started) / 1000;
        state.steps.push({ step: step.id, seconds, exitCode: 0, reused: true, startedAt });
        continue;
      }
    }
    const skip = skipReason(step.id, lock, options);
    if (skip !== undefined) {
      log.note(`step ${step.id}: skipped: ${skip}`);
      state.steps.push({ step: step.id, seconds: 0, exitCode: 0, reused: true, skipped: skip });
      continue;
    }
    reporter.emit({ type: "step", target, step: step.id, title: step.title });
    const started = performance.now();
    const startedAt = new Date().toISOString();
    const { exitCode, stdout } = await execStep(container, step, plan, options, log);
    state.steps.push({ step: step.id, seconds: (performance.now() - started) / 1000, exitCode, startedAt });
    if (step.captureStdout !== undefined) await keepCaptured(step, stdout, options, log, state);
    if (exitCode === 0 && step.id === "concretize") await keepLock(container, plan, options, log);
    if (exitCode !== 0 && step.optional === true && !signal.aborted) {
      log.note(`step ${step.id}: exit code ${exitCode}, going on (optional step)`);
      continue;
    }
    if (exitCode !== 0) throw await stepFailed(container, plan, step, exitCode, options, log, state);
  }
}

/** Kept in memory for what follows (packing reads it from here); a copy stays in the run's record. */
async function keepCaptured(
  step: Step,
  stdout: string,
  options: TargetRunOptions,
  log: TargetLog,
  state: StepsState,
): Promise<void> {
  const name = step.captureStdout as string;
  state.captured[name] = stdout;
  const path = join(options.workDir, name);
  await writeFile(path, stdout);
  log.note(`step ${step.id}: output kept, and recorded in ${path}`);
}

/** The new concretization kept for the next run with the same inputs; a failure to keep it costs only that run's time. */
async function keepLock(
  container: BuildContainer,
  plan: TargetPlan,
  options: TargetRunOptions,
  log: TargetLog,
): Promise<void> {
  if (options.lockKey === undefined || !("key" in options.lockKey)) return;
  try {
    const text = (await container.readFile(`${plan.envDir}/spack.lock`, options.signal)).toString("utf8");
    await saveLock(options.cacheRoot, options.lockKey.key, text);
  } catch (error) {
    log.note(
      `step concretize: could not keep spack.lock for reuse: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/** The error of a failed step, after its stage logs are saved and what it finished is kept. */
async function stepFailed(
  container: BuildContainer,
  plan: TargetPlan,
  step: Step,
  exitCode: number,
  options: TargetRunOptions,
  log: TargetLog,
  state: StepsState,
): Promise<Error> {
  if (options.signal.aborted) return new CancelledError();
  await saveStageLogs(container, log, `${options.logPath.replace(/\.log$/, "")}-stage`);
  state.keep = options.keepContainer === true;
  // The error quotes the failed step's last lines: made before anything else writes to the log.
  const keptId = state.keep ? container.id : undefined;
  const failure = stepFailure(plan.target, step.id, exitCode, log, keptId, options.engine);
  const kept = await keepAfterFailure(container, plan, step.id, options, log, state.steps);
  if (kept !== undefined) failure.message += `\n${kept}`;
  return failure;
}

/**
 * Runs one step in the container, under its host lock and with the secret key when it signs. Its stdout goes to the
 * log, or (a step that captures it) into the returned text only; `tee` keeps it in the returned text as well.
 */
async function execStep(
  container: BuildContainer,
  step: Step,
  plan: TargetPlan,
  options: TargetRunOptions,
  log: TargetLog,
  tee = false,
): Promise<{ exitCode: number; stdout: string }> {
  const { signal } = options;
  log.note(`step ${step.id}: ${step.argv.map(quoteForLog).join(" ")}`);
  const stdout: Buffer[] = [];
  const runStep = () =>
    container.exec(step.argv, {
      signal,
      onStdout: (chunk) => {
        if (step.captureStdout === undefined) log.write(chunk);
        if (step.captureStdout !== undefined || tee) stdout.push(chunk);
      },
      onStderr: (chunk) => log.write(chunk),
    });
  const exec = step.secretKey === true ? () => withSecretKey(container, plan, options, log, step.id, runStep) : runStep;
  const { exitCode } =
    step.lock === undefined
      ? await exec()
      : await withLock(join(options.cacheRoot, CACHE_LAYOUT.lock(step.lock)), exec, {
          signal,
          onWait: (holder) => log.note(`step ${step.id}: waiting for lock ${step.lock} held by ${holder}`),
        });
  return { exitCode, stdout: Buffer.concat(stdout).toString("utf8") };
}

/**
 * After step `failed` failed, runs the steps that keep what it finished (pushes of the packages installed before
 * the failure), and says what they kept: the packages they pushed. Their failures are logged, never thrown: the
 * target fails with the first failure.
 */
async function keepAfterFailure(
  container: BuildContainer,
  plan: TargetPlan,
  failed: StepId,
  options: TargetRunOptions,
  log: TargetLog,
  steps: StepTiming[],
): Promise<string | undefined> {
  const pushed: string[] = [];
  const keepers = plan.steps.filter((s) => s.afterFailureOf === failed);
  for (const step of keepers) {
    if (options.signal.aborted) return undefined;
    options.reporter.emit({ type: "step", target: plan.target, step: step.id, title: step.title });
    const started = performance.now();
    const startedAt = new Date().toISOString();
    try {
      const { exitCode, stdout } = await execStep(container, step, plan, options, log, true);
      steps.push({ step: step.id, seconds: (performance.now() - started) / 1000, exitCode, startedAt });
      pushed.push(...pushedPackages(stdout));
      // Spack pushes what is installed and then names each package that is not: an exit code 1 is expected.
      log.note(
        `step ${step.id}: exit code ${exitCode}; pushed ${pushed.length} package(s) installed before the failure`,
      );
    } catch (error) {
      if (options.signal.aborted) return undefined;
      log.note(`step ${step.id}: could not run: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (keepers.length === 0) return undefined;
  return pushed.length === 0
    ? "kept in the buildcache: nothing new (no package was pushed after the failure; the log says why)"
    : `kept in the buildcache: ${pushed.length} package(s) built before the failure (${pushed.join(", ")}); a rerun builds only what is left`;
}

/** Runs a signing step with the secret key in the target's gpg home (on its tmpfs), and removes the key after it. */
async function withSecretKey<T>(
  container: BuildContainer,
  plan: TargetPlan,
  options: TargetRunOptions,
  log: TargetLog,
  step: string,
  fn: () => Promise<T>,
): Promise<T> {
  if (plan.signing === undefined || options.signingKey === undefined) {
    throw new BuildError(`target ${plan.target}: step "${step}" signs, but the run has no signing key`);
  }
  await putSecretKey(container, plan.signing, options.signingKey, options.signal);
  log.note(`step ${step}: signing key ${plan.signing.fingerprint} in ${plan.signing.gnupgHome} (tmpfs) for this step`);
  try {
    return await fn();
  } finally {
    if (!options.signal.aborted) {
      await removeSecretKey(container, plan.signing);
      log.note(`step ${step}: signing key removed`);
    }
  }
}

/** Copy the stage logs of packages whose build failed next to the target's log, and say where they went. */
async function saveStageLogs(container: BuildContainer, log: TargetLog, dest: string): Promise<void> {
  for (const stage of failedStageDirs(log.lastLines().join("\n"))) {
    try {
      const saved = await copyStageLogs(container, stage, join(dest, posix.basename(stage)));
      if (saved.length > 0)
        log.note(`build logs of ${posix.basename(stage)} saved in ${posix.dirname(saved[0] as string)}`);
    } catch (error) {
      log.note(
        `could not copy the build logs out of ${stage}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
}

function stepFailure(
  target: string,
  step: string,
  exitCode: number,
  log: TargetLog,
  keptId: string | undefined,
  engine: Engine,
): BuildError {
  const tail = log
    .lastLines()
    .map((l) => `    ${l}`)
    .join("\n");
  const kept = keptId === undefined ? "" : `\n${keptContainerHint(engine, keptId, engine.runId)}`;
  return new BuildError(
    `target ${target}: step "${step}" failed with exit code ${exitCode}\nlast lines of the log:\n${tail}\nfull log: ${log.path}${kept}`,
  );
}

/** Show an argument vector readably in the log; never executed. */
function quoteForLog(arg: string): string {
  return /^[\w@%+=:,./^~-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
