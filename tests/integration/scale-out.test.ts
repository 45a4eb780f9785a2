/**
 * Scale-out on one machine: two real engines (the main dockerd and the second one of scripts/ensure-second-engine.sh,
 * each with its own cache root) and one shared OCI buildcache in a real registry (scripts/ensure-registry.sh).
 * Three targets over the two engines: both build, the report names each target's engine, the other assignment
 * builds nothing (every package from the registry), killing one engine mid-run fails only its targets, and a target
 * of an architecture no engine has is refused before anything runs.
 */
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunReport } from "../../src/run/report.js";
import { connectEngine } from "../../src/docker/index.js";
import { buildcacheEntries } from "./helpers/buildcache.js";
import { runCli } from "./helpers/cli.js";
import { requireEngine, requireTestImage } from "./helpers/engine.js";
import { requireRegistry, type TestRegistry } from "./helpers/registry.js";
import { CLI, tempDir, writeTestStack } from "./helpers/stack.js";

const SECOND = process.env["STACK_FACTORY_SECOND_ENGINE"] ?? "unix:///var/run/stack-factory-docker2.sock";
const SECOND_PIDFILE = process.env["STACK_FACTORY_SECOND_ENGINE_PIDFILE"] ?? "/var/run/stack-factory-docker2.pid";
const TARGETS = ["x86_64", "x86_64_v2", "x86_64_v3"];

let work: string;
let registry: TestRegistry;
let buildcache: string;
let stackFile: string;

/** A factory settings file with the two engines in this order (the first takes the first targets). */
async function factoryFile(name: string, order: ("main" | "second")[]): Promise<string> {
  const engines = {
    main: [
      "  - url: unix:///var/run/docker.sock",
      "    name: main",
      `    cache: ${join(work, "cache-main")}`,
      "    concurrency: 2",
      "    network: host",
    ],
    second: [
      `  - url: ${SECOND}`,
      "    name: second",
      `    cache: ${join(work, "cache-second")}`,
      "    concurrency: 1",
      "    network: host",
    ],
  };
  const file = join(work, `${name}.yaml`);
  await writeFile(
    file,
    [
      "engines:",
      ...order.flatMap((e) => engines[e]),
      `buildcache: ${buildcache}`,
      `credentials: ${registry.credentialsFile}`,
      `buildcache_ca: ${registry.caFile}`,
      "",
    ].join("\n"),
  );
  return file;
}

async function warm(file: string, factory: string, report: string, extra: string[] = []) {
  const reportPath = join(work, `${report}.json`);
  const run = await runCli([
    "warm",
    file,
    "--factory",
    factory,
    "--cache-dir",
    join(work, "cache"),
    "--jobs",
    "1",
    "--report",
    reportPath,
    ...extra,
  ]);
  const parsed = JSON.parse(await readFile(reportPath, "utf8")) as RunReport;
  return { exitCode: run.exitCode ?? -1, report: parsed, all: run.all ?? "" };
}

const assignment = (report: RunReport) => Object.fromEntries(report.targets.map((t) => [t.target, t.engine]));

beforeAll(async () => {
  await requireTestImage(await requireEngine());
  const second = await connectEngine({ endpoint: { url: SECOND } }).catch((error: unknown) => {
    throw new Error(
      `this test needs the second engine at ${SECOND}: ${(error as Error).message}; start it with scripts/ensure-second-engine.sh`,
    );
  });
  await requireTestImage(second);
  registry = await requireRegistry();
  await execa("npm", ["run", "build"], { stdio: "ignore" });
  work = await tempDir("scale-out");
  buildcache = registry.ociUrl(registry.freshRepository("scale-out"));
  stackFile = await writeTestStack(work, { name: "wide", specs: ["hello"], targets: TARGETS });
});

afterAll(async () => {
  // The engine killed on purpose comes back for whatever runs next.
  await execa("bash", ["scripts/ensure-second-engine.sh"], { reject: false });
});

