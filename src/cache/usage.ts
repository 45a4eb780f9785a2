import { mkdir, readdir, readFile, unlink, utimes, writeFile } from "node:fs/promises";
import { writeFileAtomic } from "../fs/write-atomic.js";
import { hostname } from "node:os";
import { join } from "node:path";
import { isProcessAlive } from "../process/alive.js";
import { CACHE_LAYOUT } from "./layout.js";

/** File in every cache entry directory a run uses: its mtime says when the entry was last used. */
export const LAST_USED = ".stack-factory-last-used";

interface RunMarker {
  runId: string;
  pid: number;
  host: string;
  /** Cache entries (paths relative to the cache root) the run uses. */
  entries: string[];
}

/**
 * Record that a run uses these cache entries: stamps each entry's last use and writes a marker that `cache prune`
 * reads to leave them alone while the run is alive. Returns a function that removes the marker.
 */
export async function registerRun(cacheRoot: string, runId: string, entries: string[]): Promise<() => Promise<void>> {
  const now = new Date();
  for (const entry of entries) {
    const stamp = join(cacheRoot, entry, LAST_USED);
    await writeFile(stamp, "").catch(() => undefined);
    await utimes(stamp, now, now).catch(() => undefined);
  }
  const dir = join(cacheRoot, CACHE_LAYOUT.runMarkers);
  await mkdir(dir, { recursive: true });
  const marker: RunMarker = { runId, pid: process.pid, host: hostname(), entries };
  const path = join(dir, `${runId}.json`);
  await writeFileAtomic(path, JSON.stringify(marker));
  return async () => {
    await unlink(path).catch(() => undefined);
  };
}

/** Cache entries used by runs that are still alive (markers of dead runs on this host are removed). */
export async function entriesInUse(cacheRoot: string): Promise<Set<string>> {
  const dir = join(cacheRoot, CACHE_LAYOUT.runMarkers);
  const inUse = new Set<string>();
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.endsWith(".json"))) {
    try {
      const marker = JSON.parse(await readFile(join(dir, name), "utf8")) as RunMarker;
      if (marker.host === hostname() && !isProcessAlive(marker.pid)) {
        await unlink(join(dir, name)).catch(() => undefined);
        continue;
      }
      for (const entry of marker.entries) inUse.add(entry);
      inUse.add(CACHE_LAYOUT.logs(marker.runId));
      inUse.add(CACHE_LAYOUT.runs(marker.runId));
    } catch {
      // A marker being written: its run is alive by definition; it will be readable on the next prune.
    }
  }
  return inUse;
}
