/**
 * The Spack stand-in (tests/fixtures/spack-standin) against what real Spack 1.1 does (lines in
 * tests/fixtures/spack-standin/real-spack-lines.json, copied from real transcripts). These tests run the stand-in's
 * Python directly on the host: no Docker, no factory code but the contract's command lines.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { BUILDCACHE_MIRROR, spackCommands, spackEnvironment, type SpackPaths } from "../../src/spack/contract.js";
import {
  blobPath,
  buildcacheEntries,
  buildcacheIndex,
  SPEC_TYPE,
  specDocument,
  TARBALL_TYPE,
} from "./helpers/buildcache.js";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const STANDIN = path.join(FIXTURES, "spack-standin");
const SPACK = path.join(STANDIN, "bin", "spack");
const SPACK_PACKAGES = path.join(FIXTURES, "spack-packages");
const BUILTIN = path.join(SPACK_PACKAGES, "repos", "spack_repo", "builtin");
/** A stand-in `clingo` module (the test base image carries it too): the stand-in only needs `import clingo` to work. */
const CLINGO_STUB = path.join(FIXTURES, "clingo-standin");
const REAL = JSON.parse(fs.readFileSync(path.join(STANDIN, "real-spack-lines.json"), "utf8")) as Record<
  string,
  string | string[]
>;
const HASH = /^[a-z2-7]{32}$/;
const USER = os.userInfo().username;
const GCC_VERSION = execFileSync("gcc", ["-dumpfullversion"], { encoding: "utf8" }).trim();

let tmp: string;
let fakeBin: string;

/** A line of real-spack-lines.json with its `<...>` placeholders filled in. */
function real(key: string, fill: Record<string, string> = {}, index = 0): string {
  const value = REAL[key];
  let line = Array.isArray(value) ? value[index]! : value!;
  for (const [k, v] of Object.entries(fill)) line = line.split(`<${k}>`).join(v);
  expect(line, `${key}: unfilled placeholder`).not.toMatch(/<[a-z:0-9-]+>/);
  return line;
}

function pathsFor(name: string, buildcache = path.join(tmp, "buildcache")): SpackPaths {
  const base = path.join(tmp, name);
  return {
    spack: SPACK,
    envDir: path.join(base, "env"),
    installRoot: path.join(base, "install"),
    paddedLength: 128,
    viewRoot: path.join(base, "view"),
    sourceCache: path.join(tmp, "source-cache"),
    userCache: path.join(base, "user-cache"),
    buildcache,
    ccache: path.join(tmp, "ccache"),
  };
}

interface EnvOptions {
  target?: string;
  /** `concretizer:targets:host_compatible`; the factory writes false. undefined: not written (Spack's default). */
  hostCompatible?: boolean | undefined;
  repos?: unknown;
  mirrors?: Record<string, unknown>;
  config?: Record<string, unknown>;
  packages?: Record<string, unknown>;
}

/** spack.yaml in the shape the factory writes for Spack 1.x. */
function envConfig(p: SpackPaths, specs: string[], o: EnvOptions = {}): Record<string, unknown> {
  const concretizer: Record<string, unknown> = { unify: true, reuse: true };
  if (!("hostCompatible" in o)) concretizer["targets"] = { host_compatible: false };
  else if (o.hostCompatible !== undefined) concretizer["targets"] = { host_compatible: o.hostCompatible };
  return {
    spack: {
      specs,
      concretizer,
      config: {
        install_tree: { root: p.installRoot, padded_length: p.paddedLength },
        source_cache: p.sourceCache,
        misc_cache: `${p.userCache}/cache`,
        build_jobs: 2,
        ccache: true,
        ...o.config,
      },
      packages: { all: { require: [`target=${o.target ?? "x86_64"}`] }, ...o.packages },
      mirrors: o.mirrors ?? { "stack-factory": { url: `file://${p.buildcache}`, signed: false } },
      view: { default: { root: p.viewRoot, link_type: "copy" } },
      repos: o.repos ?? { builtin: BUILTIN },
    },
  };
}

function writeEnv(p: SpackPaths, specs: string[], o: EnvOptions = {}): void {
  fs.mkdirSync(p.envDir, { recursive: true });
  fs.rmSync(path.join(p.envDir, "spack.lock"), { force: true });
  fs.writeFileSync(path.join(p.envDir, "spack.yaml"), YAML.stringify(envConfig(p, specs, o)));
}

async function run(
  argv: string[],
  p?: SpackPaths,
  extraEnv: Record<string, string> = {},
  options: { uid?: number } = {},
) {
  const [file, ...args] = argv;
  return execa(file!, args, {
    reject: false,
    ...(options.uid !== undefined ? { uid: options.uid, gid: options.uid } : {}),
    env: {
      ...(p ? spackEnvironment(p) : {}),
      PATH: `${fakeBin}:${process.env["PATH"] ?? ""}`,
      TMPDIR: path.join(tmp, "stage-tmp"),
      PYTHONPATH: CLINGO_STUB,
      ...extraEnv,
    },
  });
}

async function isUser(uid: number): Promise<boolean> {
  return (await execa("getent", ["passwd", String(uid)], { reject: false })).exitCode === 0;
}

/** compiler find, then `argv`: what every factory step sequence starts with. */
async function withCompiler(p: SpackPaths): Promise<void> {
  const r = await run(spackCommands.compilerFind(p), p);
  expect(r.exitCode, r.stderr).toBe(0);
}

/** The install prefix `<...>/<name>-<version>-<hash>` under `root`. */
function findPrefix(root: string, name: string, hash: string): string {
  const hits = (fs.readdirSync(root, { recursive: true }) as string[]).filter((rel) =>
    path.basename(rel).match(new RegExp(`^${name}-[^-]+-${hash}$`)),
  );
  expect(hits).toHaveLength(1);
  return path.join(root, hits[0]!);
}

