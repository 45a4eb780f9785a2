/**
 * The host's side of a run before any container: cache directories, the Spack checkout and Spack v1.x's builtin
 * package repository, so that no build clones anything.
 */
import { BUILTIN_IN_CHECKOUT } from "../config/inspect.js";
import type { Origin } from "../config/types.js";
import { BuildError } from "../errors.js";
import type { BuildPlan } from "../plan/types.js";
import type { Reporter } from "../ui/reporter.js";
import { hostPathOf, prepareCacheDirs } from "./host-caches.js";
import { ensureSpackCheckout, headOf } from "./spack-checkout.js";
import { clearPoisonedPackageRepos } from "./user-cache.js";

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
export async function prepareHost(
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
