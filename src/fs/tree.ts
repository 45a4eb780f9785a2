/**
 * A directory tree as the factory sends it to another host: its entries in a fixed order (directories, regular
 * files and symbolic links; `.git` and `__pycache__` left out), and a digest of what they are (path, type, mode,
 * size, modification time, link target) that changes whenever a file does, without reading file bodies.
 */
import { createHash } from "node:crypto";
import { lstat, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import { InputError } from "../errors.js";
import { kindOf } from "./kind.js";

export interface TreeEntry {
  /** Relative to the tree's root, `/`-separated. */
  path: string;
  /** Absolute path on this host. */
  abs: string;
  type: "directory" | "file" | "symlink";
  mode: number;
  size: number;
  /** Kept when sent: Spack tells changed package files by their modification times. */
  mtimeMs: number;
  linkname?: string;
}

/** Directory names never sent: version control and Python's byte-code caches. */
const LEFT_OUT = new Set([".git", "__pycache__"]);

/** Every entry under `root` (not the root itself), parents before children, names in byte order. */
export async function listTree(root: string): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    const names = (await readdir(dir)).filter((n) => !LEFT_OUT.has(n)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const name of names) {
      const abs = join(dir, name);
      const path = rel === "" ? name : `${rel}/${name}`;
      const info = await lstat(abs);
      const common = { path, abs, mode: info.mode & 0o7777, size: info.size, mtimeMs: Math.trunc(info.mtimeMs) };
      if (info.isDirectory()) {
        out.push({ ...common, type: "directory", size: 0 });
        await walk(abs, path);
      } else if (info.isFile()) {
        out.push({ ...common, type: "file" });
      } else if (info.isSymbolicLink()) {
        out.push({ ...common, type: "symlink", size: 0, linkname: await readlink(abs) });
      } else {
        throw new InputError(
          `cannot send ${abs} to another host: it is ${kindOf(info)}, not a file, directory or link`,
        );
      }
    }
  };
  await walk(root, "");
  return out;
}

/** A digest of the entries' metadata (not their bodies): equal trees give equal digests on any host. */
export function treeDigest(entries: readonly TreeEntry[]): string {
  const hash = createHash("sha256");
  for (const e of entries) {
    hash.update(`${e.type}\0${e.path}\0${e.mode.toString(8)}\0${e.size}\0${e.mtimeMs}\0${e.linkname ?? ""}\n`);
  }
  return hash.digest("hex");
}
