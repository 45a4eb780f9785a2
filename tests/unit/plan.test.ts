import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { parseStack } from "../../src/config/index.js";
import { InputError } from "../../src/errors.js";
import { planBuild } from "../../src/plan/plan.js";
import { BUILD_PREFIX_MIN_LENGTH } from "../../src/plan/paths.js";
import { loadTemplates } from "../../src/render/templates.js";
import { chooseConcurrency } from "../../src/run/concurrency.js";
import { concretizationKey, plannedEnvironments } from "../../src/run/lock-reuse.js";

const templates = await loadTemplates();
const stackText = `
name: slurm
version: "25.05"
specs: ["slurm@25-05-1-1 +pmix", "openmpi@5.0.8 schedulers=slurm"]
targets: [x86_64_v3, zen4]
externals: [cmake, perl]
packages:
  all:
    require: ["build_system=autotools"]
  openssl:
    externals: [{spec: openssl@3.0.13, prefix: /usr}]
`;
const stack = parseStack(stackText, "/stacks/slurm.yaml");

describe("planBuild", () => {
  it("requires each target with packages:all:require and keeps the stack's own requirements", () => {
    const plan = planBuild(stack, undefined, { templates, jobs: 4 });
    expect(plan.targets.map((t) => t.target)).toEqual(["x86_64_v3", "zen4"]);
    for (const t of plan.targets) {
      const env = parse(t.spackYaml) as {
        spack: { packages: { all: { require: string[] }; openssl: unknown }; specs: string[] };
      };
      expect(env.spack.packages.all.require).toEqual(["build_system=autotools", `target=${t.target}`]);
      expect(env.spack.packages.all).not.toHaveProperty("target");
      expect(env.spack.packages.openssl).toEqual({ externals: [{ spec: "openssl@3.0.13", prefix: "/usr" }] });
      expect(env.spack.specs).toEqual(stack.specs);
    }
  });

  it("pads the install tree, sets a copy view and the factory's buildcache", () => {
    const [t] = planBuild(stack, ["zen4"], { templates, jobs: 4 }).targets;
    const env = parse(t!.spackYaml) as { spack: Record<string, any> };
    expect(env.spack["config"].install_tree.padded_length).toBe(220);
    expect(env.spack["view"].default.link_type).toBe("copy");
    expect(env.spack["mirrors"]["stack-factory"]).toEqual({ url: "file:///sf/cache/buildcache", signed: false });
    // The real view path Spack makes, <dir>/._<name>/<hash>, is at least the minimum build prefix length.
    const root = t!.paths.viewRoot;
    const real = `${root.slice(0, root.lastIndexOf("/"))}/._slurm-25.05-zen4/${"x".repeat(32)}`;
    expect(real.length).toBeGreaterThanOrEqual(BUILD_PREFIX_MIN_LENGTH);
    expect(BUILD_PREFIX_MIN_LENGTH - "/view".length).toBeGreaterThanOrEqual(200);
    expect(t!.outputs.dirName).toBe("slurm-25.05-zen4");
  });

  it("orders the steps and passes spec strings as argv, never through a shell", () => {
    const evil = parseStack(
      `name: e\nversion: "1"\nspecs: ["zlib; rm -rf /", "a 'b' \\"c\\""]\ntargets: [x86_64_v3]\n`,
      "/s/e.yaml",
    );
    const [t] = planBuild(evil, undefined, { templates, jobs: 2 }).targets;
    expect(t!.steps.map((s) => s.id)).toEqual([
      "compiler",
      "concretize",
      "fetch",
      "install",
      "keep",
      "push",
      "view",
      "find",
    ]);
    for (const s of t!.steps) {
      expect(s.argv[0]).toBe("/sf/spack/bin/spack");
      expect(s.argv.slice(1, 3)).toEqual(["-e", "/sf/env"]);
    }
    expect(t!.steps.find((s) => s.id === "install")!.argv).toContain("2");
    // The specs reach Spack only through spack.yaml, verbatim.
    expect((parse(t!.spackYaml) as { spack: { specs: string[] } }).spack.specs).toEqual([
      "zlib; rm -rf /",
      `a 'b' "c"`,
    ]);
  });

  it("adds the externals step only when the stack has externals", () => {
    const [t] = planBuild(stack, ["x86_64_v3"], { templates, jobs: 1 }).targets;
    expect(t!.steps.find((s) => s.id === "externals")!.argv.slice(3)).toEqual([
      "external",
      "find",
      "--not-buildable",
      "cmake",
      "perl",
    ]);
  });

  it("is deterministic and tags the builder image by content", () => {
    const a = planBuild(stack, undefined, { templates, jobs: 4 });
    const b = planBuild(parseStack(stackText, "/stacks/slurm.yaml"), undefined, { templates, jobs: 4 });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    const debian = planBuild(
      parseStack(`${stackText}\nbase_image: debian:bookworm\n`, "/stacks/slurm.yaml"),
      undefined,
      { templates, jobs: 4 },
    );
    expect(debian.builder.tag).not.toBe(a.builder.tag);
    expect(debian.builder.files["Dockerfile"]).toMatch(/^FROM debian:bookworm$/m);
    expect(a.builder.files["Dockerfile"]).toMatch(/^FROM ubuntu:24\.04$/m);
    expect(a.builder.files["Dockerfile"]).toContain("patchelf");
    expect(a.builder.tag).toMatch(/^stack-factory\/builder:[0-9a-f]{16}$/);
  });

  it("gives a target the same lock key planned alone and among others, whatever the job count", () => {
    const three = parseStack(
      stackText.replace("targets: [x86_64_v3, zen4]", "targets: [x86_64_v3, zen4, icelake]"),
      "/s/x.yaml",
    );
    const host = { cores: 8, memoryBytes: 64 * 1024 ** 3 };
    const jobsAll = chooseConcurrency({ ...host, targets: 3 }).jobs;
    const jobsOne = chooseConcurrency({ ...host, targets: 1 }).jobs;
    expect(jobsAll).not.toBe(jobsOne);
    const among = planBuild(three, undefined, { templates, jobs: jobsAll }).targets.find((t) => t.target === "zen4")!;
    const alone = planBuild(three, ["zen4"], { templates, jobs: jobsOne }).targets[0]!;
    const keyOf = (files: Record<string, string>) =>
      concretizationKey({
        environments: plannedEnvironments(files),
        spackCommit: "a".repeat(40),
        repoDigests: {},
        imageId: "sha256:1",
      });
    expect(Object.keys(plannedEnvironments(alone.files)).length).toBeGreaterThan(0);
    expect(keyOf(alone.files)).toEqual(keyOf(among.files));
    expect(alone.spackYaml).not.toMatch(/build_jobs/);
    expect(alone.steps.find((s) => s.id === "install")!.argv).toContain(String(jobsOne));
  });

  it("keys the buildcache by base image and compiler", () => {
    const a = planBuild(stack, ["zen4"], { templates, jobs: 4 }).targets[0]!;
    const b = planBuild(parseStack(`${stackText}\nbase_image: debian:bookworm\n`, "/s/x.yaml"), ["zen4"], {
      templates,
      jobs: 4,
    }).targets[0]!;
    expect(a.buildcacheKey).not.toBe(b.buildcacheKey);
    expect(a.mounts.find((m) => m.kind === "buildcache")!.host).toBe(`buildcache/${a.buildcacheKey}`);
  });

  it("refuses targets outside the stack and targets the compiler cannot produce", () => {
    expect(() => planBuild(stack, ["icelake"], { templates, jobs: 1 })).toThrow(/target "icelake" is not in/);
    const old = parseStack(`name: o\nversion: "1"\nspecs: [zlib]\ntargets: [zen5]\ncompiler: gcc@9.4.0\n`, "/s/o.yaml");
    expect(() => planBuild(old, undefined, { templates, jobs: 1 })).toThrow(InputError);
    expect(() => planBuild(old, undefined, { templates, jobs: 1 })).toThrow(/zen5/);
  });

  it("mounts a local Spack checkout read-only", () => {
    const local = parseStack(
      `name: l\nversion: "1"\nspecs: [zlib]\ntargets: [x86_64_v3]\nspack: {source: ../spack}\n`,
      "/stacks/l.yaml",
    );
    const [t] = planBuild(local, undefined, { templates, jobs: 1 }).targets;
    expect(t!.mounts.find((m) => m.kind === "spack")).toEqual({
      kind: "spack",
      host: "/spack",
      hostIsAbsolute: true,
      container: "/sf/spack",
      readOnly: true,
    });
  });
});

