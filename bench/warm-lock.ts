/**
 * Warm-path benchmark, on one cache, in one run:
 *
 * 1. the Spack time of a warm rebuild of an unchanged target, reusing the earlier run's spack.lock against
 *    concretizing afresh (SPACK_STANDIN_CONCRETIZE_SECONDS: 35-55 s for a four-node environment on two cores with
 *    Spack 1.1);
 * 2. the wall time of an unchanged target, `warm` and `build` (buildStack, as the CLI runs it), with the up-to-date
 *    check against without it (today's path: every step in a container, the tarball packed again). The stand-in takes
 *    as long as real Spack 1.1 took for each step of such a rebuild (SPACK_STANDIN_STEP_SECONDS, issue 23's figures:
 *    compiler find 2.5 s, externals 2.0, fetch 2.1, install from cache 4.0, push 2.2, view 2.1, find 1.8). Packing is
 *    the factory's own, of the stand-in's small view (real views take longer: 4.2 s in the issue), so today's path is
 *    if anything measured short. Runs alternate, BENCH_REPEAT times each; every time is printed.
 * 3. one package changed (zlib pruned from the buildcache before each run, so the target is not up to date and zlib
 *    is compiled again) with the lock reused, `warm`: the compiler and externals registration skipped (the reused
 *    lock names them) against today's path, the same run with them registered (`registerWithReusedLock`).
 *
 * Needs a Docker engine and the test image (scripts/ensure-docker.sh, scripts/make-test-image.sh).
 *   BENCH_CONCRETIZE seconds per concretization (default 40)
 *   BENCH_REPEAT     runs of each unchanged-target variant (default 3)
 *   BENCH_SKIP_LOCK=1 leave out part 1 (two concretizations)
 */
