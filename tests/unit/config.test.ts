import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadStack, parseStack } from "../../src/config/index.js";
import { ConfigError, InputError } from "../../src/errors.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const fixtures = path.join(root, "tests/fixtures/stacks");
const fixture = (name: string) => path.join(fixtures, name);

/** The issues of the ConfigError `run` throws (fails the test if it throws anything else or nothing). */
function issuesOf(run: () => unknown): readonly string[] {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues;
  }
  throw new Error("expected a ConfigError, nothing was thrown");
}

const REQUIRED = 'name: s\nversion: "1"\nspecs: [zlib]\ntargets: [x86_64_v3]\n';
const parse = (extra: string, file = "stack.yaml") => parseStack(REQUIRED + extra, file);

describe("defaults", () => {
  it("fills every optional field of a minimal stack", () => {
    const file = fixture("minimal.yaml");
    const stack = parseStack(textOf("minimal.yaml"), file);
    expect(stack).toEqual({
      file,
      dir: fixtures,
      name: "mini",
      version: "2.0",
      description: "",
      specs: ["zlib"],
      targets: ["x86_64_v3"],
      base_image: "ubuntu:24.04",
      compiler: { kind: "os", packages: ["gcc", "g++", "gfortran"] },
      spack: {
        origin: { kind: "git", url: "https://github.com/spack/spack.git", ref: "v1.1.0" },
        generation: "v1",
        // Spack v1.1.0 pins this spack-packages branch in its defaults.
        builtin: { kind: "git", url: "https://github.com/spack/spack-packages.git", ref: "releases/v2025.11" },
        repos: [],
        mirrors: {},
      },
      packages: {},
      externals: [],
      prefix: "/opt/mini/2.0",
      modules: { name: "mini", env: {}, systems: ["lmod", "tcl"] },
      assets: [],
    });
  });

  it("defaults the spack ref when only a url is given", () => {
    const stack = parse("spack:\n  url: https://example.org/fork/spack.git\n");
    expect(stack.spack.origin).toEqual({ kind: "git", url: "https://example.org/fork/spack.git", ref: "v1.1.0" });
  });

  it("defaults the module name but keeps the given env, and vice versa", () => {
    expect(parse("modules:\n  env:\n    A_B: x\n").modules).toEqual({
      name: "s",
      env: { A_B: "x" },
      systems: ["lmod", "tcl"],
    });
    expect(parse("modules:\n  name: other\n").modules).toEqual({ name: "other", env: {}, systems: ["lmod", "tcl"] });
  });

  it("writes Lmod and Tcl modules unless modules.systems names one", () => {
    expect(parse("modules:\n  systems: [tcl]\n").modules.systems).toEqual(["tcl"]);
    expect(parse("modules:\n  systems: [lmod, lmod]\n").modules.systems).toEqual(["lmod"]);
    expect(issuesOf(() => parse("modules:\n  systems: [lua]\n"))).toEqual([
      'stack.yaml:6:13 modules.systems[0]: "lua" is not a module system (allowed: lmod, tcl)',
    ]);
    expect(issuesOf(() => parse("modules:\n  systems: []\n"))[0]).toContain("modules.systems");
  });

  it("makes the file and dir absolute from a relative file name", () => {
    const stack = parseStack(REQUIRED, "some/dir/stack.yaml");
    expect(stack.file).toBe(path.resolve("some/dir/stack.yaml"));
    expect(stack.dir).toBe(path.resolve("some/dir"));
  });
});

