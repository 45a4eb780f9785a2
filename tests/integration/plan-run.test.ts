/**
 * The plan is what runs: `plan --out DIR` then `build --plan DIR` makes the tarball `build` makes, byte for byte,
 * with the steps the plan shows; a plan edited by hand, made for other engines or by another factory is refused
 * before any container starts.
 */
import { cp, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";
import { containersCreated } from "./helpers/events.js";
import { requireEngine, requireTestImage } from "./helpers/engine.js";
import { tempDir, writeTestStack } from "./helpers/stack.js";

interface Report {
  runId: string;
  targets: { target: string; status: string; tarball?: string; reason?: string; steps: { step: string }[] }[];
}

let work: string;
let stackFile: string;

beforeAll(async () => {
  const engine = await requireEngine();
  await requireTestImage(engine);
  await execa("npm", ["run", "build"], { stdio: "ignore" });
  work = await tempDir("plan-run");
  stackFile = await writeTestStack(work, { name: "planned", specs: ["zlib"], targets: ["x86_64_v3"] });
});

async function tarballsIn(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith(".tar.gz")).sort();
}

describe("plan --out, then build --plan", () => {
  it("gives the tarball build gives, byte for byte, running the steps the plan shows", async () => {
    // Each run from an empty cache of its own: both really build (nothing is handed out from an earlier run).
    const direct = await runCli([
      "build",
      stackFile,
      "--cache-dir",
      join(work, "cache-direct"),
      "--out",
      join(work, "out-direct"),
      "--jobs",
      "2",
    ]);
    expect(direct.exitCode, direct.all).toBe(0);

    const planDir = join(work, "plan");
    const cache = join(work, "cache-planned");
    const planned = await runCli(["plan", stackFile, "--cache-dir", cache, "--jobs", "2", "--out", planDir]);
    expect(planned.exitCode, planned.all).toBe(0);
    const plan = JSON.parse(await readFile(join(planDir, "plan.json"), "utf8"));
    const placed = plan.placement.targets.x86_64_v3.local;
    expect(placed.mounts.every((m: { host: string }) => m.host.startsWith(cache) || m.host.startsWith("/"))).toBe(true);

    const since = Math.floor(Date.now() / 1000) - 1;
    const reportPath = join(work, "report-planned.json");
    const fromPlan = await runCli([
      "build",
      "--plan",
      planDir,
      "--out",
      join(work, "out-planned"),
      "--report",
      reportPath,
    ]);
    expect(fromPlan.exitCode, fromPlan.all).toBe(0);
    const report = JSON.parse(await readFile(reportPath, "utf8")) as Report;
    expect(await containersCreated(report.runId, since)).not.toEqual([]);
    // The steps that ran are the plan's, in its order (the concretization's own steps as it says).
    const ran = report.targets[0]!.steps.map((s) => s.step).filter((s) => s !== "package");
    expect(ran).toEqual(placed.steps.map((s: { id: string }) => s.id).filter((s: string) => ran.includes(s)));
    expect(ran.length).toBeGreaterThan(3);

    const names = await tarballsIn(join(work, "out-direct"));
    expect(names).toHaveLength(1);
    expect(await tarballsIn(join(work, "out-planned"))).toEqual(names);
    const a = await readFile(join(work, "out-direct", names[0]!));
    const b = await readFile(join(work, "out-planned", names[0]!));
    expect(b.equals(a)).toBe(true);
  });

  it("refuses, before any container, a plan whose image is not its recipe's, a changed view, and another factory's", async () => {
    const planDir = join(work, "plan-edit");
    expect(
      (await runCli(["plan", stackFile, "--cache-dir", join(work, "cache-edit"), "--out", planDir])).exitCode,
    ).toBe(0);
    const original = await readFile(join(planDir, "plan.json"), "utf8");
    const refusedWith = async (dir: string, pattern: RegExp) => {
      const before = (await execa("docker", ["ps", "-aq", "--filter", "label=stack-factory.run"])).stdout;
      const run = await runCli(["build", "--plan", dir, "--out", join(work, "out-edit")]);
      expect(run.exitCode, run.all).toBe(2);
      expect(run.all).toMatch(pattern);
      expect((await execa("docker", ["ps", "-aq", "--filter", "label=stack-factory.run"])).stdout).toBe(before);
      expect(await readdir(join(work, "out-edit")).catch(() => [])).toEqual([]);
    };

    // Another image: the tag is the digest of the recipe, so a tag edited alone names an image of another recipe.
    const other = JSON.parse(original);
    other.builder.tag = "stack-factory-test/debian:bookworm";
    await writeFile(join(planDir, "plan.json"), JSON.stringify(other));
    await refusedWith(
      planDir,
      /builder\.tag is stack-factory-test\/debian:bookworm, its recipe .* makes stack-factory\/builder:/,
    );

    // A view edited instead of plan.json would not run: refused, naming the file.
    await writeFile(join(planDir, "plan.json"), original);
    const steps = join(planDir, "x86_64_v3", "on", "local", "steps.json");
    const text = await readFile(steps, "utf8");
    const viewSteps = JSON.parse(text);
    viewSteps[0].argv = ["/bin/true"];
    await writeFile(steps, `${JSON.stringify(viewSteps, null, 2)}\n`);
    await refusedWith(planDir, /steps\.json: differs from plan\.json/);
    await writeFile(steps, text);

    // A placed step edited in plan.json: not what the plan's own targets place.
    const edited = JSON.parse(original);
    edited.placement.targets.x86_64_v3.local.steps[0].argv = ["/bin/sh", "-c", "echo edited"];
    const editedDir = join(work, "plan-edited");
    await cp(planDir, editedDir, { recursive: true });
    await writeFile(join(editedDir, "plan.json"), `${JSON.stringify(edited, null, 2)}\n`);
    await refusedWith(
      editedDir,
      /placement\.targets is not what the plan's targets placed on its engines give|differs from plan\.json/,
    );

    // Another factory (another digest of its code and templates).
    const foreign = JSON.parse(original);
    foreign.placement.factory.digest = "0000000000000000";
    await writeFile(join(planDir, "plan.json"), JSON.stringify(foreign));
    await refusedWith(planDir, /placed by stack-factory .* \(code 0000000000000000\), this is/);
    await writeFile(join(planDir, "plan.json"), original);
  });

  it("refuses a plan placed on an engine this run does not have, naming it", async () => {
    const planDir = join(work, "plan-engines");
    const planned = await runCli([
      "plan",
      stackFile,
      "--cache-dir",
      join(work, "cache-engines"),
      "--engine",
      "unix:///var/run/docker.sock",
      "--out",
      planDir,
    ]);
    expect(planned.exitCode, planned.all).toBe(0);
    // Run without the engine settings: the one default engine is not the plan's engine (amd64, by its URL).
    const run = await runCli(["build", "--plan", planDir, "--out", join(work, "out-engines")]);
    expect(run.exitCode, run.all).toBe(2);
    // The plan's engine was named by its address; this run's default engine is the same socket named otherwise.
    expect(run.all).toMatch(
      /the plan was placed on other engines: engine local is at \/var\/run\/docker\.sock here, the plan was placed on unix:\/\/\/var\/run\/docker\.sock; engine local is \* here, amd64 in the plan/,
    );
    // With the same engine given again, the plan runs there.
    const same = await runCli([
      "build",
      "--plan",
      planDir,
      "--engine",
      "unix:///var/run/docker.sock",
      "--out",
      join(work, "out-engines"),
    ]);
    expect(same.exitCode, same.all).toBe(0);
    expect(await tarballsIn(join(work, "out-engines"))).toEqual(["planned-1.0-x86_64_v3.tar.gz"]);
    // Flags that planning decides are refused with --plan.
    const withTarget = await runCli(["build", "--plan", planDir, "--target", "x86_64_v3"]);
    expect(withTarget.exitCode).toBe(2);
    expect(withTarget.all).toMatch(/--target is decided when planning/);
  });
});
