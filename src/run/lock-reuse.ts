/**
 * Reusing a target's concretization. Concretizing is the floor of a warm rebuild (35-55 s for a small environment
 * with real Spack on 2 cores, against 3 s to install it all from the buildcache). When nothing that feeds it has
 * changed, the previous run's spack.lock is put back and Spack installs from it without concretizing again.
 *
 * What feeds concretization: the environment's spack.yaml as planned (before compiler registration writes into
 * it), what the registration steps register into it (the compiler's search paths, the externals' names), the Spack
 * and builtin repository commits, the contents of extra repositories, and the builder image (its compilers, system
 * packages and externals). Any change gives another key, so a changed input never reuses a lock, and a reused lock
 * names the very compiler and externals the registration would write.
 */
import { createHash } from "node:crypto";
import { execa } from "execa";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { CACHE_LAYOUT } from "../cache/layout.js";
import type { Step } from "../plan/types.js";
import { writeFileAtomic } from "../fs/write-atomic.js";

export interface ConcretizationInputs {
  /** spack.yaml files of the target as planned (container path → content): the stack's and the compiler's. */
  environments: Record<string, string>;
  /** What the Spack checkout holds (`treeIdentity`), "unknown" when it cannot be told. */
  spackCommit: string;
  /** What the spack-packages checkout holds (`treeIdentity`). */
  spackPackagesCommit?: string;
  /** Digest of each extra repository's files, by namespace. */
  repoDigests: Record<string, string>;
  imageId: string;
  /** What the steps before concretization register into spack.yaml (registrationOf); absent: nothing. */
  registration?: string[][];
}

/** Steps that write into the environment's spack.yaml before it is concretized. */
const REGISTRATION: ReadonlySet<string> = new Set(["compiler", "externals"]);

/**
 * What a target's registration steps register, as their Spack commands without the executable and environment
 * (`compiler find PATH...`, `external find --not-buildable PKG...`): a changed list of externals is a changed input.
 */
export function registrationOf(steps: readonly Step[]): string[][] {
  return steps
    .filter((s) => REGISTRATION.has(s.id))
    .map((s) => {
      const env = s.argv.indexOf("-e");
      return env < 0 ? [...s.argv] : s.argv.slice(env + 2);
    });
}

/**
 * What of a target's planned files feeds its concretization: its environments' spack.yaml (container path →
 * content). Build parallelism is not in them (the install steps carry `-j`), so a target planned alone and among
 * others, with other job counts, gets the same key.
 */
export function plannedEnvironments(files: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(files).filter(([path]) => path.endsWith("/spack.yaml")));
}

/** The key under which a target's lock is kept, or why no lock can be trusted. */
export type LockKey = { key: string } | { unusable: string };

export function concretizationKey(inputs: ConcretizationInputs): LockKey {
  if (inputs.spackCommit === "unknown") return { unusable: "the Spack checkout has no git commit to compare" };
  if (inputs.spackPackagesCommit === "unknown")
    return { unusable: "the spack-packages checkout has no git commit to compare" };
  if (inputs.imageId === "") return { unusable: "the builder image id is unknown" };
  const hash = createHash("sha256");
  const field = (name: string, value: string) => hash.update(name).update("\0").update(value).update("\0");
  for (const path of Object.keys(inputs.environments).sort()) field(`env:${path}`, inputs.environments[path] as string);
  field("spack", inputs.spackCommit);
  field("spack-packages", inputs.spackPackagesCommit ?? "");
  for (const ns of Object.keys(inputs.repoDigests).sort()) field(`repo:${ns}`, inputs.repoDigests[ns] as string);
  field("image", inputs.imageId);
  field("registration", JSON.stringify(inputs.registration ?? []));
  return { key: hash.digest("hex").slice(0, 32) };
}

/**
 * What a git checkout holds, as git knows it: the tree of the directory at HEAD (so that a checkout inside a larger
 * repository changes identity only when its own files do), plus a digest of uncommitted changes to tracked files.
 * "unknown" when the directory is not in a git repository.
 */
export async function treeIdentity(dir: string): Promise<string> {
  const tree = await execa("git", ["-C", dir, "rev-parse", "HEAD:./"], { reject: false });
  if (tree.exitCode !== 0) return "unknown";
  const diff = await execa("git", ["-C", dir, "diff", "--no-ext-diff", "--binary", "HEAD", "--", "."], {
    reject: false,
    encoding: "buffer",
  });
  if (diff.exitCode !== 0) return "unknown";
  const dirty =
    diff.stdout.length === 0 ? "" : `+${createHash("sha256").update(diff.stdout).digest("hex").slice(0, 16)}`;
  return `${String(tree.stdout).trim()}${dirty}`;
}

/** sha256 over every file of a repository (relative path and content), `.git` and caches left out. */
export async function repoDigest(dir: string): Promise<string> {
  const hash = createHash("sha256");
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  const files = entries
    .filter((e) => e.isFile() || e.isSymbolicLink())
    .map((e) => join((e as { parentPath?: string }).parentPath ?? dir, e.name).slice(dir.length + 1))
    .filter((rel) => !rel.split("/").some((part) => part === ".git" || part === "__pycache__"))
    .sort();
  for (const rel of files) {
    hash.update(rel).update("\0");
    hash.update(await readFile(join(dir, rel)).catch(() => Buffer.from("(unreadable)"))).update("\0");
  }
  return hash.digest("hex");
}

/** The lock kept under this key, if any. */
export async function findLock(cacheRoot: string, key: string): Promise<string | undefined> {
  const text = await readFile(join(cacheRoot, CACHE_LAYOUT.concretized(key)), "utf8").catch(() => undefined);
  // A lock is JSON; anything else (a truncated write from another era) is not trusted.
  if (text === undefined) return undefined;
  try {
    JSON.parse(text);
    return text;
  } catch {
    return undefined;
  }
}

export async function saveLock(cacheRoot: string, key: string, content: string): Promise<void> {
  await writeFileAtomic(join(cacheRoot, CACHE_LAYOUT.concretized(key)), content);
}
