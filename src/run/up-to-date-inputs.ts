/** A target's concretization inputs by name, as kept records compare them (what packing depends on: src/package). */
import type { ConcretizationInputs } from "./lock-reuse.js";
import { digestOf } from "./up-to-date.js";

/** Pure: the concretization's inputs by name. */
export function concretizationInputsByName(inputs: ConcretizationInputs): Record<string, string> {
  return {
    "spack.yaml": digestOf(JSON.stringify(sortedEntries(inputs.environments))),
    Spack: inputs.spackCommit,
    "spack-packages": inputs.spackPackagesCommit ?? "none",
    "package repositories": digestOf(JSON.stringify(sortedEntries(inputs.repoDigests))),
    "builder image": inputs.imageId,
    "compiler and externals registration": digestOf(JSON.stringify(inputs.registration ?? [])),
  };
}

function sortedEntries(record: Record<string, string>): [string, string][] {
  return Object.entries(record).sort(([a], [b]) => a.localeCompare(b));
}
