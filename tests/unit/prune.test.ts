import { describe, expect, it } from "vitest";
import type { CacheEntry } from "../../src/cache/inventory.js";
import { choosePrunable } from "../../src/cache/prune.js";

const now = new Date("2026-11-22T00:00:00Z");
const daysAgo = (d: number) => new Date(now.getTime() - d * 86_400_000);
const entry = (kind: CacheEntry["kind"], path: string, age: number): CacheEntry => ({ kind, path, bytes: 10, files: 1, lastUsed: daysAgo(age) });

const entries = [
  entry("buildcache", "buildcache/a", 1),
  entry("buildcache", "buildcache/b", 20),
  entry("buildcache", "buildcache/c", 40),
  entry("source", "source/zlib/zlib-1.3.tar.gz", 50),
  entry("logs", "logs/run1", 30),
  entry("logs", "logs/run2", 2),
  entry("ccache", "ccache", 90),
];
const paths = (list: CacheEntry[]) => list.map((e) => e.path).sort();

describe("choosing what cache prune removes", () => {
  it("removes what was last used before the limit, never ccache (it manages its own size)", () => {
    const r = choosePrunable(entries, { olderThanDays: 10, now }, new Set());
    expect(paths(r.removed)).toEqual(["buildcache/b", "buildcache/c", "logs/run1", "source/zlib/zlib-1.3.tar.gz"]);
    expect(paths(r.kept)).toContain("ccache");
  });

  it("keeps the N most recently used entries of each keyed kind", () => {
    const r = choosePrunable(entries, { keepLast: 1, now }, new Set());
    expect(paths(r.removed)).toEqual(["buildcache/b", "buildcache/c", "logs/run1"]);
  });

  it("never removes what a live run uses, and says so", () => {
    const r = choosePrunable(entries, { olderThanDays: 10, now }, new Set(["buildcache/c", "source"]));
    expect(paths(r.inUse)).toEqual(["buildcache/c", "source/zlib/zlib-1.3.tar.gz"]);
    expect(paths(r.removed)).toEqual(["buildcache/b", "logs/run1"]);
  });
});