describe("planBuild for cache warming", () => {
  it("stops after the push: no view, nothing recorded", () => {
    const [t] = planBuild(stack, ["zen4"], { templates, jobs: 2, mode: "warm" }).targets;
    expect(t!.steps.map((s) => s.id)).toEqual([
      "compiler",
      "externals",
      "concretize",
      "fetch",
      "install",
      "keep",
      "push",
    ]);
  });

  it("serialises source fetches and buildcache pushes with host locks", () => {
    const [t] = planBuild(stack, ["zen4"], { templates, jobs: 2 }).targets;
    expect(t!.steps.find((s) => s.id === "fetch")).toMatchObject({ lock: "source-cache", optional: true });
    expect(t!.steps.find((s) => s.id === "push")!.lock).toBe(`buildcache-${t!.buildcacheKey}`);
  });
});

describe("planBuild with a compiler Spack bootstraps", () => {
  const withCompiler = parseStack(`${stackText}\ncompiler: gcc@13.3.0\n`, "/stacks/slurm.yaml");

  it("builds the compiler for the family's generic target in its own environment, pushes it, then registers it", () => {
    const [t] = planBuild(withCompiler, ["zen4"], { templates, jobs: 2 }).targets;
    expect(t!.steps.map((s) => s.id).slice(0, 6)).toEqual([
      "compiler-install",
      "compiler-keep",
      "compiler-push",
      "compiler-view",
      "compiler",
      "externals",
    ]);
    const compilerEnv = parse(t!.files["/sf/compiler-env/spack.yaml"]!) as { spack: Record<string, any> };
    expect(compilerEnv.spack["specs"]).toEqual(["gcc@13.3.0"]);
    expect(compilerEnv.spack["packages"].all.require).toEqual(["target=x86_64"]);
    expect(compilerEnv.spack["view"].default).toEqual({ root: "/sf/compiler-view", link_type: "symlink" });
    expect(t!.steps.find((s) => s.id === "compiler-install")!.argv.slice(1, 4)).toEqual([
      "-e",
      "/sf/compiler-env",
      "install",
    ]);
    expect(t!.steps.find((s) => s.id === "compiler")!.argv.slice(-3)).toEqual([
      "compiler",
      "find",
      "/sf/compiler-view/bin",
    ]);
    expect(t!.steps.find((s) => s.id === "compiler-push")!.lock).toBe(t!.steps.find((s) => s.id === "push")!.lock);
    const env = parse(t!.spackYaml) as { spack: Record<string, any> };
    expect(env.spack["packages"].all.prefer).toEqual(["%gcc@13.3.0"]);
  });
});
