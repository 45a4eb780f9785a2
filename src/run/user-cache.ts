import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { moveAside } from "../fs/move-aside.js";

/**
 * Spack v1.x clones git package repositories into `$SPACK_USER_CACHE_PATH/package_repos/<hash>/`. A clone that
 * failed (offline) leaves an initialised `.git` with no commit there, and every later run takes it as cloned and
 * fails reading its index: the persisted user cache stays poisoned until the directory goes. Removes such
 * directories (renamed aside first, so a concurrent reader never sees half of one) and returns their names.
 */
export async function clearPoisonedPackageRepos(userCache: string): Promise<string[]> {
  const base = join(userCache, "package_repos");
  const names = await readdir(base).catch(() => [] as string[]);
  const cleared: string[] = [];
  for (const name of names) {
    const dir = join(base, name);
    if ((await stat(dir).catch(() => undefined))?.isDirectory() !== true) continue;
    if (!(await isPoisoned(dir))) continue;
    const aside = await moveAside(dir, ".poisoned");
    if (aside !== undefined) await rm(aside, { recursive: true, force: true });
    cleared.push(name);
  }
  return cleared;
}

/** A package repository clone without a commit, or without any repository in it. */
async function isPoisoned(dir: string): Promise<boolean> {
  const git = await stat(join(dir, ".git")).catch(() => undefined);
  if (git === undefined) return false;
  const head = await execa("git", ["-C", dir, "rev-parse", "--verify", "--quiet", "HEAD"], { reject: false });
  return head.exitCode !== 0;
}
