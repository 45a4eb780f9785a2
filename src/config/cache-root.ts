/**
 * One rule for every cache root (`--cache-dir`, `STACK_FACTORY_CACHE`, an engine's `cache:`): never under the
 * kernel's own file systems. Creating directories under /proc makes Node's recursive mkdir spin forever, and
 * /sys and /dev hold no data. `--cache-dir` is also checked on disk (its file system type, see cli/options.ts);
 * an engine's cache root may be on another host, so it is checked by its path.
 */
import path from "node:path";

const KERNEL_ROOTS = ["/proc", "/sys", "/dev"];

/** Why `root` cannot be a cache root, or undefined. Pure. */
export function cacheRootProblem(root: string): string | undefined {
  const normal = path.posix.normalize(root);
  const under = KERNEL_ROOTS.find((k) => normal === k || normal.startsWith(`${k}/`));
  if (under === undefined) return undefined;
  return `a cache root under ${under} is on a file system of the kernel's, not a disk; give a directory on a disk`;
}
