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

async function prepare() {
  const run = await execa("python3", [SCRIPT, "--view", root, "--stage", stage, "--top", "demo-1.0-zen4"]);
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