import { cp, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { loadStack } from "../src/config/index.js";
import { connectEngine } from "../src/docker/index.js";
import { planBuild } from "../src/plan/plan.js";
import { loadTemplates } from "../src/render/templates.js";
import { buildStack } from "../src/api/build-stack.js";
import { runPlan, type RunResult } from "../src/run/run-plan.js";

const concretize = Number(process.env["BENCH_CONCRETIZE"] ?? 40);
const image = process.env["STACK_FACTORY_TEST_IMAGE"] ?? "stack-factory-test/debian:bookworm";
const dir = await mkdtemp(join(tmpdir(), "sf-bench-warm-"));
const file = join(dir, "bench.yaml");
// Snapshots of the stand-in and its packages in git repositories of their own: the lock's key follows what the
// checkouts hold, and the project's working tree may change while the benchmark runs.
const snapshot = async (from: string, name: string): Promise<string> => {
  const to = join(dir, name);
  await cp(resolve(from), to, { recursive: true });
  const git = (...args: string[]) =>
    execa("git", ["-C", to, "-c", "user.email=b@example.invalid", "-c", "user.name=b", ...args]);
  await git("init", "--quiet");
  await git("add", "-A");
  await git("commit", "--quiet", "-m", "snapshot");
  return to;
};
const spackDir = await snapshot("tests/fixtures/spack-standin", "spack");
const packagesDir = await snapshot("tests/fixtures/spack-packages", "spack-packages");
await writeFile(
  file,
  [
    "name: bench",
    'version: "1"',
    "specs: [hello, zlib]",
    "targets: [x86_64_v3]",
    `base_image: ${image}`,
    "compiler: { os: { packages: [gcc] } }",
    "externals: [python]",
    `spack: { source: ${JSON.stringify(spackDir)}, builtin: { source: ${JSON.stringify(packagesDir)} } }`,
  ].join("\n"),
);
const plan = planBuild(await loadStack(file), undefined, { templates: await loadTemplates(), jobs: 2, mode: "warm" });

async function warm(reuseLocks: boolean): Promise<RunResult> {
  const result = await runPlan(plan, {
    engine: await connectEngine(),
    reporter: { emit() {}, close() {} },
    signal: new AbortController().signal,
    cacheRoot: join(dir, "cache"),
    concurrency: 1,
    reuseLocks,
    extraEnv: { SPACK_STANDIN_CONCRETIZE_SECONDS: String(concretize) },
  });
  const bad = result.targets.filter((t) => t.status !== "ok");
  if (bad.length > 0)
    throw new Error(`benchmark build failed: ${bad.map((t) => `${t.target}: ${t.error}`).join("; ")}`);
  return result;
}
/** Seconds spent in Spack commands (every step but packing). */
const spackSeconds = (r: RunResult): number =>
  r.targets[0]!.steps.filter((s) => s.step !== "package").reduce((n, s) => n + s.seconds, 0);
const stepsOf = (r: RunResult): string =>
  r.targets[0]!.steps.map((s) => `${s.step} ${s.seconds.toFixed(1)}${s.reused === true ? " (reused)" : ""}`).join(", ");

/** Issue 23's figures for real Spack 1.1 (seconds per command of an unchanged rebuild), by command word. */
const STEP_SECONDS = "compiler=2.5,external=2.0,fetch=2.1,install=4.0,buildcache=2.2,env=2.1,find=1.8";
const repeat = Number(process.env["BENCH_REPEAT"] ?? 3);

/** One unchanged-target run through buildStack: wall seconds, and the target's reason and steps. */
async function unchanged(mode: "build" | "warm", upToDate: boolean): Promise<{ seconds: number; detail: string }> {
  const started = performance.now();
  const { result, report } = await buildStack(await loadStack(file), {
    mode,
    cacheRoot: join(dir, "cache"),
    outDir: join(dir, "out"),
    concurrency: 1,
    jobs: 2,
    reporter: { emit() {}, close() {} },
    signal: new AbortController().signal,
    upToDate,
    extraEnv: { SPACK_STANDIN_CONCRETIZE_SECONDS: String(concretize), SPACK_STANDIN_STEP_SECONDS: STEP_SECONDS },
  });
  const seconds = (performance.now() - started) / 1000;
  const t = result.targets[0]!;
  if (t.status !== "ok") throw new Error(`benchmark ${mode} failed: ${t.error}`);
  const reason = report.targets[0]!.reason ?? "";
  if (upToDate && reason !== "up to date: nothing started") throw new Error(`${mode} was not up to date: ${reason}`);
  return { seconds, detail: upToDate ? reason : stepsOf(result) };
}

try {
  if (process.env["BENCH_SKIP_LOCK"] !== "1") await lockPart();
  // The first build of this stack packs and keeps its tarball (the lock is kept already, or made now).
  await unchanged("build", true).catch(() => unchanged("build", true));
  const runs: Record<string, { seconds: number[]; detail: string }> = {};
  const variants: [string, "build" | "warm", boolean][] = [
    ["warm, steps in a container (no up-to-date check)", "warm", false],
    ["warm, up-to-date check (nothing started)", "warm", true],
    ["build, steps and packing (no up-to-date check)", "build", false],
    ["build, up-to-date check (kept tarball)", "build", true],
  ];
  for (let i = 0; i < repeat; i++) {
    for (const [name, mode, upToDate] of variants) {
      const r = await unchanged(mode, upToDate);
      runs[name] = { seconds: [...(runs[name]?.seconds ?? []), r.seconds], detail: r.detail };
    }
  }
  console.log(
    `\nunchanged target, one target, wall seconds per run (${repeat} alternating runs each; Spack steps as slow as real Spack 1.1)`,
  );
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const [name] of variants) {
    const r = runs[name]!;
    console.log(
      `${name.padEnd(50)} median ${median(r.seconds).toFixed(2).padStart(6)}  runs ${r.seconds.map((x) => x.toFixed(2)).join(", ")}  ${r.detail}`,
    );
  }
  console.log("goals: build <= 2 s, warm <= 1 s per target");
  await changedPart();
} finally {
  await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}

