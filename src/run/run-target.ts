import { mkdir, writeFile } from "node:fs/promises";
import { join, posix } from "node:path";
import { LABEL, startContainer, type BuildContainer, type Engine } from "../docker/index.js";
import { BuildError, CancelledError } from "../errors.js";
import { CONTAINER } from "../plan/paths.js";
import type { Step, StepId, TargetPlan } from "../plan/types.js";
import type { Reporter } from "../ui/reporter.js";
import { containerUser, hostPathOf } from "./host-caches.js";
import { failedStageDirs, pushedPackages } from "../spack/contract.js";
import { withLock } from "../cache/host-lock.js";
import { CACHE_LAYOUT } from "../cache/layout.js";
import { findLock, saveLock, type LockKey } from "./lock-reuse.js";
import { ensurePasswdEntry } from "./passwd-entry.js";
import { copyStageLogs } from "./stage-logs.js";
import { TargetLog } from "./target-log.js";
import { keptContainerHint } from "./kept-container.js";
import type { FileSigningKey } from "../sign/key.js";
import { prepareGnupgHome, putSecretKey, removeSecretKey } from "../sign/container-key.js";
import { putRegistryFiles } from "./registry-files.js";

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
  /** Runs after the last step while the container is still there (packing reads the view from it). */
  afterSteps?: (container: BuildContainer, log: TargetLog, captured: Record<string, string>) => Promise<void>;
}

