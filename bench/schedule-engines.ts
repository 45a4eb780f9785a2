/**
 * Scheduling over two engines: N targets whose builds take a fixed time (the Spack stand-in sleeps in each build),
 * c slots on each of two engines, against the ideal ceil(N / 2c) × the time of one target alone, measured in the
 * same run (the mean of one run before the N targets and one after). Needs the main engine and the second one
 * (scripts/ensure-docker.sh, scripts/ensure-second-engine.sh) and the test image (scripts/make-test-image.sh).
 *   BENCH_TARGETS (default 8), BENCH_CONCURRENCY per engine (default 2), BENCH_SLEEP seconds per build (default 8),
 *   BENCH_ROUNDS (default 1): rounds of lone target, N targets, lone target
 *   STACK_FACTORY_SECOND_ENGINE (default unix:///var/run/stack-factory-docker2.sock)
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { EngineSetting } from "../src/config/factory.js";
import { loadStack } from "../src/config/index.js";
import { newRunId } from "../src/docker/index.js";
import { planBuild } from "../src/plan/plan.js";
import { loadTemplates } from "../src/render/templates.js";
import { connectEngines } from "../src/run/engines.js";
import { runPlan, type TargetResult } from "../src/run/run-plan.js";
import type { RunEvent } from "../src/ui/reporter.js";

const ALL_TARGETS = [
  "x86_64",
  "x86_64_v2",
  "x86_64_v3",
  "haswell",
  "broadwell",
  "skylake",
  "zen",
  "zen2",
  "zen3",
  "icelake",
];
const n = Number(process.env["BENCH_TARGETS"] ?? 8);
const c = Number(process.env["BENCH_CONCURRENCY"] ?? 2);
const sleep = Number(process.env["BENCH_SLEEP"] ?? 8);
const rounds = Number(process.env["BENCH_ROUNDS"] ?? 1);
const image = process.env["STACK_FACTORY_TEST_IMAGE"] ?? "stack-factory-test/debian:bookworm";
const second = process.env["STACK_FACTORY_SECOND_ENGINE"] ?? "unix:///var/run/stack-factory-docker2.sock";

async function timeRun(
  targets: string[],
  engineCount: 1 | 2,
  concurrency: number,
): Promise<{ seconds: number; nodeCpu: number; perEngine: Record<string, number>; timeline: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), "sf-bench-engines-"));
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
    const settings: EngineSetting[] = [
      {
        name: "main",
        endpoint: { url: "unix:///var/run/docker.sock" },
        cacheRoot: join(dir, "cache-main"),
        concurrency,
      },
      { name: "second", endpoint: { url: second }, cacheRoot: join(dir, "cache-second"), concurrency },
    ].slice(0, engineCount);
    const { up, down } = await connectEngines(settings, {
      runId: newRunId(),
      defaultCacheRoot: join(dir, "cache"),
      defaultConcurrency: concurrency,
    });
    if (down.length > 0) throw new Error(`engines down: ${down.map((d) => `${d.name}: ${d.reason}`).join("; ")}`);
    const cpu = process.cpuUsage();
    const started = performance.now();
    const startedWall = Date.now();
    const events: Timed[] = [];
    const result = await runPlan(plan, {
      engines: up,
      reporter: {
        emit(event) {
          if (event.type === "target-start" || event.type === "step" || event.type === "target-done")
            events.push({ at: (performance.now() - started) / 1000, event });
        },
        close() {},
      },
      signal: new AbortController().signal,
      cacheRoot: join(dir, "cache"),
      concurrency,
      extraEnv: { SPACK_STANDIN_SLEEP: String(sleep) },
      // Every run concretizes: the measure is scheduling, not lock reuse.
      reuseLocks: false,
    });
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    const nodeCpu = (used.user + used.system) / 1e6;
    const bad = result.targets.filter((t) => t.status !== "ok");
    if (bad.length > 0)
      throw new Error(`benchmark build failed: ${bad.map((t) => `${t.target}: ${t.error}`).join("; ")}`);
    const perEngine: Record<string, number> = {};
    for (const t of result.targets) perEngine[t.engine ?? "?"] = (perEngine[t.engine ?? "?"] ?? 0) + 1;
    return { seconds, nodeCpu, perEngine, timeline: timeline(events, result.targets, startedWall) };
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

type Timed = { at: number; event: RunEvent };

/**
 * Per target, seconds from the run's start: when it was handed out, its container ready (first step), each step's
 * start and length (the report's startedAt/seconds), when it was done, and its time beyond the build's sleep.
 */
