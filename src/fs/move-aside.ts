import { randomBytes } from "node:crypto";
import { rename } from "node:fs/promises";

/**
 * Rename `path` to a unique name beside it (`<path><tag>-<pid>-<random>`) in one step. Only one rename of a file
 * succeeds: returns the new name, or undefined when `path` was already gone.
 */
export async function moveAside(path: string, tag: string): Promise<string | undefined> {
  const aside = `${path}${tag}-${process.pid}-${randomBytes(6).toString("hex")}`;
  try {
    await rename(path, aside);
    return aside;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** Parent directories of a relative path, outermost first (`a/b/c` → `a`, `a/b`). */
export function parentDirs(path: string): string[] {
  const parts = path.split("/").slice(0, -1);
  return parts.map((_, i) => parts.slice(0, i + 1).join("/"));
}
