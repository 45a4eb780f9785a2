import { access, chmod, mkdir, mkdtemp, readFile, readlink, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseRelocateIndex } from "../../src/package/relocation-index.js";

const SCRIPT = resolve("templates/prepare-relocation.py");

let work: string;
/** The real view directory (the build prefix), as Spack makes it: <root>/._default/<hash>. */
let real: string;
let root: string;
let stage: string;

async function sh(file: string, args: string[], env: Record<string, string> = {}) {
  return execa(file, args, { env: { LD_LIBRARY_PATH: "", ...env } });
}

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-prep-"));
  real = join(work, "sf/view/._default/4f3c2b1a");
  root = join(work, "sf/view/default");
  stage = join(work, "stage");
  await mkdir(join(real, "lib"), { recursive: true });
  await mkdir(join(real, "bin"), { recursive: true });
  await mkdir(join(real, "share/app"), { recursive: true });
  await mkdir(join(real, ".spack/zlib"), { recursive: true });
  await symlink("._default/4f3c2b1a", root);
  await writeFile(join(work, "foo.c"), "int foo(void) { return 42; }\n");
  await writeFile(
    join(work, "app.c"),
    [
      "#include <stdio.h>",
      "int foo(void);",
      "const char *data_dir = DATADIR;",
      'const char *padded = "/////" DATADIR "/padded";',
      'int main(void) { printf("%d %s %s\\n", foo(), data_dir, padded); return 0; }',
      "",
    ].join("\n"),
  );
  await sh("gcc", ["-shared", "-fPIC", "-o", join(real, "lib/libfoo.so"), join(work, "foo.c")]);
  await sh("gcc", [
    "-o",
    join(real, "bin/app"),
    join(work, "app.c"),
    `-DDATADIR="${real}/share/app"`,
    `-L${real}/lib`,
    "-lfoo",
    // DT_RPATH, as Spack's compiler wrapper links.
    "-Wl,--disable-new-dtags",
    // Through the symlink root, through the real path, a system directory and the install tree.
    `-Wl,-rpath,${root}/lib:${real}/lib:/usr/lib:/sf/install/__spack_path_placeholder__/zlib/lib`,
  ]);
  await chmod(join(real, "bin/app"), 0o555);
  await writeFile(join(real, "share/app/app.pc"), `prefix=${real}\nlibdir=\${prefix}/lib\n`);
  await writeFile(join(real, ".spack/zlib/spec.json"), '{"prefix": "/sf/install/__spack_path_placeholder__"}');
  await symlink(join(real, "lib/libfoo.so"), join(real, "lib/libfoo.so.1"));
  await symlink(join(root, "share/app"), join(real, "share/app-current"));
  await symlink("/etc/passwd", join(real, "share/passwd"));
  await symlink("../../../../../outside", join(real, "share/outside"));
});

afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

/** The dynamic section's RPATH/RUNPATH lines of an ELF file, as readelf prints them. */
async function searchTags(file: string): Promise<string[]> {
  const { stdout } = await sh("readelf", ["-d", file]);
  return [...stdout.matchAll(/\((RPATH|RUNPATH)\)\s+Library (?:rpath|runpath): \[(.*)\]/g)].map(
    (m) => `${m[1]} ${m[2]}`,
  );
}

async function prepare(extra: string[] = []) {
  const run = await execa("python3", [SCRIPT, "--view", root, "--stage", stage, "--top", "demo-1.0-zen4", ...extra]);
  expect(run.exitCode).toBe(0);
  return {
    report: JSON.parse(await readFile(join(stage, "prepare.json"), "utf8")),
    index: parseRelocateIndex(await readFile(join(stage, "relocate.tsv"), "utf8")),
  };
}