describe("every field set", () => {
  it("reads the full fixture and resolves relative paths against the stack's directory", () => {
    const file = fixture("full.yaml");
    const stack = parseStack(textOf("full.yaml"), file);
    expect(stack.version).toBe("3.10");
    expect(stack.description).toBe("every key set");
    expect(stack.specs).toEqual(["zlib@1.3.1", "hdf5 +mpi ^openmpi"]);
    expect(stack.targets).toEqual(["zen4", "icelake"]);
    expect(stack.base_image).toBe("rockylinux:9");
    expect(stack.compiler).toEqual({ kind: "spack", spec: "gcc@13.3.0", name: "gcc", version: "13.3.0" });
    expect(stack.spack).toEqual({
      origin: { kind: "local", path: path.resolve(fixtures, "../spack-checkout") },
      generation: "v1",
      builtin: { kind: "git", url: "https://github.com/spack/spack-packages.git", ref: "develop" },
      repos: [
        { path: path.join(fixtures, "repos/site"), namespace: "site" },
        { path: "/srv/spack/repos/extra", namespace: "extra" },
      ],
      mirrors: {
        local: path.join(fixtures, "mirror-dir"),
        site: "https://mirror.example.org/spack",
        nfs: "/srv/mirror",
      },
    });
    expect(stack.packages).toEqual({
      all: { prefer: ["%gcc"] },
      openmpi: { variants: "+internal-pmix", require: ["@5"] },
    });
    expect(stack.externals).toEqual(["cmake", "perl"]);
    expect(stack.prefix).toBe("/sw/full");
    expect(stack.modules).toEqual({
      name: "full-stack",
      env: { FULL_HOME: "/sw/full", OMP_NUM_THREADS: "4" },
      systems: ["lmod", "tcl"],
    });
    expect(stack.assets).toEqual([path.join(fixtures, "assets/full.conf"), "/etc/hosts"]);
  });

  it("keeps version and name as written when YAML would read them as numbers", () => {
    const stack = parseStack("name: 2024\nversion: 25.05\nspecs: [zlib]\ntargets: [x86_64_v3]\n", "s.yaml");
    expect(stack.version).toBe("25.05");
    expect(stack.name).toBe("2024");
    expect(stack.prefix).toBe("/opt/2024/25.05");
    expect(parseStack("name: a\nversion: 1.10\nspecs: [zlib]\ntargets: [x86_64_v3]\n", "s.yaml").version).toBe("1.10");
  });

  it("accepts each compiler form", () => {
    expect(parse("compiler: os\n").compiler).toEqual({ kind: "os", packages: ["gcc", "g++", "gfortran"] });
    expect(parse("compiler: { spec: gcc@12.4.0 }\n").compiler).toEqual({
      kind: "spack",
      spec: "gcc@12.4.0",
      name: "gcc",
      version: "12.4.0",
    });
    expect(parse("compiler: { os: { packages: [gcc-13, g++-13] } }\n").compiler).toEqual({
      kind: "os",
      packages: ["gcc-13", "g++-13"],
    });
    expect(parse("compiler: { os: {} }\n").compiler).toEqual({ kind: "os", packages: ["gcc", "g++", "gfortran"] });
    expect(parse("compiler: llvm@19.1.0\n").compiler).toMatchObject({ kind: "spack", name: "llvm", version: "19.1.0" });
  });

  it("expands YAML anchors and merge keys in packages", () => {
    const stack = parse("packages:\n  openmpi: &p\n    require: ['@5']\n  mpich:\n    <<: *p\n    buildable: false\n");
    expect(stack.packages).toEqual({ openmpi: { require: ["@5"] }, mpich: { require: ["@5"], buildable: false } });
  });
});

