import { mkdtemp, readFile, readdir, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import type { Readable } from "node:stream";
import { pack as tarPack } from "tar-stream";
import { beforeAll, describe, expect, it } from "vitest";
import { buildManifest } from "../../src/package/manifest.js";
import { packTarball } from "../../src/package/pack.js";

const CLI = resolve("dist-js/cli/main.js");
// A time limit: a command that hangs (on a FIFO, say) fails its test instead of stalling the suite.
const cli = (...args: string[]) =>
  execa("node", [CLI, ...args], { reject: false, all: true, env: { CI: "true" }, timeout: 15_000 });

beforeAll(async () => {
  await execa("npm", ["run", "build"], { stdio: "ignore" });
}, 120_000);

describe("stack-factory CLI", () => {
  it("has --help and --version on every command", async () => {
    for (const command of ["plan", "build", "warm", "cache", "targets", "doctor", "clean", "init", "schema"]) {
      const help = await cli(command, "--help");
      expect(help.exitCode, command).toBe(0);
      expect(help.stdout).toContain(`stack-factory ${command}`);
    }
    const version = await cli("--version");
    const pkg = JSON.parse(await readFile("package.json", "utf8")) as { version: string };
    expect(version.stdout).toContain(pkg.version);
  });

  it("init refuses to overwrite with exit code 2; schema prints the shipped stack schema", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sf-init-"));
    expect((await cli("init", dir)).exitCode).toBe(0);
    const again = await cli("init", dir);
    expect(again.exitCode).toBe(2);
    expect(again.all).toContain("exists already");
    const schema = await cli("schema");
    expect(schema.exitCode).toBe(0);
    expect(`${schema.stdout}\n`).toBe(await readFile("schema/stack.schema.json", "utf8"));
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
    [
      "tests/fixtures/stacks/bad-targets.yaml",
      /bad-targets\.yaml:7:5 targets\[2\]: unknown microarchitecture "zen7" \(did you mean/,
    ],
    ["tests/fixtures/stacks/bad-syntax.yaml", /bad-syntax\.yaml:\d+:\d+/],
    [
      "tests/fixtures/stacks/does-not-exist.yaml",
      /cannot read stack file tests\/fixtures\/stacks\/does-not-exist\.yaml/,
    ],
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
    expect(json.map((m) => m.name)).toEqual(
      expect.arrayContaining(["x86_64_v3", "zen4", "icelake", "neoverse_v2", "a64fx"]),
    );
    const host = (await cli("targets", "--host")).stdout.trim();
    expect(json.map((m) => m.name)).toContain(host);
  });

  describe("hostile paths and flags", () => {
    const noTrace = (text: string) => expect(text).not.toMatch(/\n\s+at .*\.js:\d+/);

    it.each([
      [
        ["plan", "examples/hello.yaml", "--out", "a", "--out", "b"],
        /--out is given 2 times \("a", "b"\); give it once/,
      ],
      [["plan", "examples/hello.yaml", "--json", "--json"], /--json is given 2 times/],
      [["build", "examples/hello.yaml", "--report", "a.json", "--report", "b.json"], /--report is given 2 times/],
      [["cache", "stats", "--cache-dir", "a", "--cache-dir", "b"], /--cache-dir is given 2 times/],
      [["verify", "x.tar.gz", "--image", "a", "--image", "b"], /--image is given 2 times/],
    ])("exits 2 for a flag given twice: %j", async (args, message) => {
      const run = await cli(...args);
      expect(run.exitCode, run.all).toBe(2);
      expect(run.stderr).toMatch(message);
      noTrace(run.stderr);
    });

    it("takes option values as typed: --out 0x10 is a directory named 0x10, and an empty value is exit 2", async () => {
      const dir = await mkdtemp(join(tmpdir(), "sf-raw-"));
      const run = await execa("node", [CLI, "plan", resolve("examples/hello.yaml"), "--out", "0x10"], {
        cwd: dir,
        reject: false,
        all: true,
        timeout: 15_000,
      });
      expect(run.exitCode, run.all).toBe(0);
      expect(await readdir(dir)).toEqual(["0x10"]);
      for (const args of [["--out", ""], ["--out="]]) {
        const empty = await cli("plan", "examples/hello.yaml", ...args);
        expect(empty.exitCode, empty.all).toBe(2);
        expect(empty.stderr).toContain("--out needs a value, got an empty string");
        noTrace(empty.stderr);
      }
      const noStack = await cli("plan", "", "--json");
      expect(noStack.exitCode).toBe(2);
      expect(noStack.stderr).toContain("stack file: the path is empty");
    });

    it("still takes --target more than once", async () => {
      const run = await cli("plan", "examples/slurm.yaml", "--target", "x86_64_v3", "--target", "zen4", "--json");
      expect(run.exitCode, run.all).toBe(0);
    });

    it("exits 2 when plan --out names an existing file", async () => {
      const dir = await mkdtemp(join(tmpdir(), "sf-out-"));
      const file = join(dir, "taken");
      await writeFile(file, "keep me\n");
      const run = await cli("plan", "examples/hello.yaml", "--out", file);
      expect(run.exitCode, run.all).toBe(2);
      expect(run.stderr).toContain(`--out: ${file} is a regular file, not a directory`);
      expect(await readFile(file, "utf8")).toBe("keep me\n");
      noTrace(run.stderr);
    });

    it("exits 2 at once for a FIFO as the stack file, for plan, build and warm", async () => {
      const dir = await mkdtemp(join(tmpdir(), "sf-fifo-"));
      const fifo = join(dir, "stack.yaml");
      await execa("mkfifo", [fifo]);
      for (const command of [
        ["plan", fifo, "--json"],
        ["build", fifo],
        ["warm", fifo],
        ["doctor", fifo],
        ["build", "examples/hello.yaml", "--factory", fifo],
        ["doctor", "--factory", fifo],
        ["verify", "x.tar.gz", "--keyring", fifo],
        ["keys", "init", dir, "--passphrase-file", fifo],
      ]) {
        const run = await cli(...command);
        expect(run.timedOut, command.join(" ")).toBe(false);
        expect(run.exitCode, run.all).toBe(2);
        expect(run.stderr).toContain(`${fifo} is a FIFO, not a regular file`);
      }
    });

    it("keys init exits 2 for a directory holding a dangling symlink, and writes nothing through it", async () => {
      const dir = await mkdtemp(join(tmpdir(), "sf-keys-link-"));
      await symlink(join(dir, "planted.asc"), join(dir, "public.asc"));
      const run = await cli("keys", "init", dir);
      expect(run.exitCode, run.all).toBe(2);
      expect(run.stderr).toContain(
        `${join(dir, "public.asc")} is a symlink; a key pair is never written over anything`,
      );
      expect((await readdir(dir)).sort()).toEqual(["public.asc"]);
    });

    it("verify --install-test exits 2 for an --image that is not an image reference, before Docker", async () => {
      const dir = await mkdtemp(join(tmpdir(), "sf-verify-image-"));
      const view = tarPack();
      view.entry({ name: "h/", type: "directory", mode: 0o755 });
      view.entry({ name: "h/a.txt", mode: 0o644 }, "a\n");
      view.finalize();
      const manifest = buildManifest({
        stack: { name: "demo", version: "1", file: "/s/demo.yaml", description: "" },
        target: "x86_64_v3",
        compiler: "os",
        baseImage: "debian:bookworm",
        specs: [],
        buildPrefix: "/sf/view/._default/h",
        relocateIndex: "",
      });
      const { path } = await packTarball({
        view: view as unknown as Readable,
        top: "demo-1-x86_64_v3",
        outDir: dir,
        manifest,
      });
      const run = await cli("verify", path, "--install-test", "--image=--privileged");
      expect(run.exitCode, run.all).toBe(2);
      expect(run.stderr).toMatch(/--image: "--privileged" is not an image reference/);
    });

    it("exits 2 at once for outputs under /proc and for a FIFO as --report", async () => {
      for (const command of [
        ["plan", "examples/hello.yaml", "--out", "/proc/sf-plan"],
        ["plan", "examples/hello.yaml", "--out", "/proc/self/fd"],
        ["build", "examples/hello.yaml", "--out", "/proc/sf-out"],
        ["build", "examples/hello.yaml", "--cache-dir", "/proc/sf-cache"],
        ["cache", "stats", "--cache-dir", "/sys/sf-cache"],
        ["doctor", "--cache-dir", "/proc/sf-cache"],
        ["keys", "init", "/proc/sf-keys"],
      ]) {
        const run = await cli(...command);
        expect(run.timedOut, command.join(" ")).toBe(false);
        expect(run.exitCode, run.all).toBe(2);
        expect(run.stderr).toMatch(/is on (proc|sysfs), a file system of the kernel's/);
      }
      const dir = await mkdtemp(join(tmpdir(), "sf-fifo-"));
      const fifo = join(dir, "report.json");
      await execa("mkfifo", [fifo]);
      const run = await cli("build", "examples/hello.yaml", "--report", fifo);
      expect(run.timedOut).toBe(false);
      expect(run.exitCode, run.all).toBe(2);
      expect(run.stderr).toContain(`--report: ${fifo} is a FIFO, not a regular file`);
    });
  });
});