async function lockPart(): Promise<void> {
  // First run: builds everything, pushes it, keeps the lock.
  const first = await warm(true);
  console.log(`first run: ${first.targets[0]!.lock?.reason ?? "?"}`);
  const fresh = await warm(false);
  const reused = await warm(true);
  const rows = [
    ["warm rebuild of an unchanged target", "Spack seconds", "steps"],
    ["concretizing afresh (baseline)", spackSeconds(fresh).toFixed(1), stepsOf(fresh)],
    ["reusing the earlier spack.lock", spackSeconds(reused).toFixed(1), stepsOf(reused)],
  ];
  const w0 = Math.max(...rows.map((r) => r[0]!.length));
  const w1 = Math.max(...rows.map((r) => r[1]!.length));
  for (const r of rows) console.log(`${r[0]!.padEnd(w0)}  ${r[1]!.padStart(w1)}  ${r[2]}`);
  console.log(
    `concretization time per concretize: ${concretize} s (stand-in); goal: under 10 s of Spack time with the lock`,
  );
  console.log(
    `lock reused: ${reused.targets[0]!.lock?.reused === true ? "yes" : `no (${reused.targets[0]!.lock?.reason ?? "?"})`}`,
  );
}

/** One `warm` of the target with zlib pruned from the buildcache first: wall seconds, Spack seconds and its steps. */
async function oneChanged(register: boolean): Promise<{ seconds: number; spack: number; detail: string }> {
  const buildcache = join(dir, "cache", "buildcache");
  // Spack 1.1's layout: without its spec manifest, zlib is not in the buildcache.
  for (const key of await readdir(buildcache))
    await rm(join(buildcache, key, "v3", "manifests", "spec", "zlib"), { recursive: true, force: true });
  const started = performance.now();
  const result = await runPlan(plan, {
    engine: await connectEngine(),
    reporter: { emit() {}, close() {} },
    signal: new AbortController().signal,
    cacheRoot: join(dir, "cache"),
    concurrency: 1,
    upToDate: {},
    registerWithReusedLock: register,
    extraEnv: { SPACK_STANDIN_CONCRETIZE_SECONDS: String(concretize), SPACK_STANDIN_STEP_SECONDS: STEP_SECONDS },
  });
  const seconds = (performance.now() - started) / 1000;
  const t = result.targets[0]!;
  if (t.status !== "ok") throw new Error(`benchmark warm failed: ${t.error}`);
  if (t.lock?.reused !== true || !(t.upToDate?.reason ?? "").startsWith("not in the buildcache"))
    throw new Error(`not the changed-package path: ${t.lock?.reason}; ${t.upToDate?.reason}`);
  return { seconds, spack: spackSeconds(result), detail: stepsOf(result) };
}

async function changedPart(): Promise<void> {
  const variants: [string, boolean][] = [
    ["today's path (compiler and externals registered)", true],
    ["registration skipped (the lock names them)", false],
  ];
  const runs: Record<string, { seconds: number[]; spack: number[]; detail: string }> = {};
  for (let i = 0; i < repeat; i++) {
    for (const [name, register] of variants) {
      const r = await oneChanged(register);
      const was = runs[name];
      runs[name] = {
        seconds: [...(was?.seconds ?? []), r.seconds],
        spack: [...(was?.spack ?? []), r.spack],
        detail: r.detail,
      };
    }
  }
  console.log(`\none package changed (zlib rebuilt), lock reused, warm, one target (${repeat} alternating runs each)`);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const [name] of variants) {
    const r = runs[name]!;
    console.log(
      `${name.padEnd(50)} median wall ${median(r.seconds).toFixed(2).padStart(6)}  Spack ${median(r.spack).toFixed(2).padStart(6)}  runs ${r.seconds.map((x) => x.toFixed(2)).join(", ")}  ${r.detail}`,
    );
  }
}