describe("errors", () => {
  it("reports unknown keys at top level and nested, at the key, with the allowed keys", () => {
    const found = issuesOf(() => parseStack(textOf("bad-unknown-keys.yaml"), "bad-unknown-keys.yaml"));
    expect(found).toHaveLength(3);
    expect(found[0]).toBe(
      'bad-unknown-keys.yaml:5:1 colour: unknown key "colour" (allowed keys: name, version, description, specs, targets, ' +
        "base_image, compiler, spack, packages, externals, prefix, modules, assets)",
    );
    expect(found[1]).toBe(
      'bad-unknown-keys.yaml:8:3 spack.branch: unknown key "branch" (allowed keys: url, ref, source, builtin, repos, mirrors)',
    );
    expect(found[2]).toBe(
      'bad-unknown-keys.yaml:12:3 modules.path: unknown key "path" (allowed keys: name, env, systems)',
    );
  });

  it("reports wrong types, all at once, in file order", () => {
    const issues = issuesOf(() => parseStack(textOf("bad-types.yaml"), "stacks/bad-types.yaml"));
    expect(issues).toEqual([
      "stacks/bad-types.yaml:1:7 name: expected name as a string, got a list",
      'stacks/bad-types.yaml:3:8 specs: expected a list of Spack specs, got "zlib"',
      "stacks/bad-types.yaml:4:10 targets: expected at least one of microarchitecture names, got an empty list",
      "stacks/bad-types.yaml:5:13 base_image: expected an image reference such as ubuntu:24.04, got number 42",
      'stacks/bad-types.yaml:6:12 externals: expected a list of Spack package names, got "cmake"',
      'stacks/bad-types.yaml:7:9 prefix: expected an absolute path starting with "/", got "relative/path"',
      "stacks/bad-types.yaml:8:11 packages: expected a map of package name to settings, got a list",
    ]);
  });

  it("reports an unknown target with suggestions and a duplicate target, each at its own entry", () => {
    const issues = issuesOf(() => parseStack(textOf("bad-targets.yaml"), "bad-targets.yaml"));
    expect(issues).toHaveLength(2);
    expect(issues[0]).toMatch(
      /^bad-targets\.yaml:7:5 targets\[2\]: unknown microarchitecture "zen7" \(did you mean .*zen4.*\?\)$/,
    );
    expect(issues[1]).toBe('bad-targets.yaml:8:5 targets[3]: duplicate target "zen4" (already at index 1)');
  });

  it("reports missing required keys at the enclosing map", () => {
    const issues = issuesOf(() => parseStack("\n\ndescription: no\nname: x\n", "m.yaml"));
    expect(issues).toEqual([
      'm.yaml:3:1 version: missing required key "version"',
      'm.yaml:3:1 specs: missing required key "specs"',
      'm.yaml:3:1 targets: missing required key "targets"',
    ]);
  });

  it.each([
    ["../x", "name"],
    ["a b", "name"],
    [".hidden", "name"],
    ["-rf", "name"],
    ["a/b", "version"],
    ["1..2", "version"],
    ["", "version"],
  ])("refuses the unsafe name %j in %s", (bad, key) => {
    const text = REQUIRED.replace(new RegExp(`^${key}: .*$`, "m"), `${key}: ${JSON.stringify(bad)}`);
    const issues = issuesOf(() => parseStack(text, "n.yaml"));
    expect(issues).toHaveLength(1);
    expect(issues[0]).toContain(` ${key}: `);
    expect(issues[0]).toContain(`${JSON.stringify(bad)} is not a safe ${key}`);
  });

  it("reports every YAML syntax error with its position", () => {
    const issues = issuesOf(() => parseStack(textOf("bad-syntax.yaml"), "bad-syntax.yaml"));
    expect(issues.length).toBeGreaterThan(1);
    for (const issue of issues) expect(issue).toMatch(/^bad-syntax\.yaml:4:\d+: \S/);
    expect(issues[0]).toMatch(/^bad-syntax\.yaml:4:1: Flow sequence .* must be sufficiently indented/);
    expect(issues.some((i) => i.startsWith("bad-syntax.yaml:4:10: "))).toBe(true);
  });

  it("reports duplicate keys as YAML errors", () => {
    const issues = issuesOf(() => parseStack(`${REQUIRED}name: again\n`, "d.yaml"));
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(/^d\.yaml:5:1: .*unique/i);
  });

  it("refuses an empty document and a document that is not a map", () => {
    expect(issuesOf(() => parseStack("", "e.yaml"))).toEqual([
      "e.yaml:1:1: the stack file is empty; it needs at least name, version, specs and targets",
    ]);
    expect(issuesOf(() => parseStack("# only a comment\n", "e.yaml"))[0]).toContain("the stack file is empty");
    expect(issuesOf(() => parseStack("\n- a\n- b\n", "l.yaml"))).toEqual([
      "l.yaml:2:1: the stack file must be a map of keys (name, version, specs, targets, ...), got a list",
    ]);
  });

  it("refuses bad compilers with the accepted forms named", () => {
    expect(issuesOf(() => parse("compiler: gcc\n"))).toEqual([
      'stack.yaml:5:11 compiler: "gcc" is not a compiler: use "os" or a Spack compiler spec name@version such as "gcc@13.3.0"',
    ]);
    expect(issuesOf(() => parse("compiler: 3\n"))).toEqual([
      'stack.yaml:5:11 compiler: expected "os", a compiler spec such as "gcc@13.3.0" or a map; got number 3',
    ]);
    expect(issuesOf(() => parse("compiler: { spec: gcc@13.3.0, os: {} }\n"))).toEqual([
      'stack.yaml:5:11 compiler: takes exactly one of "spec" or "os"',
    ]);
    expect(issuesOf(() => parse("compiler: { version: 13 }\n"))[0]).toMatch(
      /^stack\.yaml:5:13 compiler\.version: unknown key "version" \(allowed keys: spec, os\)/,
    );
  });

  it("refuses url with source, ref with source, a reserved mirror name and bad env names", () => {
    expect(issuesOf(() => parse("spack:\n  url: https://x/spack.git\n  source: ./spack\n"))).toEqual([
      'stack.yaml:6:3 spack: takes either "url" (with "ref") or "source" (a Spack checkout), not both',
    ]);
    expect(issuesOf(() => parse("spack:\n  ref: v1.0.0\n  source: ./spack\n"))[0]).toContain(
      '"ref" applies to a git "url"',
    );
    expect(issuesOf(() => parse("spack:\n  mirrors:\n    stack-factory: /m\n"))).toEqual([
      'stack.yaml:7:5 spack.mirrors.stack-factory: mirror name "stack-factory" is reserved for the factory\'s buildcache',
    ]);
    expect(issuesOf(() => parse("modules:\n  env:\n    1BAD: x\n"))).toEqual([
      'stack.yaml:7:5 modules.env["1BAD"]: "1BAD" is not a valid environment variable name',
    ]);
  });

  it("refuses empty specs, duplicate externals and assets that would collide", () => {
    expect(
      issuesOf(() => parseStack('name: s\nversion: "1"\nspecs: [zlib, ""]\ntargets: [x86_64_v3]\n', "s.yaml")),
    ).toEqual(["s.yaml:3:15 specs[1]: expected a Spack spec, got an empty string"]);
    expect(issuesOf(() => parse("externals: [cmake, perl, cmake]\n"))).toEqual([
      'stack.yaml:5:26 externals[2]: duplicate external "cmake" (already at index 0)',
    ]);
    expect(issuesOf(() => parse("assets: [a/x.conf, b/x.conf]\n"))).toEqual([
      'stack.yaml:5:20 assets[1]: duplicate asset file name "x.conf" (already at index 0)',
    ]);
  });

  it("refuses lists where maps are expected", () => {
    expect(issuesOf(() => parse("modules: [x]\n"))).toEqual([
      "stack.yaml:5:10 modules: expected a map with keys name, env, systems; got a list",
    ]);
    expect(issuesOf(() => parse("spack: { mirrors: [a] }\n"))).toEqual([
      "stack.yaml:5:19 spack.mirrors: expected a map of mirror name to URL or path, got a list",
    ]);
  });

  it("refuses a package setting that is not a map, pointing into packages", () => {
    expect(issuesOf(() => parse("packages:\n  zlib: 1.3\n"))).toEqual([
      "stack.yaml:6:9 packages.zlib: expected a map of Spack package settings, got number 1.3",
    ]);
  });

  it("names the file as given, in the message of the thrown error too", () => {
    try {
      parseStack("name: x\n", "./rel/dir/x.yaml");
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const e = error as ConfigError;
      expect(e.exitCode).toBe(2);
      expect(e.message.startsWith("./rel/dir/x.yaml: 3 problems\n")).toBe(true);
      for (const issue of e.issues) expect(issue.startsWith("./rel/dir/x.yaml:1:1 ")).toBe(true);
    }
  });
});

