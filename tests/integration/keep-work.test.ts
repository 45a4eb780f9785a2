/**
 * A late failure keeps what was built: a build that fails at its second package (zlib, after gcc-runtime) pushes
 * the first to the buildcache after the failure, the report and the error say so, and a rerun builds only the
 * second.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import type { RunReport } from "../../src/run/report.js";
import { buildcacheEntries, buildcacheIndex } from "./helpers/buildcache.js";
import { runCli } from "./helpers/cli.js";
import { requireEngine, requireTestImage } from "./helpers/engine.js";
import { tempDir, writeTestStack } from "./helpers/stack.js";

let work: string;

beforeAll(async () => {
  await requireTestImage(await requireEngine());
  await execa("npm", ["run", "build"], { stdio: "ignore" });
  work = await tempDir("keep-work");
});

async function build(stackFile: string, name: string, env: string[] = []) {
  const report = join(work, `${name}.json`);
  const args = ["build", stackFile, "--cache-dir", join(work, "cache"), "--out", join(work, "out"), "--report", report];
  const run = await runCli([...args, ...env.flatMap((e) => ["--env", e])]);
  const parsed = JSON.parse(await readFile(report, "utf8")) as RunReport;
  return { exitCode: run.exitCode, all: run.all ?? "", target: parsed.targets[0]! };
}

describe("a build that fails late", () => {
  it("keeps the packages built before the failure in the buildcache, and a rerun builds only the rest", async () => {
    const stackFile = await writeTestStack(work, { name: "late", specs: ["zlib"] });

    const first = await build(stackFile, "first", ["SPACK_STANDIN_FAIL=zlib"]);
    expect(first.exitCode, first.all).toBe(1);
    expect(first.target.status).toBe("failed");
    const runtime = first.target.built.find((p) => p.startsWith("gcc-runtime-"));
    expect(runtime, JSON.stringify(first.target)).toBeDefined();
    expect(first.target.built.some((p) => p.startsWith("zlib-"))).toBe(false);
    // The report and the error say what was kept; the error still quotes the failed build.
    expect(first.target.kept).toEqual([runtime]);
    expect(first.target.steps.map((s) => s.step)).toEqual(expect.arrayContaining(["install", "keep"]));
    expect(first.target.steps.map((s) => s.step)).not.toContain("push");
    expect(first.all).toMatch(/step "install" failed with exit code 1/);
    expect(first.all).toMatch(/injected build failure of zlib|spack-build-out\.txt/);
    expect(first.all).toMatch(/kept in the buildcache: 1 package\(s\) built before the failure \(gcc-runtime@/);

    // In the buildcache: gcc-runtime, indexed; not zlib.
    const keys = await readdir(join(work, "cache", "buildcache"));
    expect(keys).toHaveLength(1);
    const dir = join(work, "cache", "buildcache", keys[0]!);
    const entries = buildcacheEntries(dir).map((e) => e.short);
    expect(entries).toContain(runtime);
    expect(entries.some((e) => e.startsWith("zlib-"))).toBe(false);
    const index = buildcacheIndex(dir);
    expect(Object.keys(index.database.installs)).toEqual([runtime!.slice(-32)]);

    const second = await build(stackFile, "second");
    expect(second.exitCode, second.all).toBe(0);
    expect(second.target.fromCache).toEqual([runtime]);
    expect(second.target.built).toHaveLength(1);
    expect(second.target.built[0]).toMatch(/^zlib-/);
    expect(second.target).not.toHaveProperty("kept");
  });
});
