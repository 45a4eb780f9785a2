/**
 * Pay only for what changed (issue 23): a target that runs with its earlier concretization reused skips the compiler
 * and externals registration (the lock names both), still builds what is missing from the buildcache from source with
 * the lock's compiler and externals, and packs a tarball that verifies. A target whose lock is not reused registers
 * them as before. Real Docker, the Spack stand-in and the compiled CLI.
 */
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { buildcacheEntries } from "./helpers/buildcache.js";
import { runCli } from "./helpers/cli.js";
import { requireEngine, requireTestImage } from "./helpers/engine.js";
import { tempDir, writeTestStack } from "./helpers/stack.js";

const SKIPPED = "the reused concretization names the compiler and externals";

interface Step {
  step: string;
  exitCode: number;
  reused?: boolean;
  skipped?: string;
}
interface Report {
  targets: {
    status: string;
    reason?: string;
    concretization?: string;
    built: string[];
    fromCache: string[];
    tarball?: string;
    logPath: string;
    steps: Step[];
    error?: string;
  }[];
}

let work: string;
let golden: string;
let cacheRoot: string;
let out: string;
let copies = 0;

// glib extends python: the lock names the external python (registered by `externals: [python]`) and python-venv is
// made with it; zlib is compiled with the lock's compiler.
const stackOf = (specs = ["glib"], externals = ["python"]) =>
  writeTestStack(work, { name: "skipreg", specs, extra: `externals: ${JSON.stringify(externals)}` });

beforeAll(async () => {
  const engine = await requireEngine();
  await requireTestImage(engine);
  await execa("npm", ["run", "build"], { stdio: "ignore" });
  work = await tempDir("reused-lock-steps");
  // One build from an empty cache; each test starts from its own copy of that cache (any order).
  golden = join(work, "golden-cache");
  cacheRoot = golden;
  out = join(work, "golden-out");
  const first = await run(await stackOf());
  const steps = first.targets[0]!.steps;
  // Nothing to reuse yet: both registrations ran.
  expect(steps.filter((s) => s.step === "compiler" || s.step === "externals")).toMatchObject([
    { step: "compiler", exitCode: 0 },
    { step: "externals", exitCode: 0 },
  ]);
  expect(steps.some((s) => s.skipped !== undefined)).toBe(false);
});

beforeEach(async () => {
  copies++;
  cacheRoot = join(work, `cache-${copies}`);
  out = join(work, `out-${copies}`);
  await execa("cp", ["-a", golden, cacheRoot]);
});

async function run(stackFile: string): Promise<Report> {
  const reportPath = join(work, `report-${Date.now()}-${copies}.json`);
  const args = ["build", stackFile, "--cache-dir", cacheRoot, "--out", out, "--report", reportPath, "--jobs", "2"];
  const result = await runCli(args);
  expect(result.exitCode, result.all).toBe(0);
  return JSON.parse(await readFile(reportPath, "utf8")) as Report;
}

/** Removes every buildcache entry of these packages: they are built from source again, with the same hashes. */
async function prune(names: string[]): Promise<void> {
  const [key] = await readdir(join(cacheRoot, "buildcache"));
  // Spack 1.1's layout: without its manifest an entry is not in the buildcache (its blobs may stay).
  const entries = buildcacheEntries(join(cacheRoot, "buildcache", key!)).filter((e) => names.includes(e.name));
  expect(entries.length).toBeGreaterThanOrEqual(names.length);
  for (const e of entries) await rm(e.manifestPath);
}

