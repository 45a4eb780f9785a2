/**
 * Which entries of a bundle are stored and which are hard links (pure). A bundle holds each target's tree under
 * `targets/<target>/`; a regular file of a later target that is byte-identical to the same path of an earlier one
 * (same sha256, size and mode) is stored as a hard link to the earlier entry, the one GNU tar has already extracted.
 * A path some target relocates (its relocate.tsv), the targets' metadata (`.stack-factory/`, manifest, sums, sbom,
 * install.sh) and their modules are never shared: the installer rewrites them per target.
 */
import { RELOCATE_INDEX } from "../package/layout.js";

export interface TreeFile {
  /** Path relative to the target's top directory. */
  path: string;
  type: "file" | "directory" | "symlink";
  mode: number;
  size: number;
  /** sha256 hex of a regular file. */
  sha256?: string;
  linkname?: string;
}

export interface TargetTree {
  target: string;
  files: TreeFile[];
  /** Paths (relative to the top directory) the target's relocate.tsv lists. */
  relocated: string[];
}

export type BundleEntry =
  | (TreeFile & { name: string; kind: "stored"; target: string })
  | { name: string; kind: "link"; target: string; path: string; linkTo: string; mode: number; sha256: string };

const NEVER_SHARED = [/^\.stack-factory\//, /^modules\//, /^(install\.sh|manifest\.json|SHA256SUMS|sbom\.cdx\.json)$/];

export const TARGETS_DIR = "targets";

/** `targets/<target>/<path>` (no trailing slash for the top itself). */
export function bundleName(target: string, path: string): string {
  return path === "" ? `${TARGETS_DIR}/${target}` : `${TARGETS_DIR}/${target}/${path}`;
}

function sharable(path: string, relocated: ReadonlySet<string>): boolean {
  return !relocated.has(path) && !NEVER_SHARED.some((re) => re.test(path));
}

/**
 * The bundle's entries under `targets/`, target by target in the given order, each tree's paths in byte order
 * (a directory before what it holds), with later identical files as links to the first.
 */
export function planBundleEntries(trees: readonly TargetTree[]): BundleEntry[] {
  const relocated = new Set(trees.flatMap((t) => t.relocated));
  const first = new Map<string, string>();
  const entries: BundleEntry[] = [];
  for (const tree of trees) {
    const sorted = [...tree.files].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
    for (const file of sorted) {
      const name = bundleName(tree.target, file.path);
      if (file.type === "file" && file.sha256 !== undefined && sharable(file.path, relocated)) {
        const key = `${file.path}\0${file.sha256}\0${file.size}\0${file.mode}`;
        const earlier = first.get(key);
        if (earlier !== undefined) {
          const link = { name, kind: "link" as const, target: tree.target, path: file.path, linkTo: earlier };
          entries.push({ ...link, mode: file.mode, sha256: file.sha256 });
          continue;
        }
        first.set(key, name);
      }
      entries.push({ ...file, name, kind: "stored", target: tree.target });
    }
  }
  return entries;
}

/** The paths a relocate.tsv lists (its format: src/package/layout.ts). */
export function relocatedPaths(relocateTsv: string): string[] {
  return relocateTsv
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => line.split("\t")[1] ?? "")
    .filter((path) => path !== "");
}

export { RELOCATE_INDEX };
