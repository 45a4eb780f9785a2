import { readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import type { RunReport } from "../../src/run/report.js";
import { runCli } from "./helpers/cli.js";
import { requireEngine, requireTestImage, TEST_IMAGE } from "./helpers/engine.js";
import { tempDir, writeTestStack } from "./helpers/stack.js";

/**
 * End to end: a stack built with the Spack stand-in in Docker, packed from the container, verified, installed at
 * two prefixes with the real install.sh, loaded with real Lmod.
 */
let work: string;
let cacheRoot: string;
let dist: string;
let tarball: string;
let buildPrefix: string;

const LMOD_INIT = "/usr/share/lmod/lmod/init/bash";
const longPrefix = (base: string) => `${base}/${"p".repeat(200 - base.length - 1)}`;

beforeAll(async () => {
  await requireTestImage(await requireEngine());
  await execa("npm", ["run", "build"], { stdio: "ignore" });
  work = await tempDir("package");
  cacheRoot = join(work, "cache");
  dist = join(work, "dist");
  const stackFile = await writeTestStack(work, {
    name: "tiny",
    specs: ["hello", "zlib"],
    extra: 'prefix: /opt/tiny/1.0\nmodules: { env: { TINY_DATA: "${PREFIX}/data" } }',
  });
  const run = await runCli([
    "build",
    stackFile,
    "--cache-dir",
    cacheRoot,
    "--out",
    dist,
    "--report",
    join(work, "report.json"),
  ]);
  expect(run.exitCode, run.all).toBe(0);
  tarball = join(dist, "tiny-1.0-x86_64_v3.tar.gz");
  const unpacked = join(work, "unpacked");
  await execa("mkdir", ["-p", unpacked]);
  await execa("tar", ["-xzf", tarball, "-C", unpacked]);
  buildPrefix = (await readFile(join(unpacked, "tiny-1.0-x86_64_v3/.stack-factory/build-prefix"), "utf8")).trim();
});

async function install(prefix: string): Promise<void> {
  const run = await execa("bash", [join(work, "unpacked/tiny-1.0-x86_64_v3/install.sh"), "--prefix", prefix], {
    reject: false,
    all: true,
  });
  expect(run.exitCode, run.all).toBe(0);
}

/** ELF files under a directory. */
async function elfFiles(dir: string): Promise<string[]> {
  const { stdout } = await execa("find", [dir, "-type", "f"]);
  const out: string[] = [];
  for (const f of stdout.split("\n").filter(Boolean)) {
    const head = await readFile(f).then((b) => b.subarray(0, 4));
    if (head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) out.push(f);
  }
  return out;
}

async function checkInstalled(prefix: string): Promise<void> {
  const bins = (await readdir(join(prefix, "view/bin"))).map((b) => join(prefix, "view/bin", b));
  const elves = await elfFiles(join(prefix, "view"));
  expect(elves.length).toBeGreaterThanOrEqual(4);
  for (const exe of bins) {
    const info = await stat(exe);
    if (!info.isFile() || (info.mode & 0o111) === 0) continue;
    // Programs run bare; the pkg-config style scripts are asked for their prefix, which must be the new one.
    const config = exe.endsWith("-config");
    const run = await execa(exe, config ? ["--prefix"] : [], { env: {}, extendEnv: false, reject: false, all: true });
    expect(run.exitCode, `${exe}: ${run.all}`).toBe(0);
    if (config) expect(run.stdout.trim()).toBe(`${prefix}/view`);
  }
  for (const elf of elves) {
    const ldd = await execa("ldd", [elf], { reject: false, all: true });
    expect(ldd.all, elf).not.toMatch(/not found/);
    expect(ldd.all, elf).not.toContain(buildPrefix);
    expect(ldd.all, elf).not.toContain("/sf/");
    const { stdout } = await execa("readelf", ["-d", elf]);
    for (const m of stdout.matchAll(/\((?:RPATH|RUNPATH)\)\s+Library (?:rpath|runpath): \[(.*)\]/g)) {
      for (const entry of m[1]!.split(":")) {
        expect(entry.startsWith("$ORIGIN") || entry.startsWith(prefix), `${elf}: ${entry}`).toBe(true);
      }
    }
  }
  const grep = await execa(
    "grep",
    ["-rlF", "--exclude-dir=.stack-factory", "--exclude=manifest.json", buildPrefix, prefix],
    { reject: false },
  );
  expect(grep.stdout).toBe("");
  const pc = await readFile(join(prefix, "view/lib/pkgconfig/hello.pc"), "utf8").catch(() => "");
  if (pc !== "") expect(pc).toContain(`${prefix}/view`);
}

/** RPATH, RUNPATH, RPATH+RUNPATH or none, as readelf shows an ELF file's dynamic section. */
async function searchTag(file: string): Promise<string> {
  const { stdout } = await execa("readelf", ["-d", file]);
  return (
    [...stdout.matchAll(/\((RPATH|RUNPATH)\)/g)]
      .map((m) => m[1])
      .sort()
      .join("+") || "none"
  );
}

/** The libraries the dynamic loader resolves for `program` under LD_LIBRARY_PATH=`path`, as ldd shows them. */
async function loaded(program: string, path: string): Promise<string> {
  const trace = await execa(program, [], {
    env: { LD_TRACE_LOADED_OBJECTS: "1", LD_LIBRARY_PATH: path },
    extendEnv: false,
    reject: false,
    all: true,
  });
  expect(trace.exitCode, trace.all).toBe(0);
  return trace.stdout;
}

/**
 * A directory of decoys, one for each shared library of the view under its soname: loading any of them ends the
 * process at once (exit 66, "DECOY <soname>" on stderr), as a cluster module's library of the same name would take
 * over the view's.
 */
async function decoysFor(libDir: string, out: string): Promise<string[]> {
  await execa("mkdir", ["-p", out]);
  const sonames: string[] = [];
  for (const lib of await elfFiles(libDir)) {
    const { stdout } = await execa("readelf", ["-d", lib]);
    const soname = /\(SONAME\)\s+Library soname: \[(.*)\]/.exec(stdout)?.[1] ?? lib.split("/").at(-1)!;
    const source = join(out, `${soname}.c`);
    await writeFile(
      source,
      `#include <unistd.h>\n__attribute__((constructor)) static void decoy(void) { write(2, "DECOY ${soname}\\n", ${soname.length + 7}); _exit(66); }\n`,
    );
    await execa("gcc", ["-shared", "-fPIC", `-Wl,-soname,${soname}`, "-o", join(out, soname), source]);
    sonames.push(soname);
  }
  return sonames.sort();
}

describe("relocatable tarball of a stack built in Docker", () => {
  it("is written under its final name with a sidecar, one top directory and the documented layout", async () => {
    expect((await readdir(dist)).sort()).toEqual(["tiny-1.0-x86_64_v3.tar.gz", "tiny-1.0-x86_64_v3.tar.gz.sha256"]);
    const { stdout } = await execa("tar", ["-tzf", tarball]);
    const names = stdout.split("\n").filter(Boolean);
    expect(new Set(names.map((n) => n.split("/")[0]))).toEqual(new Set(["tiny-1.0-x86_64_v3"]));
    for (const required of [
      "install.sh",
      "manifest.json",
      "SHA256SUMS",
      "sbom.cdx.json",
      "modules/tiny/1.0.lua",
      "modules/tiny/1.0",
      "view/bin/hello",
    ]) {
      expect(names, required).toContain(`tiny-1.0-x86_64_v3/${required}`);
    }
    const manifest = JSON.parse(
      await readFile(join(work, "unpacked/tiny-1.0-x86_64_v3/manifest.json"), "utf8"),
    ) as Record<string, any>;
    expect(manifest["build_prefix"]).toBe(buildPrefix);
    expect(manifest["image_id"]).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(manifest["base_image"]).toBe(TEST_IMAGE);
    expect(manifest["specs"].map((s: { name: string }) => s.name)).toEqual(
      expect.arrayContaining(["hello", "libgreet", "zlib"]),
    );
    const report = JSON.parse(await readFile(join(work, "report.json"), "utf8")) as RunReport;
    expect(report.targets[0]!.tarball).toBe(tarball);
    expect(report.targets[0]!.tarballBytes).toBe((await stat(tarball)).size);
  });

  it("passes verify, and verify --install-test in a fresh container", async () => {
    const plain = await runCli(["verify", tarball]);
    expect(plain.exitCode, plain.all).toBe(0);
    const full = await runCli(["verify", tarball, "--install-test", "--image", TEST_IMAGE]);
    expect(full.exitCode, full.all).toBe(0);
    expect(full.all).toMatch(/install-test: ok/);
  });

  it("installs at a short prefix and at a 200-character prefix: programs run under env -i, no build prefix left", async () => {
    const short = join(work, "s");
    const long = longPrefix(join(work, "l"));
    expect(long.length).toBe(200);
    await install(short);
    await install(long);
    await checkInstalled(short);
    await checkInstalled(long);
  });

  it("keeps the view's libraries over LD_LIBRARY_PATH decoys: every ELF file keeps the DT_RPATH it was linked with", async () => {
    const prefix = join(work, "decoyed");
    await install(prefix);
    const manifest = JSON.parse(await readFile(join(prefix, "manifest.json"), "utf8")) as {
      dynamic_tags: Record<string, string>;
    };
    const elves = await elfFiles(join(prefix, "view"));
    const found: Record<string, string> = {};
    for (const elf of elves) found[elf.slice(prefix.length + 1)] = await searchTag(elf);
    // The tags the stand-in linked with (as Spack does: DT_RPATH), recorded and kept through packing and install.
    expect(found).toEqual(manifest.dynamic_tags);
    expect(Object.values(found).filter((t) => t !== "none").length).toBeGreaterThanOrEqual(4);
    expect(new Set(Object.values(found))).toEqual(new Set(["RPATH", "none"]));

    const decoys = join(work, "decoys");
    const sonames = await decoysFor(join(prefix, "view/lib"), decoys);
    expect(sonames).toEqual(expect.arrayContaining(["libhello.so", "liblibgreet.so", "libzlib.so"]));
    const programs = (await elfFiles(join(prefix, "view/bin"))).sort();
    expect(programs.length).toBeGreaterThanOrEqual(3);
    for (const program of programs) {
      const clean = await execa(program, [], { env: {}, extendEnv: false, reject: false, all: true });
      expect(clean.exitCode, `${program}: ${clean.all}`).toBe(0);
      const decoyed = await execa(program, [], {
        env: { LD_LIBRARY_PATH: decoys },
        extendEnv: false,
        reject: false,
        all: true,
      });
      expect(decoyed.all, program).not.toContain("DECOY");
      expect(decoyed.exitCode, `${program}: ${decoyed.all}`).toBe(0);
      expect(decoyed.stdout).toBe(clean.stdout);
      // What the loader resolves (as ldd asks it): nothing from the decoys.
      expect(await loaded(program, decoys), program).not.toContain(decoys);
    }
    // The decoys work: a program whose libraries LD_LIBRARY_PATH may override (DT_RUNPATH) takes them.
    const hello = join(prefix, "view/bin/hello");
    await execa("patchelf", ["--set-rpath", "$ORIGIN/../lib", hello]);
    expect(await searchTag(hello)).toBe("RUNPATH");
    expect(await loaded(hello, decoys)).toContain(`${decoys}/libhello.so`);
    const swapped = await execa(hello, [], { env: { LD_LIBRARY_PATH: decoys }, extendEnv: false, reject: false });
    expect(swapped.exitCode).not.toBe(0);
  });

  it("can be moved and relocated again with its own install script", async () => {
    const first = join(work, "first");
    const moved = join(work, "moved");
    await install(first);
    await rename(first, moved);
    const again = await execa("bash", [join(moved, "install.sh"), "--prefix", moved], { reject: false, all: true });
    expect(again.exitCode, again.all).toBe(0);
    await checkInstalled(moved);
  });

  it("loads with real Lmod: its prefix's bin first on PATH, no LD_LIBRARY_PATH", async () => {
    const prefix = join(work, "lmod");
    await install(prefix);
    const run = await execa(
      "bash",
      [
        "-c",
        `source ${LMOD_INIT}\nmodule use ${prefix}/modules\nmodule load tiny\necho "PATH=$PATH"\necho "LD=\${LD_LIBRARY_PATH-unset}"\necho "DATA=$TINY_DATA"\nhello`,
      ],
      { env: { PATH: "/usr/bin:/bin", HOME: work }, extendEnv: false, reject: false, all: true },
    );
    expect(run.exitCode, run.all).toBe(0);
    expect(run.stdout).toContain(`PATH=${prefix}/view/bin:`);
    expect(run.stdout).toContain("LD=unset");
    expect(run.stdout).toContain(`DATA=${prefix}/data`);
  });
});

describe("one failing target among three", () => {
  it("lets the other two produce their tarballs, reports the failure with its log, exits 1", async () => {
    const dir = await tempDir("partial");
    const stackFile = await writeTestStack(dir, {
      name: "trio",
      specs: ["hello"],
      targets: ["x86_64", "x86_64_v2", "x86_64_v3"],
    });
    const out = join(dir, "dist");
    const reportPath = join(dir, "report.json");
    const run = await runCli([
      "build",
      stackFile,
      "--cache-dir",
      cacheRoot,
      "--out",
      out,
      "--concurrency",
      "3",
      "--jobs",
      "1",
      "--report",
      reportPath,
      "--env",
      "SPACK_STANDIN_FAIL=hello:x86_64_v2",
    ]);
    expect(run.exitCode, run.all).toBe(1);
    const report = JSON.parse(await readFile(reportPath, "utf8")) as RunReport;
    const byTarget = Object.fromEntries(report.targets.map((t) => [t.target, t]));
    expect(byTarget["x86_64_v2"]!.status).toBe("failed");
    expect(byTarget["x86_64_v2"]!.error).toContain(byTarget["x86_64_v2"]!.logPath);
    // The failed install, then the push of what it installed before the failure.
    expect(byTarget["x86_64_v2"]!.steps.slice(-2)).toMatchObject([{ step: "install", exitCode: 1 }, { step: "keep" }]);
    expect(byTarget["x86_64"]!.steps.map((s) => s.step)).toEqual([
      "compiler",
      "concretize",
      "fetch",
      "install",
      "push",
      "view",
      "find",
      "package",
    ]);
    expect(byTarget["x86_64"]!.status).toBe("ok");
    expect(byTarget["x86_64_v3"]!.status).toBe("ok");
    expect((await readdir(out)).filter((f) => f.endsWith(".tar.gz")).sort()).toEqual([
      "trio-1.0-x86_64.tar.gz",
      "trio-1.0-x86_64_v3.tar.gz",
    ]);
    expect(run.stdout).toMatch(/x86_64_v2\s+failed/);
  });
});