/** The sha256 the stand-in spack-packages recipe declares for name@version. */
function sha256Of(name: string, version: string): string {
  const recipe = fs.readFileSync(path.join(BUILTIN, "packages", name.replace(/-/g, "_"), "package.py"), "utf8");
  const m = recipe.match(new RegExp(`version\\("${version.replace(/\./g, "\\.")}", sha256="([0-9a-f]{64})"\\)`));
  expect(m, `${name}@${version} checksum`).not.toBeNull();
  return m![1]!;
}

function archive(root: string, sha: string): string {
  return path.join(root, "_source-cache", "archive", sha.slice(0, 2), `${sha}.tar.gz`);
}

interface LockNode {
  name: string;
  version: string;
  hash: string;
  parameters: Record<string, unknown>;
  external?: { path: string; extra_attributes?: Record<string, unknown> };
  dependencies?: { name: string; hash: string; parameters: { deptypes: string[]; virtuals: string[] } }[];
}
function readLock(p: SpackPaths): {
  roots: { hash: string; spec: string }[];
  concrete_specs: Record<string, LockNode>;
} {
  return JSON.parse(fs.readFileSync(path.join(p.envDir, "spack.lock"), "utf8"));
}
function nodeNamed(p: SpackPaths, name: string): LockNode {
  const node = Object.values(readLock(p).concrete_specs).find(
    (n) => n.name === name && !(name === "gcc" && n.external),
  );
  expect(node, `${name} in spack.lock`).toBeDefined();
  return node!;
}
const short = (n: LockNode): string => `${n.name}-${n.version}-${n.hash}`;

