/** The files of a kit on disk: copying trees into it and checksumming what it holds. */
import { sha256Of } from "../fs/sha256.js";
import { cp, lchown, lstat, readdir, readlink } from "node:fs/promises";
import { basename, dirname, join, normalize, relative } from "node:path";
import { KIT_LAYOUT } from "./layout.js";

/** Copy a checkout or repository into the kit as a plain tree: `.git` and byte-code caches left out, links kept. */
export async function copyTree(from: string, to: string): Promise<void> {
  await cp(from, to, {
    recursive: true,
    verbatimSymlinks: true,
    preserveTimestamps: true,
    filter: (src) => !["__pycache__", ".git"].includes(basename(src)),
  });
}

export interface KitInventory {
  /** Regular files: relative path → sha256. */
  files: Record<string, string>;
  bytes: number;
  /** Symbolic links that leave the kit or are absolute: a kit never has them. */
  escapingLinks: string[];
}

/** Every regular file of the kit (kit.json and its signature left out) with its sha256; links are checked. */
export async function inventory(kitDir: string): Promise<KitInventory> {
  const files: Record<string, string> = {};
  const escapingLinks: string[] = [];
  let bytes = 0;
  const entries = await readdir(kitDir, { recursive: true });
  for (const rel of entries.sort()) {
    if (rel === KIT_LAYOUT.manifest || rel === KIT_LAYOUT.signature) continue;
    const abs = join(kitDir, rel);
    const info = await lstat(abs);
    if (info.isSymbolicLink()) {
      const target = await readlink(abs);
      const resolved = normalize(join(dirname(rel), target));
      if (target.startsWith("/") || resolved.startsWith("..")) escapingLinks.push(rel);
    } else if (info.isFile()) {
      files[relative(kitDir, abs)] = await sha256Of(abs);
      bytes += info.size;
    }
  }
  return { files, bytes, escapingLinks };
}

/** Give a tree to uid:gid (root only; an ordinary user's containers already run as that user). */
export async function giveTree(dir: string, owner: { uid: number; gid: number }): Promise<void> {
  if (process.getuid?.() !== 0) return;
  await lchown(dir, owner.uid, owner.gid);
  for (const rel of await readdir(dir, { recursive: true })) await lchown(join(dir, rel), owner.uid, owner.gid);
}
