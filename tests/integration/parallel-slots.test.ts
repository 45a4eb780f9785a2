/**
 * A slot's next target need not wait for the removal of the container before it: runTarget hands the removal over
 * (the run waits for it before it ends), and without a taker it removes the container itself before returning.
 */
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { loadStack } from "../../src/config/index.js";
import { connectEngine, type Engine } from "../../src/docker/index.js";
import { planBuild } from "../../src/plan/plan.js";
import type { TargetPlan } from "../../src/plan/types.js";
import { loadTemplates } from "../../src/render/templates.js";
import { runPlan } from "../../src/run/run-plan.js";
import { runTarget } from "../../src/run/run-target.js";
import { requireEngine, requireTestImage } from "./helpers/engine.js";
import { tempDir, writeTestStack } from "./helpers/stack.js";

let engine: Engine;
let cacheRoot: string;
let target: TargetPlan;
let image: string;
const quiet = { emit() {}, close() {} };

beforeAll(async () => {
  await requireTestImage(await requireEngine());
  const work = await tempDir("slots");
  cacheRoot = join(work, "cache");
  const stack = await loadStack(await writeTestStack(work, { specs: ["zlib"], targets: ["x86_64_v2"] }));
  const plan = planBuild(stack, undefined, { templates: await loadTemplates(), jobs: 1, mode: "warm" });
  // A whole run first: the builder image and the cache directories the target's mounts need.
  engine = await connectEngine();
  const first = await runPlan(plan, {
    engine,
    reporter: quiet,
    signal: new AbortController().signal,
    cacheRoot,
    concurrency: 1,
  });
  expect(first.targets.map((t) => t.status)).toEqual(["ok"]);
  target = plan.targets[0] as TargetPlan;
  image = plan.builder.tag;
});

async function containersOfRun(runId: string): Promise<string[]> {
  const { stdout } = await execa("docker", ["ps", "-aq", "--filter", `label=stack-factory.run=${runId}`]);
  return stdout.split("\n").filter((l) => l !== "");
}

function options(name: string) {
  return {
    engine,
    image,
    cacheRoot,
    logPath: join(cacheRoot, `${name}.log`),
    workDir: join(cacheRoot, `record-${name}`),
    reporter: quiet,
    signal: new AbortController().signal,
  };
}

describe("a target's container after its steps", { timeout: 120_000 }, () => {
  it("is handed over for removal: the target ends first, the removal then leaves no container", async () => {
    const removals: Promise<void>[] = [];
    const outcome = await runTarget(target, { ...options("later"), removeLater: (r) => removals.push(r) });
    expect(outcome.steps.map((s) => s.exitCode)).toEqual(outcome.steps.map(() => 0));
    expect(removals).toHaveLength(1);
    await removals[0];
    expect(await containersOfRun(engine.runId)).toEqual([]);
  });

  it("is removed before the target ends when no one takes the removal", async () => {
    const outcome = await runTarget(target, options("now"));
    expect(outcome.steps.length).toBeGreaterThan(0);
    expect(await containersOfRun(engine.runId)).toEqual([]);
  });
});
