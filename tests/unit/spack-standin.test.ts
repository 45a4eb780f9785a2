import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import {
  environmentConfig,
  spackCommands,
  spackEnvironment,
  type EnvironmentInput,
  type SpackPaths,
} from "../../src/spack/contract.js";

const SPACK = fileURLToPath(new URL("../fixtures/spack-standin/bin/spack", import.meta.url));
const HASH = /^[a-z2-7]{32}$/;

let tmp: string;
let fakeBin: string;

function pathsFor(name: string, buildcache = path.join(tmp, "buildcache")): SpackPaths {
  const base = path.join(tmp, name);
  return {
    spack: SPACK,
    envDir: path.join(base, "env"),
    installRoot: path.join(base, "install"),
    paddedLength: 128,
    viewRoot: path.join(base, "view"),
    sourceCache: path.join(tmp, "source-cache"),
    userCache: path.join(tmp, "user-cache"),
    buildcache,
    ccache: path.join(tmp, "ccache"),
  };
}

function writeEnv(p: SpackPaths, specs: string[]): void {
  const input: EnvironmentInput = {
    specs,
    target: "x86_64",
    compilerSpec: undefined,
    packages: {},
    repos: [],
    mirrors: {},
    jobs: 2,
  };
  fs.mkdirSync(p.envDir, { recursive: true });
  fs.writeFileSync(path.join(p.envDir, "spack.yaml"), YAML.stringify(environmentConfig(p, input)));
}

async function run(argv: string[], p?: SpackPaths, extraEnv: Record<string, string> = {}) {
  const [file, ...args] = argv;
  return execa(file!, args, {
    reject: false,
    env: {
      ...(p ? spackEnvironment(p) : {}),
      PATH: `${fakeBin}:${process.env["PATH"] ?? ""}`,
      TMPDIR: path.join(tmp, "stage-tmp"),
      ...extraEnv,
    },
  });
}

/** The install prefix `<...>/<name>-<version>-<hash>` under `root`. */
function findPrefix(root: string, name: string, hash: string): string {
  const hits = (fs.readdirSync(root, { recursive: true }) as string[]).filter((rel) =>
    rel.endsWith(`/${name}`) ? false : path.basename(rel).match(new RegExp(`^${name}-[^-]+-${hash}$`)),
  );
  expect(hits).toHaveLength(1);
  return path.join(root, hits[0]!);
}

interface LockNode {
  name: string;
  version: string;
  hash: string;
  parameters: Record<string, unknown>;
  dependencies?: { name: string; hash: string }[];
}
function readLock(p: SpackPaths): { roots: { hash: string; spec: string }[]; concrete_specs: Record<string, LockNode> } {
  return JSON.parse(fs.readFileSync(path.join(p.envDir, "spack.lock"), "utf8"));
}
function nodeNamed(p: SpackPaths, name: string): LockNode {
  const node = Object.values(readLock(p).concrete_specs).find((n) => n.name === name);
  expect(node, `${name} in spack.lock`).toBeDefined();
  return node!;
}

beforeAll(() => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "spack-standin-")));
  fakeBin = path.join(tmp, "fake-bin");
  fs.mkdirSync(fakeBin);
  fs.mkdirSync(path.join(tmp, "stage-tmp"));
  // A ccache that records its use and runs the compiler: proves compiles go through ccache when `ccache: true`.
  fs.writeFileSync(
    path.join(fakeBin, "ccache"),
    `#!/bin/sh\necho "$@" >> "$CCACHE_DIR/used.log"\nexec "$@"\n`,
    { mode: 0o755 },
  );
  fs.mkdirSync(path.join(tmp, "ccache"));
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("spack stand-in: command surface", () => {
  it("prints its version", async () => {
    const r = await run([SPACK, "--version"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+ \(stand-in\)$/);
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
    writeEnv(p, ["zlib"]);
    const file = path.join(p.envDir, "spack.yaml");
    fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("  config:\n", "  config:\n    no_such_key: 1\n"));
    const bad = await run(spackCommands.concretize(p), p);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain("no_such_key");

    writeEnv(p, ["no-such-package"]);
    const unknown = await run(spackCommands.concretize(p), p);
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toContain("==> Error: Package 'no-such-package' not found.");
  });

  it("registers the host compiler and warns about externals it cannot find", async () => {
    const p = pathsFor("detect");
    writeEnv(p, ["zlib"]);
    const gccVersion = execFileSync("gcc", ["-dumpfullversion"], { encoding: "utf8" }).trim();
    const found = await run(spackCommands.compilerFind(p), p);
    expect(found.exitCode).toBe(0);
    expect(found.stdout).toContain("==> Added 1 new compiler to");
    expect(found.stdout).toContain(`gcc@${gccVersion}`);
    const again = await run(spackCommands.compilerFind(p), p);
    expect(again.stdout).toContain("Found no new compilers");

    const ext = await run(spackCommands.externalFind(p, ["json-c"]), p);
    expect(ext.exitCode).toBe(0);
    expect(ext.stderr).toContain("==> Warning:");
  });
});

