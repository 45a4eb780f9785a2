/**
 * Warm-path benchmark: the Spack time of a warm rebuild of an unchanged target, reusing the earlier run's spack.lock
 * against concretizing afresh, measured in the same run on the same cache. The Spack stand-in is made to take as
 * long as real Spack to concretize (SPACK_STANDIN_CONCRETIZE_SECONDS: 35-55 s for a four-node environment on two
 * cores with Spack 1.1); installing everything from the buildcache is what it is.
 * Needs a Docker engine and the test image (scripts/ensure-docker.sh, scripts/make-test-image.sh).
 *   BENCH_CONCRETIZE seconds per concretization (default 40)
 */
import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { loadStack } from "../src/config/index.js";
import { connectEngine } from "../src/docker/index.js";
import { planBuild } from "../src/plan/plan.js";
import { loadTemplates } from "../src/render/templates.js";
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

try {
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
} finally {
  await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}
