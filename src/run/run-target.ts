import { mkdir } from "node:fs/promises";
import type { BuildContainer, Engine } from "../docker/index.js";
import { CancelledError } from "../errors.js";
import type { TargetPlan } from "../plan/types.js";
import { containerUser } from "./host-caches.js";
import type { LockKey } from "./lock-reuse.js";
import { TargetLog } from "./target-log.js";
import { keptContainerHint } from "./kept-container.js";
import type { FileSigningKey } from "../sign/key.js";
import type { Reporter } from "../ui/reporter.js";
import { startTargetContainer } from "./target-container.js";
import { runSteps, type StepsState } from "./target-steps.js";

export interface TargetRunOptions {
  engine: Engine;
  image: string;
  cacheRoot: string;
  /** Where the full log of this target goes. */
  logPath: string;
  /** Directory for files the steps capture (`specs.json`). */
  workDir: string;
  reporter: Reporter;
  signal: AbortSignal;
  keepContainer?: boolean;
  cpus?: number;
  memory?: number;
  /** Extra environment for the build container (tests use it to steer the Spack stand-in). */
  extraEnv?: Record<string, string>;
  /** Where this target's concretization may be kept and reused (absent: always concretize). */
  lockKey?: LockKey;
  /** The secret key for the plan's signing steps (a signed buildcache); it reaches the container on stdin only. */
  signingKey?: FileSigningKey;
  /**
   * Steps to skip, with the reason, when the earlier concretization is reused (the up-to-date check found every
   * spec of that lock in the buildcache: fetch and push have nothing to do).
   */
  skipWithReusedLock?: Partial<Record<string, string>>;
  /**
   * Run the compiler and externals registration even when the earlier concretization is reused (by default they are
   * skipped then: reused-lock-steps.ts). A benchmark measures the path without that skip with it.
   */
  registerWithReusedLock?: boolean;
  /** Takes the container's removal and lets the target end before it is done (absent: the target waits for it). */
  removeLater?: (removal: Promise<void>) => void;
  /** Runs after the last step while the container is still there (packing reads the view from it). */
  afterSteps?: (container: BuildContainer, log: TargetLog, captured: Record<string, string>) => Promise<void>;
}

export interface StepTiming {
  step: string;
  seconds: number;
  exitCode: number;
  /** The step did not run: its result (a spack.lock) was reused, or it had nothing to do. */
  reused?: boolean;
  /** Why a step that had nothing to do did not run (absent for a step that ran, and for a reused concretization). */
  skipped?: string;
  /** When the step started (ISO 8601, UTC): the run report's timeline. */
  startedAt?: string;
}

/** Whether the target's concretization was reused, and why or why not. */
export interface LockOutcome {
  reused: boolean;
  reason: string;
}

export interface TargetOutcome {
  target: string;
  logPath: string;
  steps: StepTiming[];
  /** Output captured from steps, by name (e.g. `specs.json`): the text itself. */
  captured: Record<string, string>;
  lock?: LockOutcome;
}

/**
 * Build one target in its own container, in this order: its log opened, the container started and given the
 * environment, the plan's steps, the packing while the container is still there, the container removed (or kept
 * for inspection after a failure, on request).
 */
export async function runTarget(plan: TargetPlan, options: TargetRunOptions): Promise<TargetOutcome> {
  const { reporter, signal } = options;
  const target = plan.target;
  const log = await TargetLog.open(options.logPath, (line) => reporter.emit({ type: "line", target, line }));
  const state: StepsState = { steps: [], captured: {}, keep: false };
  let container: BuildContainer | undefined;
  try {
    if (signal.aborted) throw new CancelledError();
    const user = containerUser();
    const ready = await startTargetContainer(plan, options, user, (c) => {
      container = c;
    });
    await mkdir(options.workDir, { recursive: true });
    await runSteps(ready, plan, options, log, user, state);
    if (options.afterSteps !== undefined) await packStep(ready, options.afterSteps, target, options, log, state);
    const { steps, captured, lock } = state;
    return { target, logPath: log.path, steps, captured, ...(lock === undefined ? {} : { lock }) };
  } catch (error) {
    // Packing failures keep the container on request too (step failures have already said so).
    if (
      options.keepContainer === true &&
      !state.keep &&
      container !== undefined &&
      !signal.aborted &&
      error instanceof Error
    ) {
      state.keep = true;
      error.message += `\n${keptContainerHint(options.engine, (container as BuildContainer).id, options.engine.runId)}`;
    }
    // The steps that ran (the failed one, then those that kept what it finished) go into the run report.
    throw Object.assign(error instanceof Error ? error : new Error(String(error)), { steps: state.steps });
  } finally {
    if (container !== undefined && !state.keep) {
      const removal = (container as BuildContainer).remove();
      if (options.removeLater === undefined) await removal;
      else options.removeLater(removal);
    }
    await log.close();
  }
}

/** Packing, while the container is still there: a step of the report's timeline, failed or not. */
async function packStep(
  container: BuildContainer,
  afterSteps: NonNullable<TargetRunOptions["afterSteps"]>,
  target: string,
  options: TargetRunOptions,
  log: TargetLog,
  state: StepsState,
): Promise<void> {
  options.reporter.emit({ type: "step", target, step: "package", title: "pack the tarball" });
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const packed = (exitCode: number): StepTiming => ({
    step: "package",
    seconds: (performance.now() - started) / 1000,
    exitCode,
    startedAt,
  });
  try {
    await afterSteps(container, log, state.captured);
  } catch (error) {
    state.steps.push(packed(1));
    throw error;
  }
  state.steps.push(packed(0));
}