describe("spack stand-in: build, buildcache, view", () => {
  let p: SpackPaths;
  let hello: LockNode;
  let libgreet: LockNode;

  beforeAll(() => {
    p = pathsFor("main");
    writeEnv(p, ["hello", "zlib@1.3.1 ~pic"]);
  });

  it("concretizes to a lock file with 32-character base32 hashes and parsed variants", async () => {
    const r = await run(spackCommands.concretize(p), p);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain("==> Concretized 2 specs");
    const lock = readLock(p);
    expect(lock.roots.map((x) => x.spec)).toEqual(["hello", "zlib@1.3.1 ~pic"]);
    const nodes = Object.values(lock.concrete_specs);
    expect(nodes.map((n) => n.name).sort()).toEqual(["hello", "libgreet", "zlib"]);
    for (const n of nodes) expect(n.hash).toMatch(HASH);
    expect(nodeNamed(p, "zlib").parameters["pic"]).toBe(false);
    hello = nodeNamed(p, "hello");
    libgreet = nodeNamed(p, "libgreet");
    expect(hello.dependencies?.map((d) => d.hash)).toEqual([libgreet.hash]);
  });

  it("builds from source with gcc through ccache into padded prefixes with RPATHs into the install tree", async () => {
    const r = await run(spackCommands.install(p, 2), p);
    expect(r.exitCode, r.stderr).toBe(0);
    const zlib = nodeNamed(p, "zlib");
    expect(r.stdout).toContain(`==> Installing zlib-1.3.1-${zlib.hash} [1/3]`);
    expect(r.stdout).toContain(`==> Installing hello-2.12-${hello.hash} [3/3]`);
    expect(r.stdout).toContain("==> Fetching https://spack-standin.invalid/zlib/zlib-1.3.1.tar.gz");
    expect(r.stdout).toContain(`${p.installRoot}/[padded-to-128-chars]/linux-x86_64/hello-2.12-${hello.hash}`);
    expect(r.stdout).not.toContain("__spack_path_placeholder__");

    const prefix = findPrefix(p.installRoot, "hello", hello.hash);
    expect(prefix.indexOf("/linux-x86_64/")).toBe(128);
    const out = execFileSync(path.join(prefix, "bin", "hello"), { encoding: "utf8" });
    expect(out.trim()).toBe("hello@2.12 <libgreet@1.1 <zlib@1.3.1>>");
    const dyn = execFileSync("readelf", ["-d", path.join(prefix, "bin", "hello")], { encoding: "utf8" });
    const libgreetPrefix = findPrefix(p.installRoot, "libgreet", libgreet.hash);
    expect(dyn).toMatch(/\((?:RUNPATH|RPATH)\)/);
    expect(dyn).toContain(`${libgreetPrefix}/lib`);
    expect(fs.readFileSync(path.join(prefix, "lib", "pkgconfig", "hello.pc"), "utf8")).toContain(`prefix=${prefix}\n`);
    expect(fs.existsSync(path.join(prefix, ".spack", "spec.json"))).toBe(true);
    expect(fs.existsSync(path.join(prefix, ".spack", "spack-build-out.txt.gz"))).toBe(true);
    expect(fs.readFileSync(path.join(p.ccache, "used.log"), "utf8")).toContain("hello.c");
    expect(fs.existsSync(path.join(p.sourceCache, "hello", "hello-2.12.tar.gz"))).toBe(true);

    const found = await run(spackCommands.findJson(p), p);
    const records = JSON.parse(found.stdout) as LockNode[];
    expect(records.map((x) => x.hash).sort()).toEqual(Object.keys(readLock(p).concrete_specs).sort());
  });

  it("pushes to the buildcache, skips what is there, and refuses to sign without a key", async () => {
    const r = await run(spackCommands.push(p), p);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`==> Pushed hello-2.12-${hello.hash}`);
    const index = JSON.parse(fs.readFileSync(path.join(p.buildcache, "build_cache", "index.json"), "utf8"));
    expect(Object.keys(index.database.installs).sort()).toEqual(Object.keys(readLock(p).concrete_specs).sort());
    const again = await run(spackCommands.push(p), p);
    expect(again.stdout).not.toContain("==> Pushed");
    expect(again.stdout).toContain(`Skipped hello-2.12-${hello.hash}`);

    const signed = await run([SPACK, "-e", p.envDir, "buildcache", "push", "--update-index", path.join(tmp, "m2")], p);
    expect(signed.exitCode).toBe(1);
    expect(signed.stderr).toContain("==> Error: No default key available for signing");
  });

  it("regenerates a relocated copy view behind an atomically swapped symlink", async () => {
    const r = await run(spackCommands.viewRegenerate(p), p);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(fs.lstatSync(p.viewRoot).isSymbolicLink()).toBe(true);
    const real = fs.realpathSync(p.viewRoot);
    expect(path.dirname(real)).toBe(path.join(tmp, "main", "._view"));
    expect(path.basename(real)).toMatch(HASH);
    const dyn = execFileSync("readelf", ["-d", path.join(real, "bin", "hello")], { encoding: "utf8" });
    expect(dyn).toContain(`${real}/lib`);
    expect(dyn).not.toContain("__spack_path_placeholder__");
    expect(fs.readFileSync(path.join(real, "lib", "pkgconfig", "zlib.pc"), "utf8")).toContain(`prefix=${real}\n`);
    // The compiled-in prefix keeps its length: leading slashes, then the real view path.
    const compiled = execFileSync(path.join(real, "bin", "hello"), ["--prefix"], { encoding: "utf8" }).trim();
    expect(compiled).toMatch(/^\/{2,}/);
    expect(compiled.replace(/^\/+/, "/")).toBe(real);
    expect(fs.existsSync(path.join(real, ".spack", "hello", "spec.json"))).toBe(true);

    // The view works without the install tree.
    fs.rmSync(p.installRoot, { recursive: true, force: true });
    const out = execFileSync(path.join(p.viewRoot, "bin", "hello"), { encoding: "utf8" });
    expect(out.trim()).toBe("hello@2.12 <libgreet@1.1 <zlib@1.3.1>>");
  });

  it("reinstalls from the buildcache into a wiped install tree", async () => {
    const r = await run(spackCommands.install(p, 2), p);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`==> Extracting hello-2.12-${hello.hash} from binary cache`);
    expect(r.stdout).not.toContain("Executing phase");
    const prefix = findPrefix(p.installRoot, "hello", hello.hash);
    expect(execFileSync(path.join(prefix, "bin", "hello"), { encoding: "utf8" })).toContain("hello@2.12");
  });

  it("relocates binaries from the buildcache into another install root", async () => {
    const q = pathsFor("elsewhere", p.buildcache);
    writeEnv(q, ["hello", "zlib@1.3.1 ~pic"]);
    const r = await run(spackCommands.install(q, 2), q);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`==> Extracting hello-2.12-${hello.hash} from binary cache`);
    const prefix = findPrefix(q.installRoot, "hello", hello.hash);
    const dyn = execFileSync("readelf", ["-d", path.join(prefix, "bin", "hello")], { encoding: "utf8" });
    expect(dyn).toContain(`${findPrefix(q.installRoot, "libgreet", libgreet.hash)}/lib`);
    expect(dyn).not.toContain(p.installRoot);
    // Same hashes whatever the install root: the root is not part of the hash.
    fs.rmSync(p.installRoot, { recursive: true, force: true });
    expect(execFileSync(path.join(prefix, "bin", "hello"), ["--prefix"], { encoding: "utf8" }).trim()).toBe(prefix);
  });

  it("reuses the source cache on a second build from source", async () => {
    const q = pathsFor("from-source", path.join(tmp, "empty-buildcache"));
    writeEnv(q, ["hello"]);
    const r = await run(spackCommands.install(q, 2), q);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`==> Using cached archive: ${q.sourceCache}/hello/hello-2.12.tar.gz`);
    expect(r.stdout).not.toContain("==> Fetching");
    expect(r.stdout).toContain("Executing phase: 'build'");
  });

  it("fails like Spack when a build fails, with the stage path and exit 1", async () => {
    const q = pathsFor("failing", path.join(tmp, "empty-buildcache-2"));
    writeEnv(q, ["hello"]);
    const r = await run(spackCommands.install(q, 2), q, { SPACK_STANDIN_FAIL: "libgreet" });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("==> Error: ProcessError: Command exited with status 2:");
    const lib = nodeNamed(q, "libgreet");
    const user = os.userInfo().username;
    const log = path.join(tmp, "stage-tmp", user, "spack-stage", `spack-stage-libgreet-1.1-${lib.hash}`,
      "spack-build-out.txt");
    expect(r.stderr).toContain(`See build log for details:\n  ${log}`);
    expect(fs.readFileSync(log, "utf8")).toContain("injected build failure");
    // --fail-fast: zlib was installed, hello never started.
    expect(r.stdout).toContain("Successfully installed zlib");
    expect(r.stdout).not.toContain("Installing hello");
    const found = JSON.parse((await run(spackCommands.findJson(q), q)).stdout) as LockNode[];
    expect(found.map((x) => x.name)).toEqual(["zlib"]);
  });
});