export interface StepTiming {
  step: string;
  seconds: number;
  exitCode: number;
  /** The step did not run: its result (a spack.lock) was reused. */
  reused?: boolean;
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

/** Build one target in its own container: write the environment, run the plan's steps, capture what they record. */
export async function runTarget(plan: TargetPlan, options: TargetRunOptions): Promise<TargetOutcome> {
  const { reporter, signal } = options;
  const target = plan.target;
  const log = await TargetLog.open(options.logPath, (line) => reporter.emit({ type: "line", target, line }));
  const steps: StepTiming[] = [];
  const captured: Record<string, string> = {};
  let lock: LockOutcome | undefined;
  let container: BuildContainer | undefined;
  let keep = false;
  try {
    if (signal.aborted) throw new CancelledError();
    const user = containerUser();
    container = await startContainer(options.engine, {
      image: options.image,
      env: { ...plan.env, ...options.extraEnv },
      mounts: plan.mounts.map((m) => ({
        host: hostPathOf(m, options.cacheRoot),
        container: m.container,
        readOnly: m.readOnly,
      })),
      user: `${user.uid}:${user.gid}`,
      labels: { "stack-factory.target": target, ...(options.keepContainer === true ? { [LABEL.keep]: "1" } : {}) },
      workingDir: CONTAINER.workRoot,
      ...(options.cpus === undefined ? {} : { cpus: options.cpus }),
      ...(options.memory === undefined ? {} : { memory: options.memory }),
      tmpfs: [
        ...(plan.signing === undefined ? [] : [plan.signing.tmpfs]),
        ...(plan.registryFiles === undefined ? [] : [plan.registryFiles.tmpfs]),
      ],
      signal,
    });
    await ensurePasswdEntry(container, user, signal);
    // One call per directory, so that each directory is made by the build user and the files are theirs.
    for (const [dir, files] of byDirectory(plan.files)) await container.putFiles(dir, files, user);
    if (plan.registryFiles !== undefined) await putRegistryFiles(container, plan.registryFiles, signal);
    if (plan.signing !== undefined) {
      if (options.signingKey === undefined)
        throw new BuildError(
          `target ${target}: the plan signs with ${plan.signing.fingerprint}, but no signing key was given`,
        );
      await prepareGnupgHome(container, plan.signing, signal);
    }
    await mkdir(options.workDir, { recursive: true });

    for (const step of plan.steps) {
      if (signal.aborted) throw new CancelledError();
      // Such a step runs only after the failure of the step it names (keepAfterFailure).
      if (step.afterFailureOf !== undefined) continue;
      if (step.id === "concretize" && options.lockKey !== undefined) {
        const started = performance.now();
        const startedAt = new Date().toISOString();
        lock = await reuseLock(container, plan.envDir, options.lockKey, options.cacheRoot, user);
        log.note(`step concretize: ${lock.reused ? "reused lock" : "concretizing"}: ${lock.reason}`);
        if (lock.reused) {
          reporter.emit({ type: "step", target, step: step.id, title: "reuse the earlier concretization" });
          steps.push({
            step: step.id,
            seconds: (performance.now() - started) / 1000,
            exitCode: 0,
            reused: true,
            startedAt,
          });
          continue;
        }
      }
      const skip = lock?.reused === true ? options.skipWithReusedLock?.[step.id] : undefined;
      if (skip !== undefined) {
        log.note(`step ${step.id}: skipped: ${skip}`);
        steps.push({ step: step.id, seconds: 0, exitCode: 0, reused: true });
        continue;
      }
      reporter.emit({ type: "step", target, step: step.id, title: step.title });
      const started = performance.now();
      const startedAt = new Date().toISOString();
      const { exitCode, stdout } = await execStep(container, step, plan, options, log);
      steps.push({ step: step.id, seconds: (performance.now() - started) / 1000, exitCode, startedAt });
      if (step.captureStdout !== undefined) {
        // Kept in memory for what follows (packing reads it from here); a copy stays in the run's record.
        captured[step.captureStdout] = stdout;
        const path = join(options.workDir, step.captureStdout);
        await writeFile(path, stdout);
        log.note(`step ${step.id}: output kept, and recorded in ${path}`);
      }
      if (exitCode === 0 && step.id === "concretize" && options.lockKey !== undefined && "key" in options.lockKey) {
        // Kept for the next run with the same inputs; a failure to keep it costs only that run's time.
        try {
          const text = (await container.readFile(`${plan.envDir}/spack.lock`, signal)).toString("utf8");
          await saveLock(options.cacheRoot, options.lockKey.key, text);
        } catch (error) {
          log.note(
            `step concretize: could not keep spack.lock for reuse: ${error instanceof Error ? error.message : String(error)}`,
          );
        }
      }
      if (exitCode !== 0 && step.optional === true && !signal.aborted) {
        log.note(`step ${step.id}: exit code ${exitCode}, going on (optional step)`);
        continue;
      }
      if (exitCode !== 0) {
        if (signal.aborted) throw new CancelledError();
        await saveStageLogs(container, log, `${options.logPath.replace(/\.log$/, "")}-stage`);
        keep = options.keepContainer === true;
        // The error quotes the failed step's last lines: made before anything else writes to the log.
        const failure = stepFailure(target, step.id, exitCode, log, keep ? container.id : undefined, options.engine);
        const kept = await keepAfterFailure(container, plan, step.id, options, log, steps);
        if (kept !== undefined) failure.message += `\n${kept}`;
        throw failure;
      }
    }
    if (options.afterSteps !== undefined) {
      reporter.emit({ type: "step", target, step: "package", title: "pack the tarball" });
      const started = performance.now();
      const startedAt = new Date().toISOString();
      const packed = (exitCode: number): StepTiming => ({
        step: "package",
        seconds: (performance.now() - started) / 1000,
        exitCode,
        startedAt,
      });
      try {
        await options.afterSteps(container, log, captured);
      } catch (error) {
        // The failed packing is a step of the report's timeline too.
        steps.push(packed(1));
        throw error;
      }
      steps.push(packed(0));
    }
    return { target, logPath: log.path, steps, captured, ...(lock === undefined ? {} : { lock }) };
  } catch (error) {
    // Packing failures keep the container on request too (step failures have already said so).
    if (
      options.keepContainer === true &&
      !keep &&
      container !== undefined &&
      !signal.aborted &&
      error instanceof Error
    ) {
      keep = true;
      error.message += `\n${keptContainerHint(options.engine, container.id, options.engine.runId)}`;
    }
    // The steps that ran (the failed one, then those that kept what it finished) go into the run report.
    throw Object.assign(error instanceof Error ? error : new Error(String(error)), { steps });
  } finally {
    if (container !== undefined && !keep) await container.remove();
    await log.close();
  }
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

/** Put the lock of an earlier run with the same inputs into the environment, if there is one. */
async function reuseLock(
  container: BuildContainer,
  envDir: string,
  key: LockKey,
  cacheRoot: string,
  user: { uid: number; gid: number },
): Promise<LockOutcome> {
  if ("unusable" in key) return { reused: false, reason: key.unusable };
  const text = await findLock(cacheRoot, key.key);
  if (text === undefined) return { reused: false, reason: "no earlier concretization with these inputs" };
  await container.putFiles(envDir, { "spack.lock": text }, user);
  return { reused: true, reason: `inputs unchanged since an earlier run (key ${key.key.slice(0, 12)})` };
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

function byDirectory(files: Record<string, string>): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const [path, content] of Object.entries(files)) {
    const dir = posix.dirname(path);
    out.set(dir, { ...out.get(dir), [posix.basename(path)]: content });
  }
  return out;
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
