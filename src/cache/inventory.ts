import { lstat, readdir, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { CACHE_KINDS, type CacheKind } from "./layout.js";
import { LAST_USED } from "./usage.js";

export { CACHE_KINDS, type CacheKind };

export interface CacheEntry {
  kind: CacheKind;
  /** Path relative to the cache root (`buildcache/<key>`, `source/zlib/zlib-1.3.tar.gz`). */
  path: string;
  bytes: number;
  files: number;
  /** Last use (the entry's last-used stamp, or its newest mtime). */
  lastUsed: Date;
}

/** Every entry of the cache root, with sizes. */
export async function inventory(cacheRoot: string): Promise<CacheEntry[]> {
  const entries: CacheEntry[] = [];
  for (const [kind, shape] of Object.entries(CACHE_KINDS) as [CacheKind, string][]) {
    const base = join(cacheRoot, kind);
    const names = await readdir(base).catch(() => [] as string[]);
    if (shape === "keyed") {
      for (const name of names.sort()) {
        if (name.includes(".tmp-")) continue;
        const usage = await usageOf(join(base, name));
        const stamp = await stat(join(base, name, LAST_USED)).catch(() => undefined);
        entries.push({ kind, path: join(kind, name), ...usage, lastUsed: stamp?.mtime ?? usage.newest });
      }
    } else if (shape === "files") {
      for (const file of await walkFiles(base)) {
        // A file being written, or being removed by `cache prune`, under a temporary name.
        if (basename(file).includes(".tmp-")) continue;
        const info = await lstat(join(base, file));
        // Spack reads cached sources without touching them: the access time (relatime) is the best sign of use.
        const lastUsed = new Date(Math.max(info.mtimeMs, info.atimeMs));
        entries.push({ kind, path: join(kind, file), bytes: info.size, files: 1, lastUsed });
      }
    } else if (names.length > 0) {
      const usage = await usageOf(base);
      entries.push({ kind, path: kind, ...usage, lastUsed: usage.newest });
    }
  }
  return entries;
}

async function usageOf(dir: string): Promise<{ bytes: number; files: number; newest: Date }> {
  let bytes = 0;
  let files = 0;
  let newest = 0;
  for (const file of await walkFiles(dir)) {
    const info = await lstat(join(dir, file));
    bytes += info.size;
    files += 1;
    newest = Math.max(newest, info.mtimeMs);
  }
  if (files === 0) newest = (await stat(dir).catch(() => undefined))?.mtimeMs ?? 0;
  return { bytes, files, newest: new Date(newest) };
}

/** Regular files and symlinks under dir, relative paths, not following links. */
async function walkFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isFile() && !e.isSymbolicLink()) continue;
    if (e.name === LAST_USED) continue;
    const parent = (e as { parentPath?: string; path?: string }).parentPath ?? (e as { path?: string }).path ?? dir;
    out.push(join(parent, e.name).slice(dir.length + 1));
  }
  return out.sort();
}
