import { lstat, readdir, rm } from "node:fs/promises";
import { join, relative } from "node:path";
import { isProcessAlive } from "../process/alive.js";
import { withLock } from "./host-lock.js";
import { inventory, type CacheEntry } from "./inventory.js";
import { CACHE_KINDS, CACHE_LAYOUT, lockOfEntry, type CacheKind } from "./layout.js";
import { entriesInUse } from "./usage.js";
import { moveAside } from "../fs/move-aside.js";

export interface PruneOptions {
  /** Remove entries last used more than this many days ago. */
  olderThanDays?: number;
  /** Keep only the N most recently used entries of each keyed kind (buildcache keys, clones, runs...). */
  keepLast?: number;
  dryRun?: boolean;
  now?: Date;
}

export interface PruneResult {
  removed: CacheEntry[];
  kept: CacheEntry[];
  /** Entries that would have gone but a live run uses them. */
  inUse: CacheEntry[];
}

/** Decide what to remove. Pure. */
export function choosePrunable(entries: CacheEntry[], options: PruneOptions, inUse: Set<string>): PruneResult {
  const now = (options.now ?? new Date()).getTime();
  const doomed = new Set<CacheEntry>();
  if (options.olderThanDays !== undefined) {
    const limit = now - options.olderThanDays * 86_400_000;
    for (const e of entries) if (e.kind !== "ccache" && e.lastUsed.getTime() < limit) doomed.add(e);
  }
  if (options.keepLast !== undefined) {
    const byKind = new Map<string, CacheEntry[]>();
    for (const e of entries) {
      if (e.kind === "source" || e.kind === "ccache") continue;
      byKind.set(e.kind, [...(byKind.get(e.kind) ?? []), e]);
    }
    for (const list of byKind.values()) {
      list.sort((a, b) => b.lastUsed.getTime() - a.lastUsed.getTime());
      for (const e of list.slice(options.keepLast)) doomed.add(e);
    }
  }
  const result: PruneResult = { removed: [], kept: [], inUse: [] };
  for (const e of entries) {
    if (!doomed.has(e)) result.kept.push(e);
    else if ([...inUse].some((p) => e.path === p || e.path.startsWith(`${p}/`) || p.startsWith(`${e.path}/`)))
      result.inUse.push(e);
    else result.removed.push(e);
  }
  return result;
}

/**
 * Remove old cache entries. Never touches what a live run uses, and removes a buildcache or the source cache's
 * files only while holding the lock its writers take, so no push or fetch is cut in half. Each entry is first
 * renamed aside (`<entry>.tmp-<pid>-<random>`, a name the inventory and the builds ignore) and only then deleted,
 * so an interrupted prune never leaves a half-deleted entry that a build would take for a complete one. Leftovers
 * of such interrupted removals (and of interrupted writers) are removed too, and listed among the removed entries.
 */
export async function pruneCache(cacheRoot: string, options: PruneOptions): Promise<PruneResult> {
  const result = choosePrunable(await inventory(cacheRoot), options, await entriesInUse(cacheRoot));
  const leftovers = await findLeftovers(cacheRoot, options.now ?? new Date());
  const all: PruneResult = { ...result, removed: [...result.removed, ...leftovers] };
  if (options.dryRun === true) return all;
  for (const entry of result.removed) {
    const remove = () => removeEntry(join(cacheRoot, entry.path));
    const lock = lockOfEntry(entry.kind, entry.path);
    if (lock === undefined) await remove();
    else await withLock(join(cacheRoot, CACHE_LAYOUT.lock(lock)), remove);
  }
  for (const leftover of leftovers) await rm(join(cacheRoot, leftover.path), { recursive: true, force: true });
  return all;
}

/** Rename `path` aside in one step, then delete the renamed copy. */
export async function removeEntry(path: string): Promise<void> {
  const aside = await moveAside(path, ".tmp");
  if (aside !== undefined) await rm(aside, { recursive: true, force: true });
}

/** A leftover must be this old (by its ctime, which a rename sets) as well as have a dead owner. */
export const LEFTOVER_MIN_AGE_MS = 3_600_000;
const TMP_NAME = /\.tmp-(\d+)(?:-|$)/;

/** The owning pid of a `<name>.tmp-<pid>[-...]` name, if it has one. */
export function tmpOwner(name: string): number | undefined {
  const match = TMP_NAME.exec(name);
  return match === null ? undefined : Number(match[1]);
}

/**
 * Temporary entries (`.tmp-<pid>`) of the keyed kinds and of the source cache whose process is gone and that are
 * older than LEFTOVER_MIN_AGE_MS: the remains of an interrupted removal, clone or push.
 */
async function findLeftovers(cacheRoot: string, now: Date): Promise<CacheEntry[]> {
  const found: CacheEntry[] = [];
  for (const [kind, shape] of Object.entries(CACHE_KINDS) as [CacheKind, string][]) {
    if (shape === "opaque") continue;
    const base = join(cacheRoot, kind);
    const dirents = await readdir(base, { withFileTypes: true, recursive: shape === "files" }).catch(() => []);
    for (const d of dirents) {
      const pid = tmpOwner(d.name);
      if (pid === undefined || pid === process.pid || isProcessAlive(pid)) continue;
      if (shape === "files" && !d.isFile() && !d.isSymbolicLink()) continue;
      const parent = (d as { parentPath?: string; path?: string }).parentPath ?? (d as { path?: string }).path ?? base;
      const full = join(parent, d.name);
      const info = await lstat(full).catch(() => undefined);
      if (info === undefined || now.getTime() - info.ctimeMs < LEFTOVER_MIN_AGE_MS) continue;
      const size = info.isDirectory() ? await sizeOf(full) : { bytes: info.size, files: 1 };
      found.push({ kind, path: relative(cacheRoot, full), ...size, lastUsed: info.mtime });
    }
  }
  return found.sort((a, b) => a.path.localeCompare(b.path));
}

async function sizeOf(dir: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  for (const d of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (!d.isFile() && !d.isSymbolicLink()) continue;
    const parent = (d as { parentPath?: string; path?: string }).parentPath ?? (d as { path?: string }).path ?? dir;
    bytes += (await lstat(join(parent, d.name)).catch(() => undefined))?.size ?? 0;
    files += 1;
  }
  return { bytes, files };
}
