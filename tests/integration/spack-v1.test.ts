/**
 * What a real Spack 1.x build needs, end to end with the stand-in (which fails where Spack 1.1 fails): a build as an
 * ordinary member of the docker group, targets the host cannot run, honest counts on a warm rebuild, and a clear
 * error when Spack's builtin packages can be neither found nor cloned.
 */
import { chmod, chown, mkdir, readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { canRun, compilerCanTarget, detectHostFromSystem, MICROARCHS } from "../../src/targets/index.js";
import { runCli } from "./helpers/cli.js";
import { requireEngine, requireTestImage } from "./helpers/engine.js";
import { CLI, STANDIN, tempDir, writeTestStack } from "./helpers/stack.js";
import { ensureUser, type TestUser } from "./helpers/users.js";

/** An ordinary user in the docker group (and no other), made or adjusted for this test when it runs as root. */
const BUILDER: TestUser = { name: "sf-docker-user", uid: 4242, groups: ["docker"] };

let work: string;

beforeAll(async () => {
  const engine = await requireEngine();
  await requireTestImage(engine);
  await execa("npm", ["run", "build"], { stdio: "ignore" });
  work = await tempDir("spack-v1");
  await chmod(work, 0o755);
});

async function ensureDockerGroupUser(): Promise<{ uid: number; gid: number }> {
  const made = await ensureUser(BUILDER);
  // The engine's socket belongs to the docker group, as on a packaged install.
  await execa("chgrp", ["docker", "/var/run/docker.sock"]);
  await execa("chmod", ["660", "/var/run/docker.sock"]);
  return made;
}

describe("a build as an ordinary member of the docker group", () => {
  it("succeeds: the uid gets a passwd entry in the container, caches and tarball belong to it", async () => {
    const isRoot = process.getuid?.() === 0;
    const dir = join(work, "nonroot");
    await mkdir(dir, { recursive: true });
    const stackFile = await writeTestStack(dir, { name: "nonroot", specs: ["zlib"] });
    const cacheRoot = join(dir, "cache");
    const out = join(dir, "out");
    const argv = [CLI, "build", stackFile, "--cache-dir", cacheRoot, "--out", out, "--jobs", "2"];
    let run;
    let uid = process.getuid?.();
    if (isRoot) {
      const builder = await ensureDockerGroupUser();
      uid = builder.uid;
      await chown(dir, builder.uid, builder.gid);
      run = await execa("runuser", ["-u", BUILDER.name, "--", process.execPath, ...argv], {
        reject: false,
        all: true,
        env: { CI: "1" },
      });
    } else {
      run = await execa(process.execPath, argv, { reject: false, all: true, env: { CI: "1" } });
    }
    expect(run.exitCode, run.all).toBe(0);
    const tarballs = (await readdir(out)).filter((f) => f.endsWith(".tar.gz"));
    expect(tarballs).toEqual(["nonroot-1.0-x86_64_v3.tar.gz"]);
    const { stdout } = await execa("stat", ["-c", "%u", join(out, tarballs[0]!), join(cacheRoot, "buildcache")]);
    expect(new Set(stdout.split("\n"))).toEqual(new Set([String(uid)]));
  });
});

describe("targets the build host cannot run", () => {
  it("builds x86_64_v3 and a foreign target on one host, saying once that the host cannot run it", async () => {
    const host = await detectHostFromSystem();
    // icelake on an AMD host, as a site building for its Intel partition would; else any target this host lacks.
    const candidates = [
      ...["icelake", "sapphirerapids", "zen4"].map((n) => MICROARCHS.find((m) => m.name === n)!),
      ...MICROARCHS,
    ];
    const foreign = candidates.find(
      (m) =>
        m.family === "x86_64" &&
        !canRun(host, m.name) &&
        compilerCanTarget(m.name, { name: "gcc", version: "12.2.0" }).ok,
    );
    expect(foreign, `a target ${host} cannot run`).toBeDefined();
    const dir = join(work, "foreign");
    await mkdir(dir, { recursive: true });
    const stackFile = await writeTestStack(dir, {
      name: "foreign",
      specs: ["zlib"],
      targets: ["x86_64_v3", foreign!.name],
    });
    const report = join(dir, "report.json");
    const run = await runCli([
      "warm",
      stackFile,
      "--cache-dir",
      join(dir, "cache"),
      "--report",
      report,
      "--concurrency",
      "2",
      "--jobs",
      "1",
    ]);
    expect(run.exitCode, run.all).toBe(0);
    const said = run.all.split("\n").filter((l) => l.includes(`this host (${host}) cannot run ${foreign!.name} code`));
    expect(said.length, run.all).toBe(1);
    const parsed = JSON.parse(await readFile(report, "utf8")) as {
      targets: { target: string; status: string; built: string[] }[];
    };
    expect(parsed.targets.map((t) => [t.target, t.status])).toEqual([
      ["x86_64_v3", "ok"],
      [foreign!.name, "ok"],
    ]);
    // Spack's default (host_compatible: true) would have refused the foreign target at concretization.
    expect(parsed.targets.every((t) => t.built.some((p) => p.startsWith("zlib-")))).toBe(true);
  });
});

describe("honest counts", () => {
  it("a rebuild that installs from the buildcache builds nothing and says so, though Spack prints Successfully installed", async () => {
    const dir = join(work, "counts");
    await mkdir(dir, { recursive: true });
    const stackFile = await writeTestStack(dir, { name: "counts", specs: ["zlib"] });
    const cacheRoot = join(dir, "cache");
    const first = await runCli(["build", stackFile, "--cache-dir", cacheRoot, "--out", join(dir, "out")]);
    expect(first.exitCode, first.all).toBe(0);
    const report = join(dir, "again.json");
    // Another compression: the concretization and the buildcache serve, the tarball is not the kept one, so Spack
    // installs everything from the buildcache (an unchanged rebuild would start nothing: up-to-date.test.ts).
    const again = await runCli([
      "build",
      stackFile,
      "--cache-dir",
      cacheRoot,
      "--out",
      join(dir, "out"),
      "--compress",
      "zstd",
      "--report",
      report,
    ]);
    expect(again.exitCode, again.all).toBe(0);
    const parsed = JSON.parse(await readFile(report, "utf8")) as {
      targets: {
        built: string[];
        fromCache: string[];
        logPath: string;
        concretization?: string;
        steps: { step: string; reused?: boolean }[];
      }[];
    };
    const t = parsed.targets[0]!;
    expect(t.built).toEqual([]);
    // Nothing that feeds concretization changed since the build: its spack.lock was reused.
    expect(t.concretization).toBe("reused lock");
    expect(t.steps.find((s) => s.step === "concretize")).toMatchObject({ reused: true });
    expect(t.fromCache.some((p) => p.startsWith("zlib-"))).toBe(true);
    // The log really has both of Spack's lines for the package taken from the cache.
    const log = await readFile(t.logPath, "utf8");
    expect(log).toMatch(/Extracting zlib-\S+ from binary cache/);
    expect(log).toMatch(/zlib: Successfully installed zlib-/);
  });
});

describe("reusing a concretization", () => {
  it("concretizes afresh when an input changed, and says why", async () => {
    const dir = join(work, "relock");
    await mkdir(dir, { recursive: true });
    const cacheRoot = join(dir, "cache");
    const first = await writeTestStack(dir, { name: "relock", specs: ["zlib"] });
    const r1 = join(dir, "r1.json");
    expect((await runCli(["warm", first, "--cache-dir", cacheRoot, "--report", r1])).exitCode).toBe(0);
    const one = JSON.parse(await readFile(r1, "utf8")) as { targets: { concretization?: string }[] };
    expect(one.targets[0]!.concretization).toBe("concretized: no earlier concretization with these inputs");
    // Another spec: another environment, another key.
    const second = await writeTestStack(dir, { name: "relock", specs: ["zlib", "json-c"] });
    const r2 = join(dir, "r2.json");
    const run = await runCli(["warm", second, "--cache-dir", cacheRoot, "--report", r2]);
    expect(run.exitCode, run.all).toBe(0);
    const two = JSON.parse(await readFile(r2, "utf8")) as { targets: { concretization?: string; built: string[] }[] };
    expect(two.targets[0]!.concretization).toBe("concretized: no earlier concretization with these inputs");
    expect(two.targets[0]!.built.some((p) => p.startsWith("json-c-"))).toBe(true);
  });
});

describe("Spack's builtin packages", () => {
  it("without spack.builtin, a v1 checkout's pinned spack-packages is cloned on the host; offline that fails clearly", async () => {
    const dir = join(work, "nobuiltin");
    await mkdir(dir, { recursive: true });
    const stackFile = await writeTestStack(dir, {
      name: "nobuiltin",
      specs: ["zlib"],
      spack: `spack: { source: ${JSON.stringify(STANDIN)} }`,
    });
    const child = runCli(["build", stackFile, "--cache-dir", join(dir, "cache"), "--out", join(dir, "out")]);
    const run = await child;
    expect(run.exitCode).not.toBe(0);
    expect(run.all).toMatch(/spack-packages/);
    expect(run.all).toMatch(/set spack\.builtin\.source/);
    // No container of this run (the engine is shared: other runs' containers may be there meanwhile).
    const { stdout } = await execa("docker", ["ps", "-aq", "--filter", `label=stack-factory.pid=${child.pid}`]);
    expect(stdout.trim()).toBe("");
  });
});
