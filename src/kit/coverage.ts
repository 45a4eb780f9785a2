/**
 * Does a kit cover a build? Pure: what is missing, each named, so `build --kit` and `doctor --kit` refuse before
 * any container starts. `present(path)` says whether a relative path of the kit exists.
 */
import type { Stack } from "../config/types.js";
import { getMicroarch } from "../targets/index.js";
import type { KitManifest } from "./manifest.js";

export interface CoverageInput {
  kit: KitManifest;
  stack: Stack;
  /** sha256 of the stack file's bytes. */
  stackSha256: string;
  /** Targets to build (default: every target of the stack). */
  targets?: readonly string[];
  present: (relativePath: string) => boolean;
}

/** Everything the kit lacks for this build (empty: it covers it). */
export function kitGaps(input: CoverageInput): string[] {
  const { kit, stack } = input;
  const gaps: string[] = [];
  if (kit.stack.sha256 !== input.stackSha256) {
    gaps.push(
      `the kit was made for another stack file: ${kit.stack.file} (${kit.stack.name} ${kit.stack.version}, sha256 ${kit.stack.sha256.slice(0, 16)}…), not ${stack.file} (sha256 ${input.stackSha256.slice(0, 16)}…)`,
    );
  }
  const need = (path: string, what: string) => {
    if (!input.present(path)) gaps.push(`${what} is missing: ${path}`);
  };
  need(`${kit.spack.path}/bin/spack`, "the Spack checkout");
  if (kit.spack_packages !== undefined)
    need(`${kit.spack_packages.builtin}/repo.yaml`, "the builtin package repository");
  for (const repo of stack.spack.repos) {
    const inKit = kit.repos.find((r) => r.namespace === repo.namespace);
    if (inKit === undefined) gaps.push(`package repository ${repo.namespace} is not in the kit`);
    else need(`${inKit.path}/repo.yaml`, `package repository ${repo.namespace}`);
  }
  for (const [mirror, url] of Object.entries(stack.spack.mirrors)) {
    if (!url.startsWith("/")) continue;
    const inKit = kit.mirrors.find((m) => m.name === mirror);
    if (inKit === undefined) gaps.push(`mirror ${mirror} is not in the kit`);
  }
  const families = new Set<string>();
  for (const target of input.targets ?? stack.targets) {
    const specs = kit.specs[target];
    if (!kit.targets.includes(target) || specs === undefined) {
      gaps.push(`target ${target} is not in the kit (it has: ${kit.targets.join(", ") || "none"})`);
      continue;
    }
    families.add(getMicroarch(target)?.family ?? target);
    for (const spec of specs) {
      if (spec.source !== undefined && !input.present(spec.source))
        gaps.push(`source of ${spec.name}@${spec.version} (target ${target}) is missing: ${spec.source}`);
    }
  }
  for (const family of families) {
    const image = kit.images.find((i) => i.family === family);
    if (image === undefined) gaps.push(`the builder image for ${family} is not in the kit`);
    else need(image.file, `the builder image for ${family}`);
  }
  return gaps;
}