describe("loadStack", () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), "stack-factory-config-"));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("loads both examples", async () => {
    const slurm = await loadStack(path.join(root, "examples/slurm.yaml"));
    expect(slurm.name).toBe("slurm");
    expect(slurm.version).toBe("25.05");
    expect(slurm.targets).toEqual(["x86_64_v3", "zen4", "icelake"]);
    expect(slurm.prefix).toBe("/opt/slurm/25.05");
    expect(slurm.modules.env).toEqual({ SLURM_CONF: "/etc/slurm/slurm.conf" });
    expect(slurm.externals).toContain("autoconf");
    expect(slurm.specs.some((s) => s.startsWith("slurm@"))).toBe(true);
    const hello = await loadStack(path.join(root, "examples/hello.yaml"));
    expect(hello).toMatchObject({ name: "hello", version: "1.0", specs: ["zlib"], targets: ["x86_64_v3"] });
  });

  it("reports a missing file as an InputError naming the path as given", async () => {
    const missing = path.join(work, "nope.yaml");
    await expect(loadStack(missing)).rejects.toThrow(new InputError(`cannot read stack file ${missing}: no such file`));
    await expect(loadStack(missing)).rejects.not.toBeInstanceOf(ConfigError);
  });

  it("reports a directory given as the stack file", async () => {
    await expect(loadStack(work)).rejects.toThrow(/cannot read stack file .*: it is a directory/);
  });

  it("resolves relative paths against the stack file and checks that they exist", async () => {
    const dir = path.join(work, "site");
    await mkdir(path.join(dir, "assets"), { recursive: true });
    await mkdir(path.join(dir, "repo"), { recursive: true });
    await writeFile(path.join(dir, "repo", "repo.yaml"), "repo:\n  namespace: site_pkgs\n  api: v2.0\n");
    await writeFile(path.join(dir, "assets/slurm.conf"), "ClusterName=test\n");
    const file = path.join(dir, "stack.yaml");
    await writeFile(file, `${REQUIRED}spack:\n  repos: [repo]\nassets: [assets/slurm.conf]\n`);
    const stack = await loadStack(file);
    expect(stack.assets).toEqual([path.join(dir, "assets/slurm.conf")]);
    expect(stack.spack.repos).toEqual([{ path: path.join(dir, "repo"), namespace: "site_pkgs" }]);

    await writeFile(
      file,
      `${REQUIRED}spack:\n  source: ./no-spack\n  mirrors:\n    m: assets\nassets: [assets/slurm.conf, assets/missing.conf, repo]\n`,
    );
    const error = await loadStack(file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toEqual([
      `${file}:6:11 spack.source: Spack checkout ${path.join(dir, "no-spack")} does not exist`,
      `${file}:9:29 assets[1]: asset ${path.join(dir, "assets/missing.conf")} does not exist`,
      `${file}:9:50 assets[2]: asset ${path.join(dir, "repo")} is not a file`,
    ]);
  });
});

