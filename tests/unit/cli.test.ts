import { mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";

const CLI = resolve("dist-js/cli/main.js");
const cli = (...args: string[]) => execa("node", [CLI, ...args], { reject: false, all: true, env: { CI: "true" } });

beforeAll(async () => {
  await execa("npm", ["run", "build"], { stdio: "ignore" });
}, 120_000);

describe("stack-factory CLI", () => {
  it("has --help and --version on every command", async () => {
    for (const command of ["plan", "build", "warm", "cache", "targets", "doctor", "clean"]) {
      const help = await cli(command, "--help");
      expect(help.exitCode, command).toBe(0);
      expect(help.stdout).toContain(`stack-factory ${command}`);
    }
    const version = await cli("--version");
    const pkg = JSON.parse(await readFile("package.json", "utf8")) as { version: string };
    expect(version.stdout).toContain(pkg.version);
  });

  it("writes identical plans twice, with a spack.yaml per target that requires it and a Dockerfile", async () => {
    const dirs = [await mkdtemp(join(tmpdir(), "sf-plan-")), await mkdtemp(join(tmpdir(), "sf-plan-"))];
    for (const out of dirs) {
      const run = await cli("plan", "examples/slurm.yaml", "--target", "x86_64_v3,zen4", "--out", out);
      expect(run.exitCode, run.all).toBe(0);
    }
    const files = (await readdir(dirs[0]!, { recursive: true })).sort();
    expect(files).toEqual(expect.arrayContaining(["builder/Dockerfile", "x86_64_v3/spack.yaml", "zen4/spack.yaml"]));
    for (const f of files) {
      if (!f.includes(".")) continue;
      expect(await readFile(join(dirs[1]!, f), "utf8"), f).toBe(await readFile(join(dirs[0]!, f), "utf8"));
    }
    expect(await readFile(join(dirs[0]!, "zen4/spack.yaml"), "utf8")).toMatch(/require:\n\s+- target=zen4/);
    expect(await readFile(join(dirs[0]!, "builder/Dockerfile"), "utf8")).toMatch(/^FROM ubuntu:24\.04$/m);
  });

  it("prints the plan as JSON", async () => {
    const run = await cli("plan", "examples/hello.yaml", "--json");
    expect(run.exitCode, run.all).toBe(0);
    const plan = JSON.parse(run.stdout) as { targets: { target: string }[] };
    expect(plan.targets.length).toBeGreaterThan(0);
  });

  const badInputs: [string, RegExp][] = [
    ["tests/fixtures/stacks/bad-types.yaml", /bad-types\.yaml:\d+:\d+ name: /],
    ["tests/fixtures/stacks/bad-unknown-keys.yaml", /bad-unknown-keys\.yaml:5:1 colour: unknown key "colour"/],
    ["tests/fixtures/stacks/bad-targets.yaml", /bad-targets\.yaml:7:5 targets\[2\]: unknown microarchitecture "zen7" \(did you mean/],
    ["tests/fixtures/stacks/bad-syntax.yaml", /bad-syntax\.yaml:\d+:\d+/],
    ["tests/fixtures/stacks/does-not-exist.yaml", /cannot read stack file tests\/fixtures\/stacks\/does-not-exist\.yaml/],
  ];
  for (const [file, message] of badInputs) {
    it(`exits 2 with file:line:column for ${file.split("/").pop()}`, async () => {
      const run = await cli("plan", file, "--json");
      expect(run.exitCode).toBe(2);
      expect(run.stderr).toMatch(message);
      expect(run.stderr).not.toMatch(/\n\s+at .*\.js:\d+/);
      expect(run.stdout).toBe("");
    });
  }

  it("refuses unsafe names with the field named", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sf-bad-"));
    const file = join(dir, "unsafe.yaml");
    await writeFile(file, `name: "../evil"\nversion: "1 0"\nspecs: [zlib]\ntargets: [x86_64_v3]\n`);
    const run = await cli("plan", file, "--json");
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/unsafe\.yaml:1:7 name: /);
    expect(run.stderr).toMatch(/unsafe\.yaml:2:10 version: /);
  });

  it("exits 2 for an unknown command, an unknown flag and a missing --out", async () => {
    expect((await cli("bogus")).exitCode).toBe(2);
    expect((await cli("plan", "examples/hello.yaml", "--bogus")).exitCode).toBe(2);
    const noOut = await cli("plan", "examples/hello.yaml");
    expect(noOut.exitCode).toBe(2);
    expect(noOut.stderr).toMatch(/--out/);
  });

  it("lists targets, as text and JSON, and detects the host", async () => {
    const text = await cli("targets");
    expect(text.stdout).toMatch(/^zen4\s+x86_64/m);
    const json = JSON.parse((await cli("targets", "--json")).stdout) as { name: string }[];
    expect(json.map((m) => m.name)).toEqual(expect.arrayContaining(["x86_64_v3", "zen4", "icelake", "neoverse_v2", "a64fx"]));
    const host = (await cli("targets", "--host")).stdout.trim();
    expect(json.map((m) => m.name)).toContain(host);
  });
});
