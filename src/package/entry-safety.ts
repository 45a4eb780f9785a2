/**
 * What a tarball may hold: relative paths without `..` under one top directory, regular files, directories,
 * and symlinks and hardlinks that stay inside that directory. Pure; shared by the packer and the verifier.
 */
import { posix } from "node:path";

export type EntryType = "file" | "directory" | "symlink" | "link";

const ALLOWED = new Set<string>(["file", "directory", "symlink", "link"]);

/** A path without leading `./` and trailing `/`. */
export function cleanName(name: string): string {
  return name.replace(/^(\.\/)+/, "").replace(/\/+$/, "");
}

/** Why an entry name is unsafe, or undefined. */
export function nameProblem(name: string): string | undefined {
  if (name.startsWith("/")) return "absolute path";
  const clean = cleanName(name);
  if (clean === "" || clean === ".") return "empty path";
  if (clean.split("/").some((part) => part === "..")) return "'..' in path";
  // A top directory that tools could read as an option (`-…`) is never one the factory writes.
  if (clean.startsWith("-")) return "a top directory starting with '-'";
  return undefined;
}

export function isInside(path: string, top: string): boolean {
  return path === top || path.startsWith(`${top}/`);
}

/** Where a symlink at `name` (archive path) points, archive-relative; undefined for an absolute target. */
export function symlinkTarget(name: string, linkname: string): string | undefined {
  if (linkname.startsWith("/")) return undefined;
  return posix.normalize(posix.join(posix.dirname(cleanName(name)), linkname));
}

export interface EntryLike {
  name: string;
  type?: string | null;
  linkname?: string | null;
}

/** Why an entry (already known to have a safe name under `top`) is unsafe, or undefined. */
export function entryProblem(entry: EntryLike, top: string): string | undefined {
  const type = entry.type ?? "file";
  if (!ALLOWED.has(type)) return `${type} entries are not allowed (only files, directories, symlinks and hardlinks)`;
  const linkname = entry.linkname ?? "";
  if (type === "symlink") {
    const target = symlinkTarget(entry.name, linkname);
    if (target === undefined) return `symlink to the absolute path ${linkname}`;
    if (!isInside(target, top)) return `symlink to ${linkname} leaves ${top}/`;
  }
  if (type === "link") {
    const problem = nameProblem(linkname);
    if (problem !== undefined) return `hardlink to ${linkname}: ${problem}`;
    if (!isInside(cleanName(linkname), top)) return `hardlink to ${linkname} leaves ${top}/`;
  }
  return undefined;
}
