/**
 * The host cache root's layout: every path under it and every lock name, in one place. Paths are relative to the
 * cache root (join them with `cacheRoot` where a host path is needed).
 *
 *   buildcache/<key>/        Spack buildcache, keyed by base image, compiler and padded length
 *   source/                  Spack source cache, shared by every key
 *   spack-user/<key>/        SPACK_USER_CACHE_PATH: Spack's misc cache and bootstrap store
 *   ccache/                  compiler cache
 *   spack/<key>/             clones of Spack
 *   spack-packages/<key>/    clones of Spack's builtin package repository (Spack v1.x)
 *   logs/<run>/<target>.log  full build logs
 *   runs/<run>/<target>/     what a run's steps recorded
 *   concretized/<key>/       a target's spack.lock, kept for the next run with the same inputs
 *   kept/<name>-<version>-<target>/  a target's last tarball and the inputs of its last build and warm run
 *                            (build.json, warm.json): an unchanged rebuild hands the tarball out again
 *   synced/<name>/           on an engine of another host: what the factory sent it (Spack, spack-packages, a
 *                            stack's repositories and mirrors), named by content digest, never changed once there
 *   synced/.incoming/<run>-N/ a tree being received; renamed into synced/ when complete
 *   synced/.used/<name>      when a run last mounted that tree (trees unused for 14 days are removed)
 *   locks/<name>.lock        host locks (buildcache pushes, source fetches)
 *   locks/runs/<run>.json    markers of live runs, read by `cache prune`
 */
import { join } from "node:path";

export const CACHE_LAYOUT = {
  buildcache: (key: string): string => join("buildcache", key),
  source: "source",
  spackUser: (key: string): string => join("spack-user", key),
  ccache: "ccache",
  spack: (key: string): string => join("spack", key),
  spackPackages: (key: string): string => join("spack-packages", key),
  logs: (runId: string): string => join("logs", runId),
  targetLog: (runId: string, target: string): string => join("logs", runId, `${target}.log`),
  runs: (runId: string): string => join("runs", runId),
  targetRecord: (runId: string, target: string): string => join("runs", runId, target),
  concretized: (key: string): string => join("concretized", key, "spack.lock"),
  kept: (target: string): string => join("kept", target),
  lock: (name: string): string => join("locks", `${name}.lock`),
  synced: (name: string): string => join("synced", name),
  incoming: (runId: string, n: number): string => join("synced", ".incoming", `${runId}-${n}`),
  runMarkers: join("locks", "runs"),
} as const;

/** The top-level directories of a cache root, and how each is organised. */
export const CACHE_KINDS = {
  buildcache: "keyed",
  "spack-user": "keyed",
  spack: "keyed",
  "spack-packages": "keyed",
  source: "files",
  ccache: "opaque",
  logs: "keyed",
  runs: "keyed",
  concretized: "keyed",
  kept: "keyed",
} as const;
export type CacheKind = keyof typeof CACHE_KINDS;

/** Host lock names. */
export const LOCKS = {
  /** One buildcache writer at a time per key (pushes update the index). */
  buildcache: (key: string): string => `buildcache-${key}`,
  /** One source fetch at a time, so each source is fetched once across targets. */
  sourceCache: "source-cache",
} as const;

/** The lock guarding a cache entry while it is written, if any (`buildcache/<key>` → its push lock). */
export function lockOfEntry(kind: CacheKind, path: string): string | undefined {
  if (kind === "buildcache") return LOCKS.buildcache(path.slice("buildcache/".length));
  if (kind === "source") return LOCKS.sourceCache;
  return undefined;
}
