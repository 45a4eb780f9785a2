/**
 * `clean` over several real engines: the main one (default socket) and the second one of
 * scripts/ensure-second-engine.sh. Containers are labelled as the factory labels them, for a run id of this test only.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectEngine, factoryLabels, labelFilters, type Engine } from "../../src/docker/index.js";
import { runCli } from "./helpers/cli.js";
import { requireEngine, requireTestImage, TEST_IMAGE } from "./helpers/engine.js";

const MAIN = "unix:///var/run/docker.sock";
const SECOND = process.env["STACK_FACTORY_SECOND_ENGINE"] ?? "unix:///var/run/stack-factory-docker2.sock";
const DEAD = "unix:///nonexistent/docker.sock";

let main: Engine;
let second: Engine;
const runIds: string[] = [];

/** A run id of this test alone, whose containers afterAll removes whatever happened. */
function fakeRun(): string {
  const id = `test-clean-engines-${randomBytes(4).toString("hex")}`;
  runIds.push(id);
  return id;
}

/** A stopped container labelled as the factory labels those of `runId` (a live pid: this process). */
async function createLabelled(engine: Engine, runId: string): Promise<string> {
  const c = await engine.docker.createContainer({
    Image: TEST_IMAGE,
    Cmd: ["true"],
    Labels: factoryLabels({ runId, pid: process.pid, host: hostname() }, { "stack-factory.target": "x86_64_v3" }),
  });
  return c.id;
}

async function containersOf(engine: Engine, runId: string): Promise<string[]> {
  const listed = await engine.docker.listContainers({ all: true, filters: { label: labelFilters({ run: runId }) } });
  return listed.map((c) => c.Id);
}

beforeAll(async () => {
  main = await requireEngine({ endpoint: { url: MAIN } });
  await requireTestImage(main);
  second = await connectEngine({ endpoint: { url: SECOND } }).catch((error: unknown) => {
    throw new Error(
      `integration tests need the second engine at ${SECOND}: ${(error as Error).message}; start it with scripts/ensure-second-engine.sh`,
    );
  });
  await requireTestImage(second);
  await execa("npm", ["run", "build"], { stdio: "ignore" });
});

afterAll(async () => {
  for (const engine of [main, second]) {
    if (engine === undefined) continue;
    for (const runId of runIds)
      for (const id of await containersOf(engine, runId).catch(() => []))
        await engine.docker
          .getContainer(id)
          .remove({ force: true })
          .catch(() => undefined);
  }
});

describe("clean over several engines", () => {
  it("--run with two --engine removes the run's containers on both and says how many per engine", async () => {
    const runId = fakeRun();
    const [a, b] = await Promise.all([createLabelled(main, runId), createLabelled(second, runId)]);
    expect(await containersOf(main, runId)).toEqual([a]);
    expect(await containersOf(second, runId)).toEqual([b]);

    const run = await runCli(["clean", "--run", runId, "--engine", MAIN, "--engine", SECOND]);
    expect(run.exitCode, run.all).toBe(0);
    expect(run.stdout).toBe(
      "engine local: removed 1 container(s)\nengine stack-factory-docker2: removed 1 container(s)",
    );
    expect(await containersOf(main, runId)).toEqual([]);
    expect(await containersOf(second, runId)).toEqual([]);
  });

  it("an engine that does not answer is named with its reason and makes exit 1; the live one is cleaned all the same", async () => {
    const runId = fakeRun();
    await createLabelled(second, runId);

    const run = await runCli(["clean", "--run", runId, "--engine", DEAD, "--engine", SECOND]);
    expect(run.exitCode, run.all).toBe(1);
    expect(run.stderr).toMatch(
      /^stack-factory: engine docker: no Docker engine answers at unix:\/\/\/nonexistent\/docker\.sock/m,
    );
    expect(run.stderr).toContain("hint: start the engine at unix:///nonexistent/docker.sock");
    expect(run.stdout).toBe("engine stack-factory-docker2: removed 1 container(s)");
    expect(await containersOf(second, runId)).toEqual([]);
  });

  it("without --engine cleans the local engine only, with the old wording", async () => {
    const runId = fakeRun();
    const [, onSecond] = await Promise.all([createLabelled(main, runId), createLabelled(second, runId)]);

    const run = await runCli(["clean", "--run", runId], { DOCKER_HOST: MAIN });
    expect(run.exitCode, run.all).toBe(0);
    expect(run.all).toBe("removed 1 container(s)");
    expect(await containersOf(main, runId)).toEqual([]);
    expect(await containersOf(second, runId)).toEqual([onSecond]);
  });
});
