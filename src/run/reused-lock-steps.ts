/**
 * What a reused concretization spares a target's steps. Whether the earlier spack.lock will be reused depends only on
 * its key, known before the container starts, so it is looked up once before the first step: the steps before
 * `concretize` can then be skipped too.
 *
 * Spack installs an environment whose spack.lock names every root of its spack.yaml from the lock alone: it does not
 * concretize again (changes of spack.yaml's other sections are "only picked up when the environment is explicitly
 * re-concretized"), and every node it builds with takes its compiler and externals from the lock's nodes (an
 * external's `path` and `extra_attributes`, e.g. `compilers: {c: /usr/bin/gcc}`), not from `packages:`. So the
 * registration steps (`compiler find`, `external find`), which only write into spack.yaml's `packages:`, have
 * nothing to do. The steps that build the compiler with Spack and make its view still run: the lock names the
 * compiler at that view, which must be there for anything built from source.
 */
import type { StepId } from "../plan/types.js";
import { findLock, type LockKey } from "./lock-reuse.js";
import type { LockOutcome } from "./run-target.js";

export const REGISTRATION_SKIPPED = "the reused concretization names the compiler and externals";

/** Steps that only register what a reused concretization already names. */
const REGISTRATION_STEPS: ReadonlySet<StepId> = new Set(["compiler", "externals"]);

/** The earlier concretization, as looked up before the first step. */
export interface LockLookup {
  outcome: LockOutcome;
  /** The kept spack.lock, when it is reused. */
  text?: string;
}

/** Looks the lock up under its key: reused when one is kept, else why not. */
export async function lookUpLock(key: LockKey, cacheRoot: string): Promise<LockLookup> {
  if ("unusable" in key) return { outcome: { reused: false, reason: key.unusable } };
  const text = await findLock(cacheRoot, key.key);
  if (text === undefined) return { outcome: { reused: false, reason: "no earlier concretization with these inputs" } };
  return {
    outcome: { reused: true, reason: `inputs unchanged since an earlier run (key ${key.key.slice(0, 12)})` },
    text,
  };
}

/**
 * Why a step is skipped, or undefined when it runs: a registration step when the lock will be reused (unless the run
 * asks to register anyway), or a step the run names for a reused lock (`skipWithReusedLock`: fetch and push when every
 * spec of the lock is in the buildcache).
 */
export function skipReason(
  step: StepId,
  lock: LockLookup | undefined,
  options: { registerWithReusedLock?: boolean; skipWithReusedLock?: Partial<Record<string, string>> },
): string | undefined {
  if (lock?.outcome.reused !== true) return undefined;
  if (REGISTRATION_STEPS.has(step) && options.registerWithReusedLock !== true) return REGISTRATION_SKIPPED;
  return options.skipWithReusedLock?.[step];
}
