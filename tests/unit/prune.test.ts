import { access, mkdir, mkdtemp, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { inventory, type CacheEntry } from "../../src/cache/inventory.js";
import { choosePrunable, LEFTOVER_MIN_AGE_MS, pruneCache, tmpOwner } from "../../src/cache/prune.js";

/** `rm` as the real one, recording its paths; `failOnce` makes the next call stop as if the process were killed. */
const rmControl = vi.hoisted(() => ({ failOnce: false, calls: [] as string[] }));
vi.mock("node:fs/promises", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs/promises")>();
  const rm: typeof actual.rm = async (path, options) => {
    rmControl.calls.push(String(path));
    if (rmControl.failOnce) {
      rmControl.failOnce = false;
      throw new Error("interrupted");
    }
    return actual.rm(path, options);
  };
  return { ...actual, rm };
});

const now = new Date("2026-11-22T00:00:00Z");
const daysAgo = (d: number) => new Date(now.getTime() - d * 86_400_000);
const entry = (kind: CacheEntry["kind"], path: string, age: number): CacheEntry => ({
  kind,
  path,
  bytes: 10,
  files: 1,
  lastUsed: daysAgo(age),
});

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

describe("removing cache entries", () => {
  const DEAD_PID = 2 ** 22 + 17;

  async function cacheRoot(): Promise<string> {
    const root = await mkdtemp(join(tmpdir(), "sf-prune-"));
    await mkdir(join(root, "spack", "old", "bin"), { recursive: true });
    await writeFile(join(root, "spack", "old", "bin", "spack"), "#!/bin/sh\n");
    await writeFile(join(root, "spack", "old", "README"), "clone\n");
    await mkdir(join(root, "source", "zlib"), { recursive: true });
    await writeFile(join(root, "source", "zlib", "zlib-1.3.tar.gz"), "tarball");
    return root;
  }

  const far = () => new Date(Date.now() + 2 * LEFTOVER_MIN_AGE_MS);

  it("moves an entry aside before deleting it, so an interrupted removal leaves nothing a build would reuse", async () => {
    const root = await cacheRoot();
    rmControl.calls = [];
    rmControl.failOnce = true;
    await expect(pruneCache(root, { olderThanDays: 0, now: far() })).rejects.toThrow("interrupted");
    // The clone no longer exists under its own name: a build would clone afresh rather than reuse a broken one.
    await expect(access(join(root, "spack", "old", "bin", "spack"))).rejects.toThrow();
    const left = await readdir(join(root, "spack"));
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(new RegExp(`^old\\.tmp-${process.pid}-[0-9a-f]+$`));
    expect(rmControl.calls[0]).toBe(join(root, "spack", left[0]!));
    expect((await inventory(root)).map((e) => e.path)).not.toContain("spack/old");
  });

  it("deletes a source file under a temporary name, which the inventory does not list", async () => {
    const root = await cacheRoot();
    rmControl.calls = [];
    const result = await pruneCache(root, { olderThanDays: 0, now: far() });
    expect(paths(result.removed)).toEqual(["source/zlib/zlib-1.3.tar.gz", "spack/old"]);
    expect(rmControl.calls.map((p) => p.slice(root.length + 1))).toEqual([
      expect.stringMatching(/^spack\/old\.tmp-\d+-[0-9a-f]+$/),
      expect.stringMatching(/^source\/zlib\/zlib-1\.3\.tar\.gz\.tmp-\d+-[0-9a-f]+$/),
    ]);
    expect(await readdir(join(root, "spack"))).toEqual([]);
    expect(await readdir(join(root, "source", "zlib"))).toEqual([]);
    await writeFile(join(root, "source", "zlib", `zlib-1.3.tar.gz.tmp-${process.pid}-abc`), "partial");
    expect((await inventory(root)).filter((e) => e.kind === "source")).toEqual([]);
  });

  it("removes leftovers of interrupted removals whose process is gone, and keeps those of live ones", async () => {
    const root = await cacheRoot();
    const dead = join(root, "spack", `old.tmp-${DEAD_PID}-abc`);
    await mkdir(join(dead, "bin"), { recursive: true });
    await writeFile(join(dead, "bin", "spack"), "12345");
    await writeFile(join(root, "source", "zlib", `zlib-1.2.tar.gz.tmp-${DEAD_PID}-abc`), "123");
    const live = join(root, "buildcache", `k1.tmp-${process.pid}-abc`);
    await mkdir(live, { recursive: true });

    const recent = await pruneCache(root, { olderThanDays: 1000, now: new Date() });
    expect(recent.removed).toEqual([]);

    const dry = await pruneCache(root, { olderThanDays: 1000, now: far(), dryRun: true });
    expect(paths(dry.removed)).toEqual([
      `source/zlib/zlib-1.2.tar.gz.tmp-${DEAD_PID}-abc`,
      `spack/old.tmp-${DEAD_PID}-abc`,
    ]);
    expect(dry.removed.map((e) => e.bytes).sort()).toEqual([3, 5]);
    await access(dead);

    const result = await pruneCache(root, { olderThanDays: 1000, now: far() });
    expect(paths(result.removed)).toEqual(paths(dry.removed));
    expect(await readdir(join(root, "spack"))).toEqual(["old"]);
    expect(await readdir(join(root, "source", "zlib"))).toEqual(["zlib-1.3.tar.gz"]);
    expect(await readdir(join(root, "buildcache"))).toEqual([`k1.tmp-${process.pid}-abc`]);
  });

  it("reads the owning process of a temporary name", () => {
    expect(tmpOwner("old.tmp-123-abc")).toBe(123);
    expect(tmpOwner("plan.json.tmp-77")).toBe(77);
    expect(tmpOwner("zlib-1.3.tar.gz")).toBeUndefined();
    expect(tmpOwner("x.tmp-abc")).toBeUndefined();
  });
});
