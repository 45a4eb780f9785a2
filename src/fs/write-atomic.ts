import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

/**
 * Write a file under a temporary name beside it, then rename it into place: a reader never sees half a file, and
 * a failure leaves nothing under the final name.
 */
export async function writeFileAtomic(path: string, content: string | Buffer): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    await writeFile(tmp, content);
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true });
    // A write that fails on its descriptor (a full disk) carries no path: name the file it was writing.
    const failure = error as NodeJS.ErrnoException;
    if (typeof failure.code === "string" && (typeof failure.path !== "string" || failure.path === tmp))
      failure.path = path;
    throw error;
  }
}
