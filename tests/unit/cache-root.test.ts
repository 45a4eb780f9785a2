import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chooseCacheRoot, defaultCacheRoot } from "../../src/cache/root.js";

let work: string;
const savedXdg = process.env["XDG_CACHE_HOME"];
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "sf-cache-root-"));
  process.env["XDG_CACHE_HOME"] = "/var/cache/u";
});
afterAll(async () => {
  if (savedXdg === undefined) delete process.env["XDG_CACHE_HOME"];
  else process.env["XDG_CACHE_HOME"] = savedXdg;
  await rm(work, { recursive: true, force: true });
});

describe("the default cache root", () => {
  it("is the project's cache/ when running from a checkout", async () => {
    const checkout = path.join(work, "checkout");
    await mkdir(path.join(checkout, ".git"), { recursive: true });
    await writeFile(path.join(checkout, "package.json"), "{}");
    expect(defaultCacheRoot(checkout)).toBe(path.join(checkout, "cache"));
  });

  it("is the user's XDG cache directory when installed as a package, never inside node_modules", async () => {
    const installed = path.join(work, "prefix", "lib", "node_modules", "stack-factory");
    await mkdir(installed, { recursive: true });
    await writeFile(path.join(installed, "package.json"), "{}");
    expect(defaultCacheRoot(installed)).toBe("/var/cache/u/stack-factory");
    // Even a package copy with a .git inside node_modules does not keep its cache there.
    await mkdir(path.join(installed, ".git"), { recursive: true });
    expect(defaultCacheRoot(installed)).toBe("/var/cache/u/stack-factory");
  });

  it("gives way to --cache-dir, then STACK_FACTORY_CACHE", () => {
    expect(chooseCacheRoot("rel/dir", work, { STACK_FACTORY_CACHE: "/env/c" })).toBe(path.resolve("rel/dir"));
    expect(chooseCacheRoot(undefined, work, { STACK_FACTORY_CACHE: "/env/c" })).toBe("/env/c");
    expect(chooseCacheRoot(undefined, work, { STACK_FACTORY_CACHE: "" })).toBe("/var/cache/u/stack-factory");
  });
});
