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
    "-o", join(real, "bin/app"), join(work, "app.c"),
    `-DDATADIR="${real}/share/app"`,
    `-L${real}/lib`, "-lfoo",
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

  it("indexes text files and every binary occurrence, padded strings from their first slash", async () => {
    const { report, index } = await prepare();
    expect(index.find((e) => e.path === "view/share/app/app.pc")).toEqual({ path: "view/share/app/app.pc", kind: "text" });
    const app = index.find((e) => e.path === "view/bin/app");
    expect(app?.kind).toBe("binary");
    if (app?.kind !== "binary") return;
    const bytes = await readFile(join(real, "bin/app"));
    const strings = app.occurrences.map((o) => {
      const text = bytes.subarray(o.offset, o.offset + o.length).toString("latin1");
      expect(bytes[o.offset + o.length]).toBe(0);
      expect(text.endsWith(Buffer.from(o.suffix_hex, "hex").toString("latin1"))).toBe(true);
      return text;
    });
    expect(strings).toContain(`${real}/share/app`);
    expect(strings).toContain(`/////${real}/share/app/padded`);
    const padded = app.occurrences.find((o) => o.suffix_hex === Buffer.from("/share/app/padded").toString("hex"));
    expect(bytes.subarray(padded!.offset - 1, padded!.offset + 6).toString("latin1")).toBe(`\0/////${real.slice(0, 1)}`);
    expect(report.files).toBe(index.length);
    expect(report.occurrences).toBe(app.occurrences.length);
    // The rewritten RPATH no longer names the build prefix; the library never did.
    expect(index.map((e) => e.path).sort()).toEqual(["view/bin/app", "view/share/app/app.pc"]);
    expect((await readFile(join(stage, "relocate.tsv"), "utf8")).split("\n")[0]).toMatch(/^binary\tview\/bin\/app\t\d+:\d+:[0-9a-f]+,/);
  });

  it("fails with a message when the view does not exist", async () => {
    const run = await execa("python3", [SCRIPT, "--view", join(work, "nope"), "--stage", stage, "--top", "t"], { reject: false });
    expect(run.exitCode).not.toBe(0);
    expect(run.stderr).toContain("is not a directory");
  });
});