beforeAll(() => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "spack-standin-")));
  fakeBin = path.join(tmp, "fake-bin");
  fs.mkdirSync(fakeBin);
  fs.mkdirSync(path.join(tmp, "stage-tmp"));
  // A ccache that records its use and runs the compiler: proves compiles go through ccache when `ccache: true`.
  fs.writeFileSync(path.join(fakeBin, "ccache"), `#!/bin/sh\necho "$@" >> "$CCACHE_DIR/used.log"\nexec "$@"\n`, {
    mode: 0o755,
  });
  fs.mkdirSync(path.join(tmp, "ccache"));
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("spack stand-in: command surface", () => {
  it("prints its version", async () => {
    const r = await run([SPACK, "--version"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^1\.1\.0 \(stand-in\)$/);
  });

  it("rejects unknown commands, unknown flags, a missing -e and a missing environment with exit 1", async () => {
    const p = pathsFor("surface");
    writeEnv(p, ["zlib"]);
    const cases = [
      [SPACK, "-e", p.envDir, "spec", "zlib"],
      [SPACK, "-e", p.envDir, "install", "--no-such-flag"],
      [SPACK, "concretize", "--force"],
      [SPACK, "-e", path.join(tmp, "nowhere"), "concretize", "--force"],
    ];
    for (const argv of cases) {
      const r = await run(argv, p);
      expect(r.exitCode, argv.join(" ")).toBe(1);
      expect(r.stderr, argv.join(" ")).toMatch(/^==> Error: /);
    }
  });

  it("rejects unknown configuration keys and unknown packages", async () => {
    const p = pathsFor("bad-config");
    writeEnv(p, ["zlib"], { config: { no_such_key: 1 } });
    await withCompiler(p).catch(() => undefined);
    const bad = await run(spackCommands.concretize(p), p);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain("no_such_key");

    writeEnv(p, ["no-such-package"]);
    await withCompiler(p);
    const unknown = await run(spackCommands.concretize(p), p);
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toContain("==> Error: Package 'no-such-package' not found.");
  });

  it("reads the flow-style YAML of real Spack manifests", async () => {
    const p = pathsFor("flow");
    fs.mkdirSync(p.envDir, { recursive: true });
    fs.writeFileSync(
      path.join(p.envDir, "spack.yaml"),
      [
        "spack:",
        "  specs: [zlib]",
        "  concretizer: {unify: true, reuse: true, targets: {host_compatible: false}}",
        `  config: {install_tree: {root: ${p.installRoot}, padded_length: 0}, build_jobs: 2}`,
        "  packages: {all: {require: [target=x86_64]}}",
        `  repos: {builtin: ${BUILTIN}}`,
        "",
      ].join("\n"),
    );
    await withCompiler(p);
    const r = await run(spackCommands.concretize(p), p);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(nodeNamed(p, "zlib").hash).toMatch(HASH);
  });
});

describe("spack stand-in: compilers in spack.yaml (Spack 1.x)", () => {
  it("compiler find writes gcc as an external into spack.yaml and keeps everything else", async () => {
    const p = pathsFor("compiler-find");
    writeEnv(p, ["zlib"], { packages: { zlib: { variants: "~pic" } } });
    const before = YAML.parse(fs.readFileSync(path.join(p.envDir, "spack.yaml"), "utf8")) as {
      spack: Record<string, any>;
    };
    const found = await run(spackCommands.compilerFind(p), p);
    expect(found.exitCode, found.stderr).toBe(0);
    expect(found.stdout).toContain(real("compilerFound", { env: p.envDir }, 0));
    expect(found.stdout).toContain(`    gcc@${GCC_VERSION}`);
    expect(found.stdout).toContain(real("compilerFound", {}, 1));
    expect(fs.readdirSync(p.envDir).sort()).toEqual(["spack.yaml"]);

    const text = fs.readFileSync(path.join(p.envDir, "spack.yaml"), "utf8");
    // Same shape as real Spack's line, with this host's languages.
    expect(text).toMatch(new RegExp(`- spec: gcc@${GCC_VERSION.replace(/\./g, "\\.")} languages:='c,c\\+\\+[^']*'`));
    expect(real("compilerExternal")).toMatch(/^- spec: gcc@\S+ languages:='c,c\+\+/);
    const after = YAML.parse(text) as { spack: Record<string, any> };
    const gcc = after.spack["packages"]["gcc"]["externals"][0];
    expect(gcc.prefix).toBe(
      path.dirname(path.dirname(execFileSync("sh", ["-c", "command -v gcc"], { encoding: "utf8" }).trim())),
    );
    expect(gcc.extra_attributes.compilers.c).toMatch(/\/gcc$/);
    expect(gcc.extra_attributes.compilers.cxx).toMatch(/\/g\+\+$/);
    expect(after.spack["compilers"]).toBeUndefined();
    delete after.spack["packages"]["gcc"];
    expect(after).toEqual(before);

    const again = await run(spackCommands.compilerFind(p), p);
    expect(again.stdout).toContain("Found no new compilers");
    expect(
      YAML.parse(fs.readFileSync(path.join(p.envDir, "spack.yaml"), "utf8")).spack.packages.gcc.externals,
    ).toHaveLength(1);

    // Concretization takes the compiler from there: an external gcc node the packages depend on for `c`.
    const conc = await run(spackCommands.concretize(p), p);
    expect(conc.exitCode, conc.stderr).toBe(0);
    const zlib = nodeNamed(p, "zlib");
    const compilerEdge = zlib.dependencies!.find((d) => d.name === "gcc")!;
    expect(compilerEdge.parameters).toEqual({ deptypes: ["build"], virtuals: ["c"] });
    const compiler = readLock(p).concrete_specs[compilerEdge.hash]!;
    expect(compiler.version).toBe(GCC_VERSION);
    expect(compiler.external?.path).toBe(gcc.prefix);
    expect(conc.stdout).toMatch(
      new RegExp(`zlib@1\\.3\\.1~pic\\+shared platform=linux os=\\S+ target=x86_64 %c=gcc@${GCC_VERSION}`),
    );
  });

  it("external find writes the package into spack.yaml as not buildable, or warns", async () => {
    const p = pathsFor("external-find");
    writeEnv(p, ["zlib"]);
    fs.writeFileSync(path.join(fakeBin, "lstopo"), `#!/bin/sh\necho "lstopo 2.9.1"\n`, { mode: 0o755 });
    try {
      const none = await run(spackCommands.externalFind(p, ["json-c"]), p);
      expect(none.exitCode).toBe(0);
      expect(none.stderr).toContain("==> Warning:");
      const found = await run(spackCommands.externalFind(p, ["hwloc"]), p);
      expect(found.exitCode, found.stderr).toBe(0);
      expect(found.stdout).toContain(
        `==> The following specs have been detected on this system and added to ${p.envDir}/spack.yaml`,
      );
      const hwloc = YAML.parse(fs.readFileSync(path.join(p.envDir, "spack.yaml"), "utf8")).spack.packages.hwloc;
      expect(hwloc).toEqual({ externals: [{ spec: "hwloc@2.9.1", prefix: tmp }], buildable: false });
    } finally {
      fs.rmSync(path.join(fakeBin, "lstopo"));
    }
  });
});

describe("spack stand-in: the builtin repository (Spack 1.x)", () => {
  it("uses builtin configured as a path, as a git checkout (destination) or in the old list form", async () => {
    const checkout = path.join(tmp, "spack-packages-checkout");
    fs.cpSync(SPACK_PACKAGES, checkout, { recursive: true });
    execFileSync("git", ["init", "-q", checkout]);
    const forms: [string, unknown][] = [
      ["path", { builtin: BUILTIN }],
      ["destination", { builtin: { destination: checkout } }],
      ["list", [BUILTIN]],
    ];
    for (const [name, repos] of forms) {
      const p = pathsFor(`builtin-${name}`);
      writeEnv(p, ["hello"], { repos });
      await withCompiler(p);
      const r = await run(spackCommands.concretize(p), p);
      expect(r.exitCode, `${name}: ${r.stderr}`).toBe(0);
      expect(r.stderr, name).not.toContain("Warning");
      expect(nodeNamed(p, "hello").name).toBe("hello");
      expect(fs.existsSync(path.join(p.userCache, "package_repos")), name).toBe(false);
    }
  });

  it("without builtin configured, clones it, fails offline like Spack 1.1 and leaves a poisoned user cache", async () => {
    const p = pathsFor("no-builtin");
    const factory = path.join(tmp, "no-builtin", "repos", "spack_repo", "factory");
    fs.mkdirSync(path.join(factory, "packages", "factory_hello"), { recursive: true });
    fs.writeFileSync(path.join(factory, "repo.yaml"), "repo:\n  namespace: factory\n  api: v2.0\n");
    fs.writeFileSync(
      path.join(factory, "packages", "factory_hello", "package.py"),
      `version("1.0", sha256="${"0".repeat(64)}")\ndepends_on("c", type="build")\n`,
    );
    writeEnv(p, ["factory-hello"], { repos: { factory } });

    const first = await run(spackCommands.compilerFind(p), p);
    const fill = { "user-cache": p.userCache };
    expect(first.stderr).toContain(`${real("cloneFailed", fill, 0)}\n${real("cloneFailed", fill, 1)}`);
    expect(first.exitCode).toBe(0);
    expect(first.stdout).toContain("Found no new compilers");
    const clone = path.join(p.userCache, "package_repos", "fncqgg4");
    expect(fs.readdirSync(clone)).toEqual([".git"]);

    const conc = await run(spackCommands.concretize(p), p);
    expect(conc.exitCode).toBe(1);
    expect(conc.stderr).not.toContain("fatal: unable to access");
    expect(conc.stderr).toContain(real("poisonedClone", fill));
    expect(conc.stderr.trim().split("\n").at(-1)).toBe(real("noCompiler"));

    // The old list form without builtin is merged with the defaults: the same clone.
    const q = pathsFor("no-builtin-list");
    writeEnv(q, ["factory-hello"], { repos: [factory] });
    const listed = await run(spackCommands.concretize(q), q);
    expect(listed.exitCode).toBe(1);
    expect(listed.stderr).toContain(real("cloneFailed", { "user-cache": q.userCache }, 1));
    expect(listed.stderr).toContain(real("noCompiler"));
  });

  it("refuses a Package API v2 repository outside a spack_repo/<namespace> path, with a warning", async () => {
    const p = pathsFor("v2-path");
    const repo = path.join(tmp, "v2-path", "repos", "1");
    fs.mkdirSync(path.join(repo, "packages", "site_tool"), { recursive: true });
    fs.writeFileSync(path.join(repo, "repo.yaml"), "repo:\n  namespace: site\n  api: v2.0\n");
    fs.writeFileSync(
      path.join(repo, "packages", "site_tool", "package.py"),
      `version("1.0", sha256="${"0".repeat(64)}")\ndepends_on("c", type="build")\n`,
    );
    writeEnv(p, ["site-tool"], { repos: { builtin: BUILTIN, site: repo } });
    await withCompiler(p);
    const r = await run(spackCommands.concretize(p), p);
    expect(r.stderr).toContain(real("v2PathRule", { repo }));
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("==> Error: Package 'site-tool' not found.");

    // Mounted at .../spack_repo/site it works.
    const good = path.join(tmp, "v2-path", "mounted", "spack_repo", "site");
    fs.cpSync(repo, good, { recursive: true });
    writeEnv(p, ["site-tool"], { repos: { builtin: BUILTIN, site: good } });
    const ok = await run(spackCommands.concretize(p), p);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stderr).not.toContain("disabled");
    expect(nodeNamed(p, "site-tool").hash).toMatch(HASH);
  });

  it("loads a Package API v1 repository anywhere, but only with builtin present", async () => {
    const p = pathsFor("v1-repo");
    const repo = path.join(tmp, "v1-repo", "repos", "0");
    fs.mkdirSync(path.join(repo, "packages", "old-tool"), { recursive: true });
    fs.writeFileSync(path.join(repo, "repo.yaml"), "repo:\n  namespace: oldsite\n");
    fs.writeFileSync(
      path.join(repo, "packages", "old-tool", "package.py"),
      `version("1.0", sha256="${"0".repeat(64)}")\ndepends_on("zlib")\ndepends_on("c", type="build")\n`,
    );
    writeEnv(p, ["old-tool"], { repos: { builtin: BUILTIN, oldsite: repo } });
    await withCompiler(p);
    const ok = await run(spackCommands.concretize(p), p);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(Object.values(readLock(p).concrete_specs).map((n) => n.name)).toContain("zlib");

    const q = pathsFor("v1-repo-alone");
    writeEnv(q, ["old-tool"], { repos: [repo] });
    const bad = await run(spackCommands.compilerFind(q), q);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain(real("v1RepoWithoutBuiltin", { name: "old-tool", namespace: "oldsite" }));
  });
});

describe("spack stand-in: what the build host imposes", () => {
  it("concretizes only with `import clingo`; without it, a bootstrap failure and exit 3", async () => {
    const p = pathsFor("no-clingo");
    writeEnv(p, ["zlib"]);
    await withCompiler(p);
    const empty = path.join(tmp, "no-clingo", "empty-pythonpath");
    fs.mkdirSync(empty, { recursive: true });
    // An interpreter without clingo (SPACK_PYTHON is how Spack's bin/spack is told which python to use).
    const r = await run(spackCommands.concretize(p), p, { PYTHONPATH: empty, SPACK_PYTHON: "/usr/bin/python3" });
    if (r.exitCode === 0) {
      // This host's /usr/bin/python3 has a real clingo: nothing to show here.
      expect(execFileSync("/usr/bin/python3", ["-c", "import clingo; print('ok')"], { encoding: "utf8" }).trim()).toBe(
        "ok",
      );
      return;
    }
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain(
      '==> Error: cannot bootstrap the "clingo" Python module from spec "clingo-bootstrap@spack+python',
    );
    expect(fs.existsSync(path.join(p.envDir, "spack.lock"))).toBe(false);

    // A clingo in Spack's bootstrap store (under SPACK_USER_CACHE_PATH) is found there.
    const pyver = execFileSync("/usr/bin/python3", ["-c", "import sys; print('python%d.%d' % sys.version_info[:2])"], {
      encoding: "utf8",
    }).trim();
    const site = path.join(
      p.userCache,
      "bootstrap",
      "store",
      "linux-x86_64",
      "clingo-bootstrap-spack-abcdefg",
      "lib",
      pyver,
      "site-packages",
    );
    fs.mkdirSync(site, { recursive: true });
    fs.cpSync(path.join(CLINGO_STUB, "clingo"), path.join(site, "clingo"), { recursive: true });
    const ok = await run(spackCommands.concretize(p), p, { PYTHONPATH: empty, SPACK_PYTHON: "/usr/bin/python3" });
    expect(ok.exitCode, ok.stderr).toBe(0);
  });

  it("refuses targets the host cannot run unless host_compatible is false", async () => {
    const host = { SPACK_STANDIN_HOST_TARGET: "zen2" };
    const p = pathsFor("host-compatible");
    writeEnv(p, ["libgreet"], { target: "icelake", hostCompatible: undefined });
    await withCompiler(p);
    const refused = await run(spackCommands.concretize(p), p, host);
    expect(refused.exitCode).toBe(1);
    const lines = refused.stderr.split("\n");
    expect(lines).toContain(real("hostIncompatible (v0.23.1)", { spec: "libgreet" }, 0));
    for (const [n, name] of ["zlib", "gcc-runtime", "libgreet"].entries()) {
      expect(lines).toContain(real("hostIncompatible (v0.23.1)", { n: String(n + 1), name }, 1));
    }
    writeEnv(p, ["libgreet"], { target: "icelake", hostCompatible: true });
    expect((await run(spackCommands.concretize(p), p, host)).exitCode).toBe(1);
    // An ancestor of the host's microarchitecture is fine.
    writeEnv(p, ["libgreet"], { target: "x86_64_v3", hostCompatible: undefined });
    await withCompiler(p);
    expect((await run(spackCommands.concretize(p), p, host)).exitCode).toBe(0);
    writeEnv(p, ["libgreet"], { target: "icelake", hostCompatible: false });
    await withCompiler(p);
    const allowed = await run(spackCommands.concretize(p), p, host);
    expect(allowed.exitCode, allowed.stderr).toBe(0);
  });

  it("fails fetch and install like Spack when the uid has no passwd entry", async (ctx) => {
    if (process.getuid?.() !== 0) ctx.skip();
    // The transcript's uid was 4242; take one that has no passwd entry on this host.
    let uid = 4242;
    while (await isUser(uid)) uid += 1;
    const noEntry = (key: string, index = 0): string => real(key, {}, index).replace("4242", String(uid));
    const base = path.join(tmp, "no-passwd");
    fs.mkdirSync(base, { recursive: true });
    const p = {
      ...pathsFor("no-passwd"),
      sourceCache: path.join(base, "source-cache"),
      ccache: path.join(base, "ccache"),
    };
    writeEnv(p, ["zlib"]);
    await withCompiler(p);
    expect((await run(spackCommands.concretize(p), p)).exitCode).toBe(0);
    fs.mkdirSync(path.join(base, "stage-tmp"));
    fs.mkdirSync(p.ccache);
    execFileSync("chmod", ["-R", "a+rwX", base]);
    execFileSync("chmod", ["a+rwx", tmp]);
    const asUid = { TMPDIR: path.join(base, "stage-tmp"), USER: "builder" };
    const fetch = await run(spackCommands.fetch(p), p, asUid, { uid });
    expect(fetch.exitCode).toBe(3);
    expect(fetch.stderr.trim()).toBe(noEntry("noPasswdEntry (v0.23.1)"));

    const install = await run(spackCommands.install(p, 2), p, asUid, { uid });
    expect(install.exitCode).toBe(1);
    expect(install.stderr).toContain(
      `${noEntry("noPasswdEntryInstall (v0.23.1)", 0)}\n${noEntry("noPasswdEntryInstall (v0.23.1)", 1)}\n`,
    );
    expect(install.stdout).not.toContain("Successfully installed");
  });

  it("appends /<user> to config:build_stage unless the user name is in the path", async () => {
    for (const [stage, expected] of [
      [path.join(tmp, "stages", "plain"), path.join(tmp, "stages", "plain", USER)],
      [path.join(tmp, "stages", `${USER}-stage`), path.join(tmp, "stages", `${USER}-stage`)],
    ] as const) {
      const p = pathsFor(`stage-${path.basename(stage)}`, path.join(tmp, "no-buildcache"));
      writeEnv(p, ["zlib"], { config: { build_stage: [stage] } });
      await withCompiler(p);
      const r = await run(spackCommands.install(p, 2), p, { SPACK_STANDIN_FAIL: "zlib" });
      expect(r.exitCode).toBe(1);
      const zlib = nodeNamed(p, "zlib");
      expect(r.stderr).toContain(
        `See build log for details:\n  ${expected}/spack-stage-${short(zlib)}/spack-build-out.txt`,
      );
    }
  });
});

// Steps of one scenario, in this order even when the tests are shuffled (scripts/test.sh): concretize, build,
// push, then what is done with the buildcache and the view.
describe("spack stand-in: build, buildcache, view", { shuffle: false }, () => {
  let p: SpackPaths;
  let hello: LockNode;
  let libgreet: LockNode;
  let runtime: LockNode;

  beforeAll(async () => {
    p = pathsFor("main");
    writeEnv(p, ["hello", "zlib@1.3.1 ~pic"]);
    await withCompiler(p);
  });

  it("concretizes to a lock file with base32 hashes, parsed variants and a gcc-runtime node", async () => {
    const r = await run(spackCommands.concretize(p), p);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain("==> Concretized 2 specs");
    const lock = readLock(p);
    expect(lock.roots.map((x) => x.spec)).toEqual(["hello", "zlib@1.3.1 ~pic"]);
    const nodes = Object.values(lock.concrete_specs);
    expect(nodes.map((n) => n.name).sort()).toEqual(["gcc", "gcc-runtime", "hello", "libgreet", "zlib"]);
    for (const n of nodes) expect(n.hash).toMatch(HASH);
    expect(nodeNamed(p, "zlib").parameters["pic"]).toBe(false);
    hello = nodeNamed(p, "hello");
    libgreet = nodeNamed(p, "libgreet");
    runtime = nodeNamed(p, "gcc-runtime");
    expect(runtime.version).toBe(GCC_VERSION);
    expect(hello.dependencies?.map((d) => d.name)).toEqual(["gcc", "gcc-runtime", "libgreet"]);
    expect(hello.dependencies?.find((d) => d.name === "gcc-runtime")?.parameters.deptypes).toEqual(["link"]);
  });

  it("builds from source through ccache into padded prefixes, with gcc-runtime in every RPATH", async () => {
    const r = await run(spackCommands.install(p, 2), p);
    expect(r.exitCode, r.stderr).toBe(0);
    const zlib = nodeNamed(p, "zlib");
    expect(r.stdout).toMatch(new RegExp(`==> Installing zlib-1\\.3\\.1-${zlib.hash} \\[\\d/5\\]`));
    expect(r.stdout).toContain("==> Fetching https://spack-standin.invalid/hello/hello-2.12.tar.gz");
    for (const node of [runtime, zlib, libgreet, hello]) {
      expect(r.stdout).toContain(`${real("fromSource", { name: node.name, short: short(node) })}\n`);
      expect(r.stdout).not.toContain(`Extracting ${short(node)}`);
    }
    expect(r.stdout).toContain(`${p.installRoot}/[padded-to-128-chars]/linux-x86_64/hello-2.12-${hello.hash}`);
    expect(r.stdout).not.toContain("__spack_path_placeholder__");

    const prefix = findPrefix(p.installRoot, "hello", hello.hash);
    expect(prefix.indexOf("/linux-x86_64/")).toBe(128);
    const out = execFileSync(path.join(prefix, "bin", "hello"), { encoding: "utf8" });
    expect(out.trim()).toBe("hello@2.12 <libgreet@1.1 <zlib@1.3.1>>");
    const dyn = execFileSync("readelf", ["-d", path.join(prefix, "bin", "hello")], { encoding: "utf8" });
    // DT_RPATH, as Spack's compiler wrapper links (-Wl,--disable-new-dtags): LD_LIBRARY_PATH cannot override it.
    expect(dyn).toMatch(/\(RPATH\)/);
    expect(dyn).not.toMatch(/\(RUNPATH\)/);
    expect(dyn).toContain(`${findPrefix(p.installRoot, "libgreet", libgreet.hash)}/lib`);
    const runtimePrefix = findPrefix(p.installRoot, "gcc-runtime", runtime.hash);
    expect(dyn).toContain(`${runtimePrefix}/lib`);
    const libgcc = execFileSync("gcc", ["-print-file-name=libgcc_s.so.1"], { encoding: "utf8" }).trim();
    expect(fs.readFileSync(path.join(runtimePrefix, "lib", "libgcc_s.so.1"))).toEqual(fs.readFileSync(libgcc));
    expect(fs.readFileSync(path.join(prefix, "lib", "pkgconfig", "hello.pc"), "utf8")).toContain(`prefix=${prefix}\n`);
    expect(fs.existsSync(path.join(prefix, ".spack", "spec.json"))).toBe(true);
    expect(fs.existsSync(path.join(prefix, ".spack", "spack-build-out.txt.gz"))).toBe(true);
    const times = JSON.parse(fs.readFileSync(path.join(prefix, ".spack", "install_times.json"), "utf8"));
    expect(times).toMatchObject({
      cache: false,
      name: "hello",
      hash: hello.hash,
      total: { seconds: expect.any(Number) },
    });
    expect(Array.isArray(times.phases)).toBe(true);
    expect(fs.readFileSync(path.join(p.ccache, "used.log"), "utf8")).toContain("hello.c");
    // Sources land in the source cache under their checksum, as Spack keeps them.
    expect(fs.existsSync(archive(p.sourceCache, sha256Of("hello", "2.12")))).toBe(true);
    expect(fs.existsSync(path.join(p.sourceCache, "hello"))).toBe(false);

    const found = await run(spackCommands.findJson(p), p);
    const records = JSON.parse(found.stdout) as LockNode[];
    expect(records.map((x) => x.hash).sort()).toEqual(Object.keys(readLock(p).concrete_specs).sort());
  });

  it("rewrites a script whose #! line is too long to run through sbang, like Spack", async () => {
    const prefix = findPrefix(p.installRoot, "libgreet", libgreet.hash);
    const sbang = path.join(p.installRoot, "bin", "sbang");
    const script = fs.readFileSync(path.join(prefix, "bin", "libgreet-config"), "utf8").split("\n");
    expect(script[0]).toBe(`#!/bin/sh ${sbang}`);
    expect(script[1]).toBe(`#!${prefix}/libexec/libgreet/sh`);
    expect(script[1]!.length).toBeGreaterThan(127);
    expect(fs.statSync(sbang).mode & 0o111).not.toBe(0);
    const out = execFileSync(path.join(prefix, "bin", "libgreet-config"), ["--prefix"], { encoding: "utf8" });
    expect(out.trim()).toBe(prefix);
    // Short shebangs stay as they are.
    const zlib = findPrefix(p.installRoot, "zlib", nodeNamed(p, "zlib").hash);
    expect(fs.readFileSync(path.join(zlib, "bin", "zlib-config"), "utf8").split("\n")[0]).toBe("#!/bin/sh");
  });

  it("pushes to the buildcache, skips what is there, and refuses to sign without a key", async () => {
    const r = await run(spackCommands.push(p), p);
    expect(r.exitCode, r.stderr).toBe(0);
    // Spack's lines: `[i/n] Pushed name@version/hash7`.
    expect(r.stdout).toMatch(new RegExp(`^==> \\[\\d/\\d\\] Pushed hello@2\\.12/${hello.hash.slice(0, 7)}$`, "m"));
    expect(r.stdout).toContain(` Pushed gcc-runtime@${runtime.version}/${runtime.hash.slice(0, 7)}\n`);
    // Into an empty directory Spack 1.1 warns that layout.json is missing, then writes it.
    const warning = [0, 1, 2, 3].map((i) => real("missingLayoutJson", { mirror: BUILDCACHE_MIRROR }, i));
    expect(r.stderr).toContain(warning.join("\n"));
    expect(JSON.parse(fs.readFileSync(path.join(p.buildcache, "v3", "layout.json"), "utf8"))).toEqual({
      signing: "gpg",
    });
    expect(fs.existsSync(path.join(p.buildcache, "build_cache"))).toBe(false);
    const built = Object.values(readLock(p).concrete_specs).filter((n) => !n.external);
    // One manifest per package at v3/manifests/spec/<name>/<name>-<version>-<hash>.spec.manifest.json, listing the
    // tarball and the gzipped spec file as blobs stored under their sha256.
    const entries = buildcacheEntries(p.buildcache);
    expect(entries.map((e) => path.relative(p.buildcache, e.manifestPath)).sort()).toEqual(
      built.map((n) => `v3/manifests/spec/${n.name}/${short(n)}.spec.manifest.json`).sort(),
    );
    for (const entry of entries) {
      expect(entry.signed).toBe(false);
      expect(entry.version).toBe(3);
      expect(entry.data.map((b) => [b.mediaType, b.compression, b.checksumAlgorithm])).toEqual([
        [TARBALL_TYPE, "gzip", "sha256"],
        [SPEC_TYPE, "gzip", "sha256"],
      ]);
      for (const blob of entry.data) {
        const bytes = fs.readFileSync(blobPath(p.buildcache, blob));
        // Readable by every user of a shared mirror (another container's uid, the factory on the host).
        expect(fs.statSync(blobPath(p.buildcache, blob)).mode & 0o044).toBe(0o044);
        expect(bytes.length).toBe(blob.contentLength);
        expect(createHash("sha256").update(bytes).digest("hex")).toBe(blob.checksum);
        expect(bytes.subarray(0, 2).toString("hex")).toBe("1f8b");
      }
      expect(specDocument(p.buildcache, entry).spec.nodes[0]!.hash).toBe(entry.hash);
    }
    const index = buildcacheIndex(p.buildcache);
    expect(index.database.version).toBe("8");
    expect(Object.keys(index.database.installs).sort()).toEqual(built.map((n) => n.hash).sort());
    const again = await run(spackCommands.push(p), p);
    expect(again.stderr).not.toContain("layout.json");
    expect(again.stdout).not.toContain("Pushed");
    expect(again.stdout).toContain("==> All specs are already in the buildcache. Use --force to overwrite them.");

    const signed = await run([SPACK, "-e", p.envDir, "buildcache", "push", "--update-index", path.join(tmp, "m2")], p);
    expect(signed.exitCode).toBe(1);
    expect(signed.stderr).toContain("==> Error: No default key available for signing");
  });

  it("regenerates a relocated copy view behind an atomically swapped symlink, gcc-runtime included", async () => {
    const r = await run(spackCommands.viewRegenerate(p), p);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(fs.lstatSync(p.viewRoot).isSymbolicLink()).toBe(true);
    const realView = fs.realpathSync(p.viewRoot);
    expect(path.dirname(realView)).toBe(path.join(tmp, "main", "._view"));
    expect(path.basename(realView)).toMatch(HASH);
    const dyn = execFileSync("readelf", ["-d", path.join(realView, "bin", "hello")], { encoding: "utf8" });
    expect(dyn).toContain(`${realView}/lib`);
    expect(dyn).not.toContain("__spack_path_placeholder__");
    expect(fs.existsSync(path.join(realView, "lib", "libgcc_s.so.1"))).toBe(true);
    expect(fs.readFileSync(path.join(realView, "lib", "pkgconfig", "zlib.pc"), "utf8")).toContain(
      `prefix=${realView}\n`,
    );
    const compiled = execFileSync(path.join(realView, "bin", "hello"), ["--prefix"], { encoding: "utf8" }).trim();
    expect(compiled).toMatch(/^\/{2,}/);
    expect(compiled.replace(/^\/+/, "/")).toBe(realView);
    expect(fs.existsSync(path.join(realView, ".spack", "hello", "spec.json"))).toBe(true);
    // Like Spack's views, a sbang script still names the install tree's sbang (only the prefixes are relocated).
    const config = fs.readFileSync(path.join(realView, "bin", "libgreet-config"), "utf8").split("\n");
    expect(config[0]).toBe(`#!/bin/sh ${p.installRoot}/bin/sbang`);
    expect(config[1]).toBe(`#!${realView}/libexec/libgreet/sh`);

    fs.rmSync(p.installRoot, { recursive: true, force: true });
    const out = execFileSync(path.join(p.viewRoot, "bin", "hello"), { encoding: "utf8" });
    expect(out.trim()).toBe("hello@2.12 <libgreet@1.1 <zlib@1.3.1>>");
  });

  it("reinstalls from the buildcache: Extracting, then Successfully installed, and install_times.json says cache", async () => {
    const r = await run(spackCommands.install(p, 2), p);
    expect(r.exitCode, r.stderr).toBe(0);
    for (const node of [runtime, libgreet, hello]) {
      const fill = { name: node.name, short: short(node) };
      expect(r.stdout).toContain(`${real("fromBuildcache", fill, 0)}\n${real("fromBuildcache", fill, 1)}\n`);
      // The spec file and the tarball are read from their blobs, as Spack 1.1 fetches them.
      const entry = buildcacheEntries(p.buildcache).find((e) => e.hash === node.hash)!;
      for (const blob of entry.data) {
        const sha = blob.checksum;
        expect(r.stdout).toContain(real("blobFetch", { buildcache: p.buildcache, "sha:2": sha.slice(0, 2), sha }));
      }
      const times = JSON.parse(
        fs.readFileSync(
          path.join(findPrefix(p.installRoot, node.name, node.hash), ".spack", "install_times.json"),
          "utf8",
        ),
      );
      expect(times.cache).toBe(true);
    }
    expect(r.stdout).not.toContain("Executing phase");
    const prefix = findPrefix(p.installRoot, "hello", hello.hash);
    expect(execFileSync(path.join(prefix, "bin", "hello"), { encoding: "utf8" })).toContain("hello@2.12");
    // sbang came back with the install tree, and the relocated script runs.
    const config = findPrefix(p.installRoot, "libgreet", libgreet.hash);
    expect(execFileSync(path.join(config, "bin", "libgreet-config"), ["--prefix"], { encoding: "utf8" }).trim()).toBe(
      config,
    );
  });

  it("relocates binaries and sbang lines from the buildcache into another install root", async () => {
    const q = pathsFor("elsewhere", p.buildcache);
    writeEnv(q, ["hello", "zlib@1.3.1 ~pic"]);
    await withCompiler(q);
    const r = await run(spackCommands.install(q, 2), q);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`==> Extracting hello-2.12-${hello.hash} from binary cache`);
    const prefix = findPrefix(q.installRoot, "hello", hello.hash);
    const dyn = execFileSync("readelf", ["-d", path.join(prefix, "bin", "hello")], { encoding: "utf8" });
    expect(dyn).toContain(`${findPrefix(q.installRoot, "libgreet", libgreet.hash)}/lib`);
    expect(dyn).not.toContain(p.installRoot);
    const lg = findPrefix(q.installRoot, "libgreet", libgreet.hash);
    expect(fs.readFileSync(path.join(lg, "bin", "libgreet-config"), "utf8").split("\n")[0]).toBe(
      `#!/bin/sh ${q.installRoot}/bin/sbang`,
    );
    fs.rmSync(p.installRoot, { recursive: true, force: true });
    expect(execFileSync(path.join(prefix, "bin", "hello"), ["--prefix"], { encoding: "utf8" }).trim()).toBe(prefix);
  });

  it("reuses the source cache on a second build from source", async () => {
    const q = pathsFor("from-source", path.join(tmp, "empty-buildcache"));
    writeEnv(q, ["hello"]);
    await withCompiler(q);
    const r = await run(spackCommands.install(q, 2), q);
    expect(r.exitCode, r.stderr).toBe(0);
    const sha = sha256Of("hello", "2.12");
    expect(r.stdout).toContain(real("cachedSource", { "source-cache": q.sourceCache, "sha:2": sha.slice(0, 2), sha }));
    expect(r.stdout).not.toContain("==> Fetching");
    expect(r.stdout).toContain("Executing phase: 'build'");
  });

  it("fetches checksummed sources from a mirror only at _source-cache/archive/<sha[:2]>/<sha>", async () => {
    const mirror = path.join(tmp, "source-mirror");
    const q = {
      ...pathsFor("mirror-source", path.join(tmp, "empty-buildcache-3")),
      sourceCache: path.join(tmp, "sc-2"),
    };
    const mirrors = {
      "stack-factory": { url: `file://${q.buildcache}`, signed: false },
      site: { url: `file://${mirror}`, signed: false },
    };
    writeEnv(q, ["zlib"], { mirrors });
    await withCompiler(q);
    const sha = sha256Of("zlib", "1.3.1");
    const tarball = fs.readFileSync(archive(p.sourceCache, sha));
    // The `<name>/<name>-<version>` alias of `spack mirror create` alone is not enough.
    fs.mkdirSync(path.join(mirror, "zlib"), { recursive: true });
    fs.writeFileSync(path.join(mirror, "zlib", "zlib-1.3.1.tar.gz"), tarball);
    const offline = { SPACK_STANDIN_OFFLINE: "1" };
    const alias = await run(spackCommands.install(q, 2), q, offline);
    expect(alias.exitCode).toBe(1);
    expect(alias.stderr).toContain("FetchError: All fetchers failed");
    expect(alias.stderr).toContain(archive(mirror, sha));

    fs.mkdirSync(path.dirname(archive(mirror, sha)), { recursive: true });
    fs.writeFileSync(archive(mirror, sha), tarball);
    const ok = await run(spackCommands.install(q, 2), q, offline);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(real("mirrorSource", { mirror, "sha:2": sha.slice(0, 2), sha }));
    expect(fs.existsSync(archive(q.sourceCache, sha))).toBe(true);
  });

  it("fails like Spack when a build fails, with the stage path and exit 1", async () => {
    const q = pathsFor("failing", path.join(tmp, "empty-buildcache-2"));
    writeEnv(q, ["hello"]);
    await withCompiler(q);
    const r = await run(spackCommands.install(q, 2), q, { SPACK_STANDIN_FAIL: "libgreet" });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("==> Error: ProcessError: Command exited with status 2:");
    const lib = nodeNamed(q, "libgreet");
    const log = path.join(
      tmp,
      "stage-tmp",
      USER,
      "spack-stage",
      `spack-stage-libgreet-1.1-${lib.hash}`,
      "spack-build-out.txt",
    );
    expect(r.stderr).toContain(`See build log for details:\n  ${log}`);
    expect(fs.readFileSync(log, "utf8")).toContain("injected build failure");
    // --fail-fast: zlib was installed, hello never started.
    expect(r.stdout).toContain("Successfully installed zlib");
    expect(r.stdout).not.toContain("Installing hello");
    const found = JSON.parse((await run(spackCommands.findJson(q), q)).stdout) as LockNode[];
    expect(found.map((x) => x.name).sort()).toEqual(["gcc", "gcc-runtime", "zlib"]);
  });
});
