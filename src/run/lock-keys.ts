/**
 * A run's concretization keys: what feeds a target's concretization (its planned environments and registration
 * steps, what the Spack and spack-packages checkouts hold, the extra repositories' files, the builder image), read
 * once per run.
 */
import type { BuildPlan, TargetPlan } from "../plan/types.js";
import { hostPathOf } from "./host-caches.js";
import {
  concretizationKey,
  plannedEnvironments,
  registrationOf,
  repoDigest,
  treeIdentity,
  type ConcretizationInputs,
  type LockKey,
} from "./lock-reuse.js";
import { concretizationInputsByName } from "./up-to-date-inputs.js";

export interface LockKeys {
  lockKeyOf(target: TargetPlan, imageId: string): LockKey;
  /** The concretization's inputs by name, for the up-to-date check's reasons. */
  concretizationOf(target: TargetPlan, imageId: string): Record<string, string>;
}

/** The keys of a plan whose checkouts are under `sourceRoot`. */
export async function lockKeys(plan: BuildPlan, sourceRoot: string): Promise<LockKeys> {
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
    registration: registrationOf(target.steps),
  });
  return {
    lockKeyOf: (target, imageId) => concretizationKey(inputsOf(target, imageId)),
    concretizationOf: (target, imageId) => concretizationInputsByName(inputsOf(target, imageId)),
  };
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