describe("prepare-relocation.py", () => {
  it("rewrites RPATHs into the view to $ORIGIN and the binary still runs after the tree moves", async () => {
    const { report } = await prepare();
    expect(report.buildPrefix).toBe(real);
    expect(report.rpathsRewritten).toBe(1);
    const rpath = (await sh("patchelf", ["--print-rpath", join(real, "bin/app")])).stdout.trim();
    expect(rpath).toBe("$ORIGIN/../lib:/usr/lib:/sf/install/__spack_path_placeholder__/zlib/lib");
    expect(report.outsideRpaths).toEqual([
      { file: "bin/app", entry: "/sf/install/__spack_path_placeholder__/zlib/lib", reason: "outside the view" },
    ]);

    const moved = join(work, "moved");
    await rename(real, moved);
    const run = await sh(join(moved, "bin/app"), []);
    expect(run.stdout.startsWith("42 ")).toBe(true);
  });

  it("keeps each ELF file's dynamic tag: DT_RPATH stays DT_RPATH, DT_RUNPATH stays DT_RUNPATH; records every one", async () => {
    // A second program linked with the linker's default, DT_RUNPATH.
    await sh("gcc", [
      "-o",
      join(real, "bin/runpath-app"),
      join(work, "app.c"),
      `-DDATADIR="/usr/share"`,
      `-L${real}/lib`,
      "-lfoo",
      "-Wl,--enable-new-dtags",
      `-Wl,-rpath,${real}/lib`,
    ]);
    expect(await searchTags(join(real, "bin/app"))).toEqual([
      `RPATH ${root}/lib:${real}/lib:/usr/lib:/sf/install/__spack_path_placeholder__/zlib/lib`,
    ]);
    const { report } = await prepare();
    expect(await searchTags(join(real, "bin/app"))).toEqual([
      "RPATH $ORIGIN/../lib:/usr/lib:/sf/install/__spack_path_placeholder__/zlib/lib",
    ]);
    expect(await searchTags(join(real, "bin/runpath-app"))).toEqual(["RUNPATH $ORIGIN/../lib"]);
    expect(await readFile(join(stage, "dynamic-tags.tsv"), "utf8")).toBe(
      "view/bin/app\tRPATH\nview/bin/runpath-app\tRUNPATH\nview/lib/libfoo.so\tnone\n",
    );
    expect(report.dynamicTags).toEqual({ RPATH: 1, RUNPATH: 1, none: 1 });
    // With DT_RPATH, LD_LIBRARY_PATH cannot swap the view's library for a decoy of the same name.
    const decoys = join(work, "decoys");
    await mkdir(decoys);
    await writeFile(join(work, "decoy.c"), "int foo(void) { return 666; }\n");
    await sh("gcc", ["-shared", "-fPIC", "-o", join(decoys, "libfoo.so"), join(work, "decoy.c")]);
    const run = await execa(join(real, "bin/app"), [], { env: { LD_LIBRARY_PATH: decoys }, extendEnv: false });
    expect(run.stdout.startsWith("42 ")).toBe(true);
    // Whereas a DT_RUNPATH gives way to it: the case the tag is kept for.
    const runpath = await execa(join(real, "bin/runpath-app"), [], {
      env: { LD_LIBRARY_PATH: decoys },
      extendEnv: false,
    });
    expect(runpath.stdout.startsWith("666 ")).toBe(true);
  });

  it("takes symlinks to system paths out of the view for install.sh to make, and drops pyvenv.cfg's command", async () => {
    // A Python virtual environment as Spack 1.x's python-venv leaves it in a view.
    await symlink("/usr/bin/python3.11", join(real, "bin/python3.11"));
    await symlink("python3.11", join(real, "bin/python3"));
    const venvPrefix = "/sf/install/__spack_path_placeholder__/linux-x86_64_v3/python-venv-1.0-abc";
    await writeFile(
      join(real, "pyvenv.cfg"),
      `home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\nexecutable = /usr/bin/python3.11\ncommand = /usr/bin/python3.11 -m venv --without-pip ${venvPrefix}\n`,
    );
    const { report } = await prepare(["--install-root", "/sf/install"]);
    await expect(access(join(real, "bin/python3.11"))).rejects.toThrow();
    expect(await readlink(join(real, "bin/python3"))).toBe("python3.11");
    expect(report.systemLinks).toEqual([{ link: "bin/python3.11", target: "/usr/bin/python3.11" }]);
    expect(await readFile(join(stage, "system-links.tsv"), "utf8")).toBe("view/bin/python3.11\t/usr/bin/python3.11\n");
    expect(await readFile(join(stage, "node-requirements.tsv"), "utf8")).toContain(
      "system-file\t/usr/bin/python3.11\n",
    );
    // /etc is not a system path a node provides for the view: still reported as leaving it.
    expect(report.escapingSymlinks).toContainEqual({ link: "share/passwd", target: "/etc/passwd" });
    expect(await readFile(join(real, "pyvenv.cfg"), "utf8")).toBe(
      "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\nexecutable = /usr/bin/python3.11\n",
    );
    expect(report.venvConfigs).toEqual(["pyvenv.cfg"]);
  });

  it("drops files whose names hold a build path (glib's gdb helper), and the directories that leaves empty", async () => {
    const helperDir = join(
      real,
      "share/gdb/auto-load/sf/install/__spack_path_placeholder__/__spack_path_placeh/linux-x86_64_v3/glib-2.78-abc/lib",
    );
    await mkdir(helperDir, { recursive: true });
    await writeFile(join(helperDir, "libglib-2.0.so.0-gdb.py"), "import gdb\n");
    // Unpadded: only the install root says it is a build path.
    const plainDir = join(real, "share/gdb/auto-load/sf/install/linux-x86_64_v3/glib-2.78-abc/lib");
    await mkdir(plainDir, { recursive: true });
    await writeFile(join(plainDir, "libglib-2.0.so.0-gdb.py"), "import gdb\n");
    await writeFile(join(real, "share/gdb/keep.py"), "kept\n");
    const { report, index } = await prepare(["--install-root", "/sf/install"]);
    expect(report.droppedNames).toEqual(["share/gdb/auto-load/sf/install"]);
    await expect(access(join(real, "share/gdb/auto-load"))).rejects.toThrow();
    expect(await readFile(join(real, "share/gdb/keep.py"), "utf8")).toBe("kept\n");
    expect(index.some((e) => e.path.includes("auto-load"))).toBe(false);
  });

  it("drops the .spack metadata and makes symlinks into the view relative", async () => {
    const { report } = await prepare();
    await expect(access(join(real, ".spack"))).rejects.toThrow();
    expect(report.removedMetadata).toEqual(["zlib"]);
    expect(await readlink(join(real, "lib/libfoo.so.1"))).toBe("libfoo.so");
    expect(await readlink(join(real, "share/app-current"))).toBe("app");
    expect(report.symlinksRewritten).toBe(2);
    expect(report.escapingSymlinks).toEqual([
      { link: "share/outside", target: "../../../../../outside" },
      { link: "share/passwd", target: "/etc/passwd" },
    ]);
  });

  it("indexes text files and every occurrence of the prefix in binaries by its offset, padded strings included", async () => {
    const { report, index } = await prepare();
    expect(index.find((e) => e.path === "view/share/app/app.pc")).toEqual({
      path: "view/share/app/app.pc",
      kind: "text",
    });
    const app = index.find((e) => e.path === "view/bin/app");
    expect(app?.kind).toBe("binary");
    if (app?.kind !== "binary") return;
    const bytes = await readFile(join(real, "bin/app"));
    const prefix = Buffer.from(real);
    // Exactly the offsets where the prefix starts, each one listed.
    const expected: number[] = [];
    for (let at = bytes.indexOf(prefix); at >= 0; at = bytes.indexOf(prefix, at + prefix.length)) expected.push(at);
    expect(app.offsets).toEqual(expected);
    const strings = app.offsets.map((o) => bytes.subarray(o, bytes.indexOf(0, o)).toString("latin1"));
    expect(strings).toContain(`${real}/share/app`);
    expect(strings).toContain(`${real}/share/app/padded`);
    // The padded string's slashes stay where they are: only the prefix is overwritten.
    const padded = app.offsets.find((o) => bytes.subarray(o - 5, o).toString("latin1") === "/////");
    expect(padded).toBeDefined();
    expect(report.files).toBe(index.length);
    expect(report.occurrences).toBe(app.offsets.length);
    // The rewritten RPATH no longer names the build prefix; the library never did.
    expect(index.map((e) => e.path).sort()).toEqual(["view/bin/app", "view/share/app/app.pc"]);
    expect((await readFile(join(stage, "relocate.tsv"), "utf8")).split("\n")[0]).toMatch(
      /^binary\tview\/bin\/app\t\d+(,\d+)+$/,
    );
  });

  it("classifies on the whole file: a text header over 8 KiB with a binary payload is binary", async () => {
    const header = `#!/bin/sh\n# ${"x".repeat(9000)}\nPREFIX=${real}\nexit 0\n`;
    await writeFile(
      join(real, "bin/selfextract"),
      Buffer.concat([Buffer.from(header), Buffer.from([0, 0xff, 0x0a, 0]), Buffer.from(real)]),
    );
    await writeFile(
      join(real, "share/app/latin1.txt"),
      Buffer.concat([Buffer.from(`dir=${real}\n`), Buffer.from([0xe9, 0x0a])]),
    );
    const { index } = await prepare();
    const payload = index.find((e) => e.path === "view/bin/selfextract");
    expect(payload).toEqual({
      path: "view/bin/selfextract",
      kind: "binary",
      offsets: [header.indexOf(real), header.length + 4],
    });
    // Not valid UTF-8: binary too (in-place rewriting never moves a byte).
    expect(index.find((e) => e.path === "view/share/app/latin1.txt")?.kind).toBe("binary");
  });

  it("applies Spack's boundary rule to text and reports the occurrences it leaves", async () => {
    await writeFile(join(real, "share/app/flags.txt"), `-L${real}/lib\nother=/mnt${real}/x\nword${real}/y\n`);
    await writeFile(join(real, "share/app/only-other.txt"), `/mnt${real}/x\n`);
    const { report, index } = await prepare();
    expect(index.find((e) => e.path === "view/share/app/flags.txt")?.kind).toBe("text");
    expect(index.find((e) => e.path === "view/share/app/only-other.txt")).toBeUndefined();
    expect(report.textLeftAlone).toEqual([
      { file: "share/app/flags.txt", occurrences: 1 },
      { file: "share/app/only-other.txt", occurrences: 1 },
    ]);
  });

  it("rewrites Spack's sbang lines and shebangs into the view to the helper-free form", async () => {
    await writeFile(join(real, "bin/sbanged"), `#!/bin/sh /sf/install/bin/sbang\n#!${real}/bin/python3 -u\nprint(1)\n`);
    await writeFile(join(real, "bin/tool.lua"), `#!${real}/bin/lua\nprint(1)\n`);
    await writeFile(join(real, "bin/short"), "#!/usr/bin/env python3\nprint(1)\n");
    const { report } = await prepare();
    const inline = `#!/usr/bin/env -S /bin/sh -c '{ read -r l; read -r l; } <"$0"; exec \${l#*!} "$0" "$@"'`;
    expect(inline.length).toBeLessThan(127);
    expect(await readFile(join(real, "bin/sbanged"), "utf8")).toBe(`${inline}\n#!${real}/bin/python3 -u\nprint(1)\n`);
    expect(await readFile(join(real, "bin/tool.lua"), "utf8")).toBe(`${inline}\n--!${real}/bin/lua\nprint(1)\n`);
    expect(await readFile(join(real, "bin/short"), "utf8")).toBe("#!/usr/bin/env python3\nprint(1)\n");
    expect(report.shebangsRewritten).toBe(2);
    expect(await readFile(join(stage, "node-requirements.tsv"), "utf8")).toContain("env-split\n");
  });

  it("zeroes dead .dynstr bytes left after an RPATH shortened in place, and the binary still runs", async () => {
    const placeholder = `/sf/install/${"__spack_path_placeholder__/".repeat(8)}lib`;
    await sh("gcc", [
      "-o",
      join(real, "bin/dead"),
      join(work, "app.c"),
      `-DDATADIR="/usr/share"`,
      `-L${real}/lib`,
      "-lfoo",
      `-Wl,-rpath,${placeholder}`,
    ]);
    const bytes = await readFile(join(real, "bin/dead"));
    const at = bytes.indexOf(Buffer.from(placeholder));
    Buffer.from(`${real}/lib\0`).copy(bytes, at);
    await writeFile(join(real, "bin/dead"), bytes);
    expect(bytes.includes(Buffer.from("__spack_path_placeholder__"))).toBe(true);
    const { report } = await prepare();
    const after = await readFile(join(real, "bin/dead"));
    expect(after.includes(Buffer.from("__spack_path_placeholder__"))).toBe(false);
    expect(after.includes(Buffer.from(real))).toBe(false);
    expect(report.dynstrBytesCleared).toBeGreaterThan(0);
    // bin/app keeps a live RPATH entry into the install tree (reported in outsideRpaths); bin/dead has none left.
    expect(report.placeholderFiles).toEqual(["bin/app"]);
    expect(after.length).toBe(bytes.length);
    const readelf = (await sh("readelf", ["-W", "-d", "--dyn-syms", "-V", join(real, "bin/dead")])).stdout;
    expect(readelf).toContain("Shared library: [libfoo.so]");
    expect(readelf).toContain("[$ORIGIN/../lib]");
    // Symbol names and version records still read right.
    expect(readelf).toContain("printf@GLIBC_2.2.5");
    expect(readelf).toContain("foo");
    expect(readelf).toMatch(/File: libc\.so\.6/);
    expect(readelf).toMatch(/Name: GLIBC_2\.34/);
    const run = await sh(join(real, "bin/dead"), []);
    expect(run.stdout.startsWith("42 /usr/share")).toBe(true);
  });

  it("clears the stale tail of an install prefix left after a shortened RPATH, and reports one it cannot clear", async () => {
    const slurm = `/sf/install/${"__spack_path_placeholder__/".repeat(4)}linux-x86_64_v3/slurm-25.05-${"a".repeat(32)}`;
    const old = `${slurm}/sbin:${slurm}/lib`;
    await sh("gcc", [
      "-o",
      join(real, "bin/slurmd"),
      join(work, "app.c"),
      `-DDATADIR="/usr/share"`,
      `-L${real}/lib`,
      "-lfoo",
      "-Wl,--disable-new-dtags",
      `-Wl,-rpath,${old}`,
    ]);
    // Shortened in place as Spack's view does: the new string and its NUL over the old one, the rest left behind.
    const bytes = await readFile(join(real, "bin/slurmd"));
    Buffer.from(`${real}/lib\0`).copy(bytes, bytes.indexOf(Buffer.from(old)));
    await writeFile(join(real, "bin/slurmd"), bytes);
    expect(bytes.includes(Buffer.from("/linux-x86_64_v3/slurm-25.05-"))).toBe(true);
    // A text file naming another install prefix: nothing to clear, but reported.
    await writeFile(join(real, "share/app/paths.txt"), `plugins=${slurm}/lib/slurm\n`);
    const { report } = await prepare();
    const after = await readFile(join(real, "bin/slurmd"));
    expect(after.includes(Buffer.from("/linux-x86_64_v3/"))).toBe(false);
    expect(await searchTags(join(real, "bin/slurmd"))).toEqual(["RPATH $ORIGIN/../lib"]);
    expect(report.installPathsLeft).toEqual([
      { file: "share/app/paths.txt", found: `/linux-x86_64_v3/slurm-25.05-${"a".repeat(32)}` },
    ]);
    const run = await sh(join(real, "bin/slurmd"), []);
    expect(run.stdout.startsWith("42 ")).toBe(true);
  });

  it("records what the tree needs from a node: machine, libraries outside the view, symbol versions", async () => {
    await writeFile(
      join(work, "z.c"),
      "const char *zlibVersion(void);\nconst char *v(void) { return zlibVersion(); }\n",
    );
    await sh("gcc", ["-shared", "-fPIC", "-o", join(real, "lib/libz-user.so"), join(work, "z.c"), "-l:libz.so.1"]);
    const { report } = await prepare();
    const requirements = await readFile(join(stage, "node-requirements.tsv"), "utf8");
    expect(requirements).toMatch(/^machine\t62\tx86_64\n/);
    expect(requirements).toContain("library\tlibc.so.6\n");
    expect(requirements).toContain("library\tlibz.so.1\n");
    expect(requirements).not.toContain("library\tlibfoo.so\n");
    expect(requirements).toMatch(/version\tlibc\.so\.6\tGLIBC_2\.34\n/);
    expect(report.portability.machine).toBe("x86_64");
    expect(report.portability.highestVersions.GLIBC).toMatch(/^GLIBC_2\.\d+$/);
    expect(report.portability.hazards).toEqual([{ library: "libz.so.1", neededBy: ["lib/libz-user.so"] }]);
  });

  it("fails with a message when the view does not exist", async () => {
    const run = await execa("python3", [SCRIPT, "--view", join(work, "nope"), "--stage", stage, "--top", "t"], {
      reject: false,
    });
    expect(run.exitCode).not.toBe(0);
    expect(run.stderr).toContain("is not a directory");
  });
});