function timeline(events: Timed[], results: TargetResult[], t0: number): string[] {
  const lines: string[] = [];
  const at = (target: string, type: string): number | undefined =>
    events.find((e) => e.event.type === type && "target" in e.event && e.event.target === target)?.at;
  for (const r of [...results].sort(
    (a, b) => (at(a.target, "target-start") ?? 0) - (at(b.target, "target-start") ?? 0),
  )) {
    const start = at(r.target, "target-start") ?? Number.NaN;
    const done = at(r.target, "target-done") ?? Number.NaN;
    const steps = r.steps.map((s) => {
      const from = s.startedAt === undefined ? Number.NaN : (Date.parse(s.startedAt) - t0) / 1000;
      return `${s.step} ${from.toFixed(1)}+${s.seconds.toFixed(1)}`;
    });
    const first = r.steps[0]?.startedAt;
    const ready = first === undefined ? Number.NaN : (Date.parse(first) - t0) / 1000;
    lines.push(
      `  ${r.engine ?? "?"} ${r.target.padEnd(10)} handed ${start.toFixed(1)} ready +${(ready - start).toFixed(1)} | ${steps.join(", ")} | done ${done.toFixed(1)} (${(done - start).toFixed(1)} s, ${(done - start - sleep).toFixed(1)} s beyond the sleep)`,
    );
  }
  return lines;
}

const targets = ALL_TARGETS.slice(0, n);
// Warm-up: the builder image is built (or found) on the main engine and copied to the second, outside the measure.
await timeRun(targets.slice(0, 2), 2, 1);
const ratios: number[] = [];
for (let round = 1; round <= rounds; round++) {
  // The lone target before and after the N targets, so that a change of the machine's load during the round
  // weighs on both sides of the ratio alike.
  const before = await timeRun(targets.slice(0, 1), 1, 1);
  const wall = await timeRun(targets, 2, c);
  const after = await timeRun(targets.slice(0, 1), 1, 1);
  const single = (before.seconds + after.seconds) / 2;
  const ideal = Math.ceil(n / (2 * c)) * single;
  ratios.push(wall.seconds / ideal);
  const rows = [
    ["measure", "seconds"],
    ["one target alone (one engine), before / after", `${before.seconds.toFixed(1)} / ${after.seconds.toFixed(1)}`],
    [`${n} targets over 2 engines × ${c} slots`, wall.seconds.toFixed(1)],
    [`ideal ceil(${n}/${2 * c}) × one target (mean)`, ideal.toFixed(1)],
    ["wall / ideal", (wall.seconds / ideal).toFixed(3)],
    ["factory's own CPU (node), one target", before.nodeCpu.toFixed(2)],
    [`factory's own CPU (node), ${n} targets`, wall.nodeCpu.toFixed(2)],
  ];
  const width = Math.max(...rows.map((r) => r[0]!.length));
  console.log(
    `== round ${round} of ${rounds}, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  for (const r of rows) console.log(`${r[0]!.padEnd(width)}  ${r[1]}`);
  console.log(
    `targets per engine: ${Object.entries(wall.perEngine)
      .map(([e, k]) => `${e} ${k}`)
      .join(", ")}`,
  );
  console.log("one target alone (before), timeline (seconds from the run's start):");
  for (const line of before.timeline) console.log(line);
  console.log(`${n} targets, timeline:`);
  for (const line of wall.timeline) console.log(line);
}
console.log(
  `wall / ideal: ${ratios.map((r) => r.toFixed(3)).join(", ")}; overhead over ideal at worst ${((Math.max(...ratios) - 1) * 100).toFixed(1)}% (goal: within 15%)`,
);