function textOf(name: string): string {
  return readFileSync(fixture(name), "utf8");
}

describe("values that reach other tools", () => {
  it("refuses OS package names that are not package names, option-like git values and quoting characters in prefix", () => {
    const text = [
      "name: x",
      'version: "1"',
      "specs: [zlib]",
      "targets: [x86_64_v3]",
      'compiler: { os: { packages: ["gcc; curl x|sh"] } }',
      'spack: { url: "--upload-pack=evil", ref: "-x" }',
      'prefix: /opt/a"b',
    ].join("\n");
    let message = "";
    try {
      parseStack(text, "tools.yaml");
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(
      /tools\.yaml:5:30 compiler\.os\.packages\[0\]: "gcc; curl x\|sh" is not a Debian package name/,
    );
    expect(message).toMatch(/tools\.yaml:6:15 spack\.url: must not start with '-'/);
    expect(message).toMatch(/tools\.yaml:6:42 spack\.ref: must not start with '-'/);
    expect(message).toMatch(/tools\.yaml:7:9 prefix: must not contain quotes/);
  });

  it("accepts ordinary package names with versions", () => {
    const stack = parseStack(
      'name: x\nversion: "1"\nspecs: [zlib]\ntargets: [x86_64_v3]\ncompiler: { os: { packages: [g++-13, "gfortran=4:12.2.0-3"] } }\n',
      "ok.yaml",
    );
    expect(stack.compiler).toEqual({ kind: "os", packages: ["g++-13", "gfortran=4:12.2.0-3"] });
  });
});
