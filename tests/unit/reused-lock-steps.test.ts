import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveLock } from "../../src/run/lock-reuse.js";
import { lookUpLock, REGISTRATION_SKIPPED, skipReason } from "../../src/run/reused-lock-steps.js";

let cacheRoot: string;
beforeAll(async () => {
  cacheRoot = await mkdtemp(path.join(tmpdir(), "sf-reused-lock-"));
});
afterAll(() => rm(cacheRoot, { recursive: true, force: true }));

const LOCK = JSON.stringify({ roots: [{ hash: "h", spec: "zlib" }], concrete_specs: {} });

describe("the lock looked up before the first step", () => {
  it("is reused when one is kept under the key, with its text", async () => {
    await saveLock(cacheRoot, "k".repeat(32), LOCK);
    const found = await lookUpLock({ key: "k".repeat(32) }, cacheRoot);
    expect(found).toEqual({
      outcome: { reused: true, reason: `inputs unchanged since an earlier run (key ${"k".repeat(12)})` },
      text: LOCK,
    });
  });

  it("is not reused without a kept lock, or with an unusable key, and says why", async () => {
    expect(await lookUpLock({ key: "m".repeat(32) }, cacheRoot)).toEqual({
      outcome: { reused: false, reason: "no earlier concretization with these inputs" },
    });
    expect(await lookUpLock({ unusable: "the builder image id is unknown" }, cacheRoot)).toEqual({
      outcome: { reused: false, reason: "the builder image id is unknown" },
    });
  });
});

describe("steps a reused concretization spares", () => {
  const reused = { outcome: { reused: true, reason: "r" }, text: LOCK };
  const concretizing = { outcome: { reused: false, reason: "no earlier concretization with these inputs" } };
  const all = "every spec of the reused concretization is in the buildcache";

  it("skips the compiler and externals registration, and only them, when the lock is reused", () => {
    expect(skipReason("compiler", reused, {})).toBe(REGISTRATION_SKIPPED);
    expect(skipReason("externals", reused, {})).toBe(REGISTRATION_SKIPPED);
    expect(REGISTRATION_SKIPPED).toBe("the reused concretization names the compiler and externals");
    // Building the compiler with Spack, and its view (the lock names the compiler there), always run.
    for (const step of ["compiler-install", "compiler-push", "compiler-view", "trust", "install", "view"] as const)
      expect(skipReason(step, reused, {}), step).toBeUndefined();
  });

  it("runs every step when the lock is not reused, or the run registers anyway", () => {
    for (const lock of [concretizing, undefined]) {
      expect(skipReason("compiler", lock, { skipWithReusedLock: { fetch: all } })).toBeUndefined();
      expect(skipReason("externals", lock, {})).toBeUndefined();
      expect(skipReason("fetch", lock, { skipWithReusedLock: { fetch: all } })).toBeUndefined();
    }
    expect(skipReason("compiler", reused, { registerWithReusedLock: true })).toBeUndefined();
  });

  it("skips what the run names for a reused lock (fetch and push with every spec in the buildcache)", () => {
    const options = { skipWithReusedLock: { fetch: all, push: all } };
    expect(skipReason("fetch", reused, options)).toBe(all);
    expect(skipReason("push", reused, options)).toBe(all);
    expect(skipReason("install", reused, options)).toBeUndefined();
  });
});
