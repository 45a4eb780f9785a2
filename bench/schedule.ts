/**
 * Scheduling benchmark: N targets whose builds take a fixed time (the Spack stand-in sleeps in each build), at
 * concurrency c, against the ideal ceil(N/c) × the time of one target alone, measured in the same run.
 * Needs a Docker engine and the test image (scripts/ensure-docker.sh, scripts/make-test-image.sh).
 *   BENCH_TARGETS (default 4), BENCH_CONCURRENCY (default 2), BENCH_SLEEP seconds per build (default 8)
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { runPlan } from "../src/run/run-plan.js";
import { loadStack } from "../src/config/index.js";
import { connectEngine } from "../src/docker/index.js";
import { planBuild } from "../src/plan/plan.js";
import { loadTemplates } from "../src/render/templates.js";

const ALL_TARGETS = ["x86_64", "x86_64_v2", "x86_64_v3", "haswell", "broadwell", "skylake", "zen", "zen2"];
const n = Number(process.env["BENCH_TARGETS"] ?? 4);
const c = Number(process.env["BENCH_CONCURRENCY"] ?? 2);
const sleep = Number(process.env["BENCH_SLEEP"] ?? 8);
const image = process.env["STACK_FACTORY_TEST_IMAGE"] ?? "stack-factory-test/debian:bookworm";

async function timeRun(targets: string[], concurrency: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "sf-bench-schedule-"));
  try {
    const file = join(dir, "bench.yaml");
    await writeFile(
      file,
      [
        "name: bench",
        'version: "1"',
        "specs: [zlib]",
        `targets: ${JSON.stringify(targets)}`,
        `base_image: ${image}`,
        "compiler: { os: { packages: [gcc] } }",
        `spack: { source: ${JSON.stringify(resolve("tests/fixtures/spack-standin"))}, builtin: { source: ${JSON.stringify(resolve("tests/fixtures/spack-packages"))} } }`,
      ].join("\n"),
    );
    const plan = planBuild(await loadStack(file), targets, { templates: await loadTemplates(), jobs: 1, mode: "warm" });
    const started = performance.now();
    const result = await runPlan(plan, {
      engine: await connectEngine(),
      reporter: { emit() {}, close() {} },
      signal: new AbortController().signal,
      cacheRoot: join(dir, "cache"),
      concurrency,
      extraEnv: { SPACK_STANDIN_SLEEP: String(sleep) },
    });
    const seconds = (performance.now() - started) / 1000;
    const bad = result.targets.filter((t) => t.status !== "ok");
    if (bad.length > 0)
      throw new Error(`benchmark build failed: ${bad.map((t) => `${t.target}: ${t.error}`).join("; ")}`);
    return seconds;
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

const targets = ALL_TARGETS.slice(0, n);
// Warm-up: the builder image is built (or found) outside the measured runs.
await timeRun(targets.slice(0, 1), 1);
const single = await timeRun(targets.slice(0, 1), 1);
const wall = await timeRun(targets, c);
const ideal = Math.ceil(n / c) * single;
const rows = [
  ["measure", "seconds"],
  ["one target alone", single.toFixed(1)],
  [`${n} targets at concurrency ${c}`, wall.toFixed(1)],
  [`ideal ceil(${n}/${c}) × one target`, ideal.toFixed(1)],
  ["wall / ideal", (wall / ideal).toFixed(3)],
];
const width = Math.max(...rows.map((r) => r[0]!.length));
for (const r of rows) console.log(`${r[0]!.padEnd(width)}  ${r[1]}`);
console.log(`overhead over ideal: ${((wall / ideal - 1) * 100).toFixed(1)}% (goal: within 15%)`);
