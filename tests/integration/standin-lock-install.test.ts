/**
 * Installing an environment from its spack.lock, as the factory does when it reuses a concretization and skips the
 * compiler and externals registration. Real Spack 1.1 does not concretize again while the lock names every root of
 * spack.yaml, and builds each node with the compiler and externals its lock nodes name (an external's `path` and
 * `extra_attributes: {compilers: ...}`), whatever spack.yaml's `packages:` says; a compiler the lock names that is
 * gone fails the install. The stand-in must do the same, no kinder. Runs the stand-in on the host (no Docker).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { spackCommands, spackEnvironment, type SpackPaths } from "../../src/spack/contract.js";
import { tempDir } from "./helpers/stack.js";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const SPACK = path.join(FIXTURES, "spack-standin", "bin", "spack");
const BUILTIN = path.join(FIXTURES, "spack-packages", "repos", "spack_repo", "builtin");
const CLINGO_STUB = path.join(FIXTURES, "clingo-standin");

let tmp: string;
/** A compiler directory of its own (`bin/gcc`, `bin/g++`) whose every call is recorded. */
let compilerDir: string;
let calls: string;

function pathsFor(name: string): SpackPaths {
  const base = path.join(tmp, name);
  return {
    spack: SPACK,
    envDir: path.join(base, "env"),
    installRoot: path.join(base, "install"),
    paddedLength: 128,
    viewRoot: path.join(base, "view"),
    sourceCache: path.join(tmp, "source-cache"),
    userCache: path.join(base, "user-cache"),
    buildcache: path.join(base, "buildcache"),
    ccache: path.join(tmp, "ccache"),
  };
}

/** spack.yaml as the factory plans it: no compiler, no externals (registration writes those into `packages:`). */
function planned(p: SpackPaths, specs: string[]): string {
  return YAML.stringify({
    spack: {
      specs,
      concretizer: { unify: true, reuse: true, targets: { host_compatible: false } },
      config: {
        install_tree: { root: p.installRoot, padded_length: p.paddedLength },
        source_cache: p.sourceCache,
        misc_cache: `${p.userCache}/cache`,
        build_jobs: 2,
      },
      packages: { all: { require: ["target=x86_64"] } },
      view: { default: { root: p.viewRoot, link_type: "copy" } },
      repos: { builtin: BUILTIN },
    },
  });
}

function spack(argv: string[], p: SpackPaths) {
  const [file, ...args] = argv;
  return execa(file!, args, {
    reject: false,
    all: true,
    env: { ...spackEnvironment(p), TMPDIR: path.join(tmp, "stage-tmp"), PYTHONPATH: CLINGO_STUB },
  });
}

/** An environment concretized after registering the recording compiler and the external python, then its spack.yaml
 * put back as planned: the lock alone names the compiler and the externals. */
async function concretizedThenPlanned(name: string, specs: string[]): Promise<SpackPaths> {
  const p = pathsFor(name);
  fs.mkdirSync(p.envDir, { recursive: true });
  fs.writeFileSync(path.join(p.envDir, "spack.yaml"), planned(p, specs));
  for (const argv of [
    spackCommands.compilerFind(p, [compilerDir]),
    spackCommands.externalFind(p, ["python"]),
    spackCommands.concretize(p),
  ]) {
    const r = await spack(argv, p);
    expect(r.exitCode, r.all).toBe(0);
  }
  const registered = YAML.parse(fs.readFileSync(path.join(p.envDir, "spack.yaml"), "utf8"));
  expect(registered.spack.packages.gcc.externals[0].extra_attributes.compilers.c).toBe(
    path.join(compilerDir, "bin", "gcc"),
  );
  expect(registered.spack.packages.python.externals).toHaveLength(1);
  fs.writeFileSync(path.join(p.envDir, "spack.yaml"), planned(p, specs));
  return p;
}

beforeAll(async () => {
  tmp = await tempDir("standin-lock-install");
  compilerDir = path.join(tmp, "recording-gcc");
  calls = path.join(tmp, "compiler-calls.log");
  fs.mkdirSync(path.join(compilerDir, "bin"), { recursive: true });
  for (const [name, real] of [
    ["gcc", "gcc"],
    ["g++", "g++"],
  ] as const) {
    const exe = path.join(compilerDir, "bin", name);
    const target = (await execa("sh", ["-c", `command -v ${real}`])).stdout.trim();
    fs.writeFileSync(exe, `#!/bin/sh\necho "${name} $*" >> '${calls}'\nexec '${target}' "$@"\n`, { mode: 0o755 });
  }
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("install from a spack.lock, with nothing registered in spack.yaml", () => {
  it("does not concretize again and builds with the lock's compiler and external python", async () => {
    const p = await concretizedThenPlanned("from-lock", ["glib"]);
    const lock = fs.readFileSync(path.join(p.envDir, "spack.lock"));
    fs.rmSync(calls, { force: true });
    const r = await spack(spackCommands.install(p, 2), p);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).not.toMatch(/Concretized|Compilers have been configured automatically/);
    expect(fs.readFileSync(path.join(p.envDir, "spack.lock")).equals(lock)).toBe(true);
    // Compiled by the compiler the lock names, which is not on PATH and not in spack.yaml.
    expect(fs.readFileSync(calls, "utf8")).toMatch(/^gcc .*-O2/m);
    expect(r.all).toMatch(/python-venv: Successfully installed python-venv-/);
    expect(r.all).toMatch(/glib: Successfully installed glib-/);
  });

  it("refuses to build when the compiler the lock names is gone, as Spack does", async () => {
    const p = await concretizedThenPlanned("compiler-gone", ["zlib"]);
    const gcc = path.join(compilerDir, "bin", "gcc");
    const saved = fs.readFileSync(gcc);
    fs.rmSync(gcc);
    try {
      const r = await spack(spackCommands.install(p, 2), p);
      expect(r.exitCode).toBe(1);
      expect(r.all).toContain(`CompilerError: the C compiler ${gcc} of`);
      expect(r.all).toMatch(/Terminating after first install failure/);
      expect(r.all).not.toMatch(/Successfully installed zlib-/);
    } finally {
      fs.writeFileSync(gcc, saved, { mode: 0o755 });
    }
  });
});
