import { rm } from "node:fs/promises";
import { join } from "node:path";
import { withLock } from "../build/host-lock.js";
import { inventory, type CacheEntry } from "./inventory.js";
import { entriesInUse } from "./usage.js";

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
    else if ([...inUse].some((p) => e.path === p || e.path.startsWith(`${p}/`) || p.startsWith(`${e.path}/`))) result.inUse.push(e);
    else result.removed.push(e);
  }
  return result;
}

/**
 * Remove old cache entries. Never touches what a live run uses, and removes a buildcache or the source cache's
 * files only while holding the lock its writers take, so no push or fetch is cut in half.
 */
export async function pruneCache(cacheRoot: string, options: PruneOptions): Promise<PruneResult> {
  const result = choosePrunable(await inventory(cacheRoot), options, await entriesInUse(cacheRoot));
  if (options.dryRun === true) return result;
  for (const entry of result.removed) {
    const remove = () => rm(join(cacheRoot, entry.path), { recursive: true, force: true });
    const lock =
      entry.kind === "buildcache" ? `buildcache-${entry.path.slice("buildcache/".length)}` : entry.kind === "source" ? "source-cache" : undefined;
    if (lock === undefined) await remove();
    else await withLock(join(cacheRoot, "locks", `${lock}.lock`), remove);
  }
  return result;
}
