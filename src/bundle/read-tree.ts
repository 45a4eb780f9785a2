/** A verified target tarball unpacked on the host, as the bundle planner sees it. */
import { sha256Of } from "../fs/sha256.js";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { LAYOUT } from "../package/layout.js";
import { relocatedPaths, type TargetTree, type TreeFile } from "./plan.js";

/** Every entry under `top` (the unpacked top directory), paths relative to it; "" is the top itself. */
async function listTree(top: string): Promise<TreeFile[]> {
  const out: TreeFile[] = [{ path: "", type: "directory", mode: (await lstat(top)).mode & 0o7777, size: 0 }];
  const entries = await readdir(top, { recursive: true });
  for (const rel of entries.sort()) {
    const full = join(top, rel);
    const stats = await lstat(full);
    const mode = stats.mode & 0o7777;
    if (stats.isDirectory()) out.push({ path: rel, type: "directory", mode, size: 0 });
    else if (stats.isSymbolicLink())
      out.push({ path: rel, type: "symlink", mode, size: 0, linkname: await readlink(full) });
    else if (stats.isFile())
      out.push({ path: rel, type: "file", mode, size: stats.size, sha256: await sha256Of(full) });
    else throw new Error(`${full}: not a file, directory or symlink (verify should have refused it)`);
  }
  return out;
}

export async function readTargetTree(target: string, top: string): Promise<TargetTree> {
  const relocate = await readFile(join(top, LAYOUT.relocateIndex), "utf8").catch(() => "");
  return { target, files: await listTree(top), relocated: relocatedPaths(relocate) };
}
