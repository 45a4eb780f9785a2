/**
 * What a tarball may hold: relative paths without `..` under one top directory, regular files, directories,
 * and symlinks and hardlinks that stay inside that directory, without setuid/setgid/sticky or world-writable
 * modes. Pure; shared by the packer and the verifier.
 */
import { posix } from "node:path";

export type EntryType = "file" | "directory" | "symlink" | "link";

const ALLOWED = new Set<string>(["file", "directory", "symlink", "link"]);

/**
 * A path as the file system resolves it: without `.` components, repeated `/` and a trailing `/`, so `a//b`,
 * `./a/./b` and `a/b/` are all `a/b`. A leading `/` is kept (an absolute path stays absolute).
 */
export function cleanName(name: string): string {
  const parts = name.split("/").filter((part) => part !== "" && part !== ".");
  return `${name.startsWith("/") ? "/" : ""}${parts.join("/")}`;
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

/** Why a file's or directory's mode is unsafe to install, or undefined (symlinks and hardlinks have no mode of their own). */
export function modeProblem(type: string, mode: number): string | undefined {
  if (type !== "file" && type !== "directory") return undefined;
  const octal = (mode & 0o7777).toString(8).padStart(4, "0");
  if ((mode & 0o4000) !== 0) return `mode ${octal} is setuid`;
  if ((mode & 0o2000) !== 0) return `mode ${octal} is setgid`;
  if ((mode & 0o1000) !== 0) return `mode ${octal} has the sticky bit`;
  if ((mode & 0o002) !== 0) return `mode ${octal} is world-writable`;
  return undefined;
}

/** Linux's limit on symlinks followed while resolving one path. */
const MAX_HOPS = 40;

/**
 * Resolves the symlink at `name` (a clean archive path under `top`) as the kernel would once the whole archive is
 * extracted, following the other symlinks of the archive (`links`: clean path → link target) that it passes
 * through. Returns why it leaves `top` (even on the way, as `../top/x` does) or loops, or undefined.
 */
export function symlinkEscape(name: string, links: ReadonlyMap<string, string>, top: string): string | undefined {
  const stack = name.split("/").slice(0, -1);
  const todo = (links.get(name) ?? "").split("/");
  let hops = 0;
  while (todo.length > 0) {
    const part = todo.shift()!;
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (stack.length <= 1) return `leaves ${top}/ once the symlinks it passes through are followed`;
      stack.pop();
      continue;
    }
    const path = [...stack, part].join("/");
    const target = links.get(path);
    if (target === undefined) {
      stack.push(part);
      continue;
    }
    if (++hops > MAX_HOPS) return "is a symlink loop";
    if (target.startsWith("/")) return `passes through ${path}, a symlink to the absolute path ${target}`;
    todo.unshift(...target.split("/"));
  }
  return stack[0] === top ? undefined : `leaves ${top}/`;
}

/** The nearest directory above `name` (a clean path) that is one of `links`, or undefined. */
export function symlinkAbove(name: string, links: ReadonlyMap<string, string>): string | undefined {
  const parts = name.split("/");
  for (let i = 1; i < parts.length; i++) {
    const above = parts.slice(0, i).join("/");
    if (links.has(above)) return above;
  }
  return undefined;
}

/**
 * Why an entry's owner is unsafe, or undefined. Every entry the factory writes is owned by 0:0 with empty (or
 * root) names: tar run as root restores the owner an archive names, so any other gives that user the file.
 */
export function ownerProblem(owner: { uid: number; gid: number; uname: string; gname: string }): string | undefined {
  const named = (name: string) => name === "" || name === "root";
  if (owner.uid === 0 && owner.gid === 0 && named(owner.uname) && named(owner.gname)) return undefined;
  const user = owner.uname !== "" ? `${owner.uname} (${owner.uid})` : String(owner.uid);
  const group = owner.gname !== "" ? `${owner.gname} (${owner.gid})` : String(owner.gid);
  return `owned by ${user}:${group}, not root (tar run as root would give it to that owner)`;
}