// Steps of one scenario, in this order even when the tests are shuffled (scripts/test.sh): each starts from
// what the ones before left in the caches, as a site's successive runs do.
describe("three targets over two engines, one OCI buildcache", { shuffle: false }, () => {
  it("both engines build; the report names each target's engine; nothing lands in a local buildcache; no secret in logs or report", async () => {
    const { exitCode, report, all } = await warm(
      stackFile,
      await factoryFile("main-first", ["main", "second"]),
      "first",
    );
    expect(exitCode, all).toBe(0);
    expect(assignment(report)).toEqual({ x86_64: "main", x86_64_v2: "main", x86_64_v3: "second" });
    for (const t of report.targets) {
      expect(t.status, t.error).toBe("ok");
      expect(t.built.length, t.target).toBeGreaterThan(0);
    }
    expect(report.concurrency).toBe(3);
    expect(all).toMatch(/engine main \(amd64, Docker [^)]+\): 2 container\(s\) at once/);
    expect(all).toMatch(/engine second \(amd64, Docker [^)]+\): 1 container\(s\) at once/);
    // The registry holds the buildcache: one tag per spec and the index.
    const repo = buildcache.replace(/^oci(?:\+http)?:\/\/[^/]+\//, "");
    const catalog = (await registry.get("/v2/_catalog?n=1000")) as { repositories: string[] };
    const mine = catalog.repositories.filter((r) => r.startsWith(`${repo}/`));
    expect(mine).toHaveLength(1);
    const { tags } = (await registry.get(`/v2/${mine[0]}/tags/list`)) as { tags: string[] };
    expect(tags).toContain("index.spack");
    expect(tags.filter((t) => t.startsWith("hello-"))).toHaveLength(3);
    for (const root of ["cache", "cache-main", "cache-second"]) {
      const entries = await readdir(join(work, root, "buildcache")).catch(() => []);
      expect(entries, root).toEqual([]);
    }
    // Each engine's own caches live under its own cache root.
    expect(await readdir(join(work, "cache-second"))).toEqual(expect.arrayContaining(["source", "spack-user"]));
    // The password reaches neither the report nor any log.
    const text = [
      JSON.stringify(report),
      ...(await Promise.all(report.targets.map((t) => readFile(t.logPath, "utf8")))),
      all,
    ].join("\n");
    expect(text).not.toContain(registry.password);
  });

  it("the other assignment builds nothing: every package comes from the registry", async () => {
    const { exitCode, report, all } = await warm(
      stackFile,
      await factoryFile("second-first", ["second", "main"]),
      "second",
    );
    expect(exitCode, all).toBe(0);
    expect(assignment(report)).toEqual({ x86_64: "second", x86_64_v2: "main", x86_64_v3: "main" });
    for (const t of report.targets) {
      expect(t.built, t.target).toEqual([]);
      expect(t.fromCache.length, t.target).toBeGreaterThan(0);
    }
    expect(all).toMatch(/nothing to build/);
  });

  it("build over both engines with a buildcache on a shared path: the tarballs of both come home and verify", async () => {
    const shared = join(work, "shared-buildcache");
    const factory = join(work, "shared-path.yaml");
    await writeFile(
      factory,
      [
        "engines:",
        `  - { url: unix:///var/run/docker.sock, name: main, cache: ${join(work, "cache-main")}, concurrency: 1 }`,
        `  - { url: ${SECOND}, name: second, cache: ${join(work, "cache-second")}, concurrency: 1 }`,
        `buildcache: ${shared}`,
        "",
      ].join("\n"),
    );
    const file = await writeTestStack(work, { name: "duo", specs: ["zlib"], targets: ["x86_64_v2", "x86_64_v3"] });
    const out = join(work, "out");
    const reportPath = join(work, "duo.json");
    const run = await runCli([
      "build",
      file,
      "--factory",
      factory,
      "--cache-dir",
      join(work, "cache"),
      "--out",
      out,
      "--jobs",
      "1",
      "--report",
      reportPath,
    ]);
    expect(run.exitCode, run.all).toBe(0);
    const report = JSON.parse(await readFile(reportPath, "utf8")) as RunReport;
    expect(assignment(report)).toEqual({ x86_64_v2: "main", x86_64_v3: "second" });
    expect(run.stdout).toMatch(/^target\s+engine\s+status/m);
    for (const t of report.targets) {
      expect(t.tarball).toBe(join(out, `duo-1.0-${t.target}.tar.gz`));
      const verify = await runCli(["verify", t.tarball!]);
      expect(verify.exitCode, verify.all).toBe(0);
    }
    // One buildcache directory for the key, under the shared path, written by both engines.
    const keys = await readdir(shared);
    expect(keys).toHaveLength(1);
    const specs = buildcacheEntries(join(shared, keys[0]!)).filter((e) => e.name === "zlib");
    expect(specs).toHaveLength(2);
  });

  it("a target of an architecture no engine has is refused before anything runs", async () => {
    const file = await writeTestStack(work, { name: "grace", specs: ["hello"], targets: ["x86_64_v3", "neoverse_v2"] });
    const started = Date.now();
    const { exitCode, report, all } = await warm(file, await factoryFile("refuse", ["main", "second"]), "refused");
    expect(exitCode, all).toBe(2);
    expect(all).toContain(
      "target neoverse_v2 refused: it is an aarch64 target and no engine builds aarch64 (it needs an arm64 engine); engines: main (amd64), second (amd64)",
    );
    expect(report.targets).toEqual([]);
    expect(all).not.toMatch(/\] started|builder image/);
    const { stdout } = await execa("docker", ["ps", "-aq", "--filter", `label=stack-factory.run=${report.runId}`]);
    expect(stdout.trim()).toBe("");
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  it("Ctrl-C cleans up on every engine: exit 130, no container of the run on either", async () => {
    const file = await writeTestStack(work, { name: "interrupted", specs: ["json-c"], targets: TARGETS });
    const factory = await factoryFile("interrupt", ["main", "second"]);
    const child = execa(
      "node",
      [
        CLI,
        "warm",
        file,
        "--factory",
        factory,
        "--cache-dir",
        join(work, "cache"),
        "--jobs",
        "1",
        "--env",
        "SPACK_STANDIN_SLEEP=120",
      ],
      { reject: false, all: true, env: { CI: "true" } },
    );
    let output = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the three installs did not start:\n${output}`)), 400_000);
      child.all!.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if ((output.match(/\] install\n/g) ?? []).length === 3) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await new Promise((r) => setTimeout(r, 1000));
    child.kill("SIGINT");
    const finished = await child;
    expect(finished.exitCode, finished.all).toBe(130);
    const runId = /run (\S+):/.exec(finished.all ?? "")?.[1];
    expect(runId).toBeDefined();
    for (const host of [[], ["-H", SECOND]]) {
      const { stdout } = await execa("docker", [...host, "ps", "-aq", "--filter", `label=stack-factory.run=${runId}`]);
      expect(stdout.trim(), host.join(" ") || "main").toBe("");
    }
  });

  it("killing one engine mid-run fails only its targets, leaves no container on the other, exits 1", async () => {
    const file = await writeTestStack(work, { name: "killed", specs: ["json-c"], targets: TARGETS });
    const reportPath = join(work, "killed-report.json");
    const factory = await factoryFile("kill", ["main", "second"]);
    const child = execa(
      "node",
      [
        CLI,
        "warm",
        file,
        "--factory",
        factory,
        "--cache-dir",
        join(work, "cache"),
        "--jobs",
        "1",
        "--report",
        reportPath,
        "--env",
        "SPACK_STANDIN_SLEEP=25",
      ],
      { reject: false, all: true, env: { CI: "true" } },
    );
    let output = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the three installs did not start:\n${output}`)), 400_000);
      child.all!.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if ((output.match(/\] install\n/g) ?? []).length === 3) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await new Promise((r) => setTimeout(r, 2000));
    const pid = (await readFile(SECOND_PIDFILE, "utf8")).trim();
    let finished: Awaited<typeof child>;
    try {
      await execa("kill", ["-KILL", pid]);
      finished = await child;
    } finally {
      // The test files after this one (in any order) need the second engine: start it again, as CI started it.
      await execa("bash", ["scripts/ensure-second-engine.sh"], { stdio: "ignore" });
    }
    expect(finished.exitCode, finished.all).toBe(1);
    const report = JSON.parse(await readFile(reportPath, "utf8")) as RunReport;
    const byTarget = Object.fromEntries(report.targets.map((t) => [t.target, t]));
    expect(byTarget["x86_64"]).toMatchObject({ engine: "main", status: "ok" });
    expect(byTarget["x86_64_v2"]).toMatchObject({ engine: "main", status: "ok" });
    expect(byTarget["x86_64_v3"]).toMatchObject({ engine: "second", status: "failed" });
    expect(byTarget["x86_64_v3"]!.error).toMatch(
      /^on engine second \(it stopped answering at unix:\/\/\/var\/run\/stack-factory-docker2\.sock/,
    );
    const { stdout } = await execa("docker", ["ps", "-aq", "--filter", `label=stack-factory.run=${report.runId}`]);
    expect(stdout.trim()).toBe("");
  });
});
