import { hostname } from "node:os";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";
import { requireEngine, requireTestImage, TEST_IMAGE } from "./helpers/engine.js";
import { tempDir } from "./helpers/stack.js";

beforeAll(async () => {
  await requireTestImage(await requireEngine());
  await execa("npm", ["run", "build"], { stdio: "ignore" });
});

describe("doctor and clean against a real engine", () => {
  it("doctor reports the engine, disk and writable cache directories", async () => {
    const cache = await tempDir("doctor");
    const run = await runCli(["doctor", "--cache-dir", cache]);
    expect(run.all).toMatch(/^ok\s+Docker engine \S+ \(API/m);
    expect(run.all).toMatch(/^ok\s+\S+\/buildcache is writable/m);
    expect(run.all).toMatch(/free disk under/);
  });

  it("doctor says how to start an engine when none answers", async () => {
    const run = await runCli(["doctor"], { DOCKER_HOST: "unix:///nonexistent/docker.sock" });
    expect(run.exitCode).toBe(1);
    expect(run.all).toMatch(/FAIL Docker engine: no Docker engine answers/);
    expect(run.all).toMatch(/ensure-docker\.sh/);
  });

  it("clean removes containers of dead runs and keeps those of live ones", async () => {
    const create = async (pid: number) =>
      (
        await execa("docker", [
          "create",
          "--label",
          "stack-factory=1",
          "--label",
          `stack-factory.run=test-clean-${pid}`,
          "--label",
          `stack-factory.pid=${pid}`,
          "--label",
          `stack-factory.host=${hostname()}`,
          TEST_IMAGE,
          "true",
        ])
      ).stdout.trim();
    const dead = await create(2 ** 22 + 17);
    const live = await create(process.pid);
    try {
      const run = await runCli(["clean"]);
      expect(run.exitCode, run.all).toBe(0);
      const { stdout } = await execa("docker", ["ps", "-aq", "--no-trunc", "--filter", "label=stack-factory=1"]);
      expect(stdout).not.toContain(dead);
      expect(stdout).toContain(live);
    } finally {
      await execa("docker", ["rm", "-f", dead, live], { reject: false });
    }
  });
});
