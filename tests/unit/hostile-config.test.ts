/**
 * Stack files written to hurt: each mistake is a ConfigError (exit 2) with file:line:column and the field, found
 * while the file is read, before any Docker call.
 */
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadStack, parseStack } from "../../src/config/index.js";
import { ConfigError, InputError } from "../../src/errors.js";

const REQUIRED = 'name: s\nversion: "1"\nspecs: [zlib]\ntargets: [x86_64_v3]\n';

function issuesOf(run: () => unknown): readonly string[] {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues;
  }
  throw new Error("expected a ConfigError, nothing was thrown");
}

const issues = (text: string) => issuesOf(() => parseStack(text, "stack.yaml"));

describe("YAML built to exhaust the reader", () => {
  it("reports a recursive alias at the alias, naming the field", () => {
    expect(issues(`${REQUIRED}packages:\n  zlib: &a { require: [*a] }\n`)).toEqual([
      expect.stringMatching(
        /^stack\.yaml:6:24 packages\.zlib\.require\[0\]: the alias \*a refers to the map or list that contains it \(a recursive alias\)/,
      ),
    ]);
    expect(issues(`${REQUIRED}packages:\n  zlib: &a [*a]\n`)).toEqual([
      expect.stringMatching(/^stack\.yaml:6:13 packages\.zlib\[0\]: the alias \*a .*recursive alias/),
    ]);
  });

  it("reports an alias bomb with its location instead of an internal error", () => {
    const levels = ["a: &a [x, x, x, x, x, x, x, x, x]"];
    for (const [i, name] of ["b", "c", "d", "e", "f"].entries()) {
      const previous = String.fromCharCode(97 + i);
      levels.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(", ")}]`);
    }
    const found = issues(`${REQUIRED}packages:\n${levels.map((l) => `  ${l}`).join("\n")}\n`);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(
      /^stack\.yaml:\d+:\d+ packages\.[a-f]\[\d\]: the aliases up to here expand to more than 10000 values \(an alias bomb\?\)/,
    );
  });

  it.each([
    [
      "flow",
      `${REQUIRED}packages:\n  zlib: ${"[".repeat(20000)}${"]".repeat(20000)}\n`,
      /^stack\.yaml:6:\d+ packages\.zlib\[0\]\[0\]…: nested more than 64 levels deep/,
    ],
    [
      "block",
      `${REQUIRED}packages:\n${Array.from({ length: 3000 }, (_, i) => `${" ".repeat(i + 1)}k${i}:`).join("\n")} x\n`,
      /^stack\.yaml:\d+:\d+ packages\.k0\.k1\.k2…: nested more than 64 levels deep/,
    ],
    [
      "just too deep",
      `${REQUIRED}packages:\n  zlib: ${"{a: ".repeat(70)}1${"}".repeat(70)}\n`,
      /^stack\.yaml:6:\d+ packages\.zlib\.a\.a…: nested more than 64 levels deep/,
    ],
  ])("names the field of %s nesting that is too deep", (_what, text, pattern) => {
    const found = issues(text);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(pattern);
  });

  it("still takes ordinary nesting and anchors", () => {
    const stack = parseStack(
      `${REQUIRED}packages:\n  base: &b { require: ["%gcc"] }\n  zlib: *b\n  mpi: { require: [{ one_of: [[a, b]] }] }\n`,
      "stack.yaml",
    );
    expect(stack.packages["zlib"]).toEqual({ require: ["%gcc"] });
  });
});

describe("text that would reach manifests, modules and logs", () => {
  it.each([
    ['description: "a\\0b"', /^stack\.yaml:5:14 description: contains the control character U\+0000 \(NUL\)/],
    ['description: "red \\e[31m"', /^stack\.yaml:5:14 description: contains the control character U\+001B/],
    [
      'modules:\n  env:\n    SITE: "x\\ry"',
      /^stack\.yaml:7:11 modules\.env\.SITE: contains the control character U\+000D/,
    ],
    ['specs: ["zlib\\x07"]', /^stack\.yaml:4:9 specs\[0\]: contains the control character U\+0007/],
    [
      'packages:\n  "zl\\x01ib": {}',
      /^stack\.yaml:6:3 packages\["zl\\u0001ib"\]: the key contains the control character U\+0001/,
    ],
  ])("refuses %s", (yaml, pattern) => {
    const text = yaml.startsWith("specs")
      ? `${REQUIRED.replace("specs: [zlib]\n", "") + yaml}\n`
      : `${REQUIRED}${yaml}\n`;
    expect(issues(text)).toEqual([expect.stringMatching(pattern)]);
  });

  it("keeps tabs and newlines in a description", () => {
    expect(parseStack(`${REQUIRED}description: "one\\ttwo\\nthree"\n`, "stack.yaml").description).toBe(
      "one\ttwo\nthree",
    );
  });
});

describe("values install.sh, the module, Docker or the file system would refuse", () => {
  it.each([
    ["PATH", /modules\.env\.PATH: PATH is set by the module itself/],
    ["MODULEPATH", /modules\.env\.MODULEPATH: MODULEPATH is set by the module itself/],
    ["LD_AUDIT", /modules\.env\.LD_AUDIT: LD_AUDIT is for the dynamic linker/],
    ["LD_LIBRARY_PATH", /modules\.env\.LD_LIBRARY_PATH: LD_LIBRARY_PATH is for the dynamic linker/],
    ["S_ROOT", /modules\.env\.S_ROOT: S_ROOT is the module's own prefix variable/],
    ["S_INSTALL_PREFIX", /modules\.env\.S_INSTALL_PREFIX: S_INSTALL_PREFIX is the module's own prefix variable/],
  ])("refuses modules.env %s at its key", (name, pattern) => {
    expect(issues(`${REQUIRED}modules:\n  env:\n    ${name}: /x\n`)).toEqual([
      expect.stringMatching(new RegExp(`^stack\\.yaml:7:5 ${pattern.source}`)),
    ]);
  });

  it("takes other module variables, and the _ROOT of another name", () => {
    const stack = parseStack(`${REQUIRED}modules:\n  env:\n    SITE_CONF: /etc/x\n    OTHER_ROOT: /y\n`, "stack.yaml");
    expect(stack.modules.env).toEqual({ SITE_CONF: "/etc/x", OTHER_ROOT: "/y" });
  });

  it.each([
    ['"/"', /^stack\.yaml:5:9 prefix: must not be \//],
    ['"//"', /^stack\.yaml:5:9 prefix: must not be \//],
    [`"/${"a".repeat(200)}"`, /^stack\.yaml:5:9 prefix: is 201 characters; install\.sh takes at most 200/],
    ['"/opt/a@b"', /^stack\.yaml:5:9 prefix: must not contain "@"/],
    ['"/opt/./x"', /^stack\.yaml:5:9 prefix: must not contain "\." or "\.\." components/],
  ])("refuses prefix %s", (prefix, pattern) => {
    expect(issues(`${REQUIRED}prefix: ${prefix}\n`)).toEqual([expect.stringMatching(pattern)]);
  });

  it("takes a prefix of exactly 200 characters", () => {
    const prefix = `/${"a".repeat(199)}`;
    expect(parseStack(`${REQUIRED}prefix: "${prefix}"\n`, "stack.yaml").prefix).toBe(prefix);
  });

  it("refuses a name and version whose default prefix install.sh would refuse", () => {
    const text = `name: ${"n".repeat(120)}\nversion: "${"1".repeat(80)}"\nspecs: [zlib]\ntargets: [x86_64_v3]\n`;
    expect(issues(text)).toEqual([
      expect.stringMatching(
        /^stack\.yaml:1:7 name: the default prefix \/opt\/n+… is 206 characters; install\.sh takes at most 200; set prefix/,
      ),
    ]);
  });

  it("refuses a name and version that make a tarball name over 255 bytes", () => {
    const text = `name: ${"n".repeat(200)}\nversion: "${"1".repeat(30)}"\nspecs: [zlib]\ntargets: [x86_64_v3, icelake]\nprefix: /opt/x\n`;
    expect(issues(text)).toEqual([
      expect.stringMatching(
        /^stack\.yaml:1:7 name: name, version and target x86_64_v3 make the tarball directory n+… 241 bytes long; at most 221 fit/,
      ),
    ]);
    const fits = `name: ${"n".repeat(190)}\nversion: "${"1".repeat(20)}"\nspecs: [zlib]\ntargets: [x86_64_v3]\nprefix: /opt/x\n`;
    expect(parseStack(fits, "stack.yaml").name).toHaveLength(190);
  });

  it.each([
    ['"ubuntu:24.04\\\\"'],
    ['"--privileged"'],
    ['"ubuntu:24.04\\nRUN evil"'],
    ['"ubuntu:"'],
    ['"ubuntu@sha256:abc"'],
  ])("refuses base_image %s", (image) => {
    expect(issues(`${REQUIRED}base_image: ${image}\n`)).toEqual([
      expect.stringMatching(/^stack\.yaml:5:13 base_image: /),
    ]);
  });

  it.each([
    ["ubuntu:24.04"],
    ["debian:bookworm-slim"],
    ["registry.example:5000/hpc/base:1.0"],
    [`ghcr.io/org/img@sha256:${"a".repeat(64)}`],
    ["localhost/my_image__x:v1.2-rc.3"],
  ])("takes base_image %s", (image) => {
    expect(parseStack(`${REQUIRED}base_image: ${image}\n`, "stack.yaml").base_image).toBe(image);
  });
});

describe("files a stack names", () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), "sf-hostile-config-"));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("refuses an asset that is a symlink, at its entry", async () => {
    await writeFile(path.join(work, "real.conf"), "x=1\n");
    await symlink(path.join(work, "real.conf"), path.join(work, "link.conf"));
    const file = path.join(work, "stack.yaml");
    await writeFile(file, `${REQUIRED}assets: [real.conf, link.conf]\n`);
    const error = await loadStack(file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toEqual([
      `${file}:5:21 assets[1]: asset ${path.join(work, "link.conf")} is a symlink; name the file itself (${path.join(work, "real.conf")})`,
    ]);
  });

  it("refuses a FIFO as the stack file without blocking", async () => {
    const fifo = path.join(work, "fifo.yaml");
    execFileSync("mkfifo", [fifo]);
    const error = await loadStack(fifo).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toBe(`cannot read stack file ${fifo}: it is a FIFO, not a regular file`);
  });

  it("refuses a FIFO as an asset without blocking", async () => {
    const dir = path.join(work, "fifo-asset");
    await mkdir(dir);
    execFileSync("mkfifo", [path.join(dir, "pipe")]);
    const file = path.join(dir, "stack.yaml");
    await writeFile(file, `${REQUIRED}assets: [pipe]\n`);
    const error = await loadStack(file).catch((e: unknown) => e);
    expect((error as ConfigError).issues).toEqual([
      `${file}:5:10 assets[0]: asset ${path.join(dir, "pipe")} is not a file`,
    ]);
  });
});