describe("a rebuild with the concretization reused", () => {
  it("skips the compiler and externals registration, builds what changed with the lock's, and the tarball verifies", async () => {
    await prune(["zlib", "python-venv"]);
    const report = await run(await stackOf());
    const t = report.targets[0]!;
    expect(t.status, t.error).toBe("ok");
    expect(t.reason).toMatch(/^not in the buildcache: /);
    expect(t.concretization).toBe("reused lock");
    expect(t.steps.filter((s) => s.step === "compiler" || s.step === "externals")).toEqual([
      { step: "compiler", seconds: 0, exitCode: 0, reused: true, skipped: SKIPPED },
      { step: "externals", seconds: 0, exitCode: 0, reused: true, skipped: SKIPPED },
    ]);
    // Not everything is in the buildcache: sources are fetched and what was built is pushed.
    expect(t.steps.find((s) => s.step === "fetch")).toMatchObject({ exitCode: 0 });
    expect(t.steps.find((s) => s.step === "fetch")!.skipped).toBeUndefined();
    expect(t.steps.find((s) => s.step === "push")!.skipped).toBeUndefined();
    const log = await readFile(t.logPath, "utf8");
    expect(log).toContain(`step compiler: skipped: ${SKIPPED}`);
    expect(log).toContain(`step externals: skipped: ${SKIPPED}`);
    expect(log).not.toMatch(/ compiler find| external find/);
    // Compiled with the lock's compiler, made with the lock's external python: nothing registered them this time.
    expect(t.built.filter((s) => /^(zlib|python-venv)-/.test(s)).length).toBe(2);
    expect(log).toMatch(/zlib: Successfully installed zlib-/);
    const verify = await runCli(["verify", t.tarball!]);
    expect(verify.exitCode, verify.all).toBe(0);
  });
});

describe("a rebuild with the concretization reused, the compiler built by Spack", () => {
  it("builds and views the compiler, skips only its registration, and compiles with it", async () => {
    const stackFile = await writeTestStack(work, { name: "skipbootstrap", specs: ["zlib"], compiler: "gcc@13.3.0" });
    const first = await run(stackFile);
    expect(first.targets[0]!.steps.find((s) => s.step === "compiler")).toMatchObject({ exitCode: 0 });
    await prune(["zlib"]);
    const t = (await run(stackFile)).targets[0]!;
    expect(t.status, t.error).toBe("ok");
    expect(t.concretization).toBe("reused lock");
    const steps = Object.fromEntries(t.steps.map((s) => [s.step, s]));
    // The lock names the compiler at its view: building (from the buildcache) and viewing it still run.
    for (const step of ["compiler-install", "compiler-view"]) {
      expect(steps[step], step).toMatchObject({ exitCode: 0 });
      expect(steps[step]!.reused, step).toBeUndefined();
    }
    expect(steps["compiler"]).toMatchObject({ reused: true, skipped: SKIPPED });
    const log = await readFile(t.logPath, "utf8");
    expect(log).toMatch(/Extracting gcc-13\.3\.0-\S+ from binary cache/);
    // The stack's zlib and the compiler's own (gcc depends on zlib): both pruned, both compiled again.
    expect(t.built.filter((s) => s.startsWith("zlib-"))).toHaveLength(2);
    const verify = await runCli(["verify", t.tarball!]);
    expect(verify.exitCode, verify.all).toBe(0);
  });
});

describe("a rebuild whose concretization is not reused", () => {
  it.each([
    ["a changed spec", ["glib", "json-c"], ["python"]],
    // The planned spack.yaml is the same: what the externals step registers is an input of the concretization.
    ["a changed list of externals", ["glib"], ["python", "openssl"]],
  ])("%s: registers the compiler and externals before concretizing", async (_, specs, externals) => {
    const report = await run(await stackOf(specs, externals));
    const t = report.targets[0]!;
    expect(t.status, t.error).toBe("ok");
    expect(t.concretization).toBe("concretized: no earlier concretization with these inputs");
    const ran = t.steps.filter((s) => s.step === "compiler" || s.step === "externals");
    expect(ran).toMatchObject([
      { step: "compiler", exitCode: 0 },
      { step: "externals", exitCode: 0 },
    ]);
    expect(ran.every((s) => s.reused === undefined && s.skipped === undefined)).toBe(true);
    const log = await readFile(t.logPath, "utf8");
    expect(log).toMatch(/ compiler find/);
    expect(log).toContain(` external find --not-buildable ${externals.join(" ")}`);
    expect(log).not.toContain(SKIPPED);
  });
});
