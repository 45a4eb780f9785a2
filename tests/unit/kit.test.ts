/** The pure parts of kits: kit.json's parser, coverage, the stack and plans pointed at a kit. */
import { createWriteStream, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { pack } from "tar-stream";
import { describe, expect, it } from "vitest";
import { savedImageTags } from "../../src/docker/image-file.js";
import { parse } from "yaml";
import { parseStack } from "../../src/config/index.js";
import { InputError } from "../../src/errors.js";
import { kitGaps } from "../../src/kit/coverage.js";
import { kitCreatePlan, planWithKit } from "../../src/kit/kit-plan.js";
import { stackFromKit } from "../../src/kit/kit-stack.js";
import { KIT_LAYOUT, sourceArchivePath } from "../../src/kit/layout.js";
import { parseKitManifest, serializeKitManifest, type KitManifest } from "../../src/kit/manifest.js";
import { planBuild } from "../../src/plan/plan.js";
import { loadTemplates } from "../../src/render/templates.js";

const templates = await loadTemplates();
const stack = parseStack(
  `
name: demo
version: "1.0"
specs: [hello]
targets: [x86_64_v3, zen4]
spack: { source: /srv/spack, builtin: { source: /srv/spack-packages } }
`,
  "/stacks/demo.yaml",
);
const SHA = "a".repeat(64);
const ZLIB = sourceArchivePath("1b".padEnd(64, "0"));

function manifest(over: Partial<KitManifest> = {}): KitManifest {
  return {
    format_version: 1,
    created_at: "2026-12-07T00:00:00.000Z",
    stack: { name: "demo", version: "1.0", file: "demo.yaml", sha256: SHA },
    targets: ["x86_64_v3", "zen4"],
    generation: "v1",
    spack: { path: "spack", origin: "local checkout", commit: "unknown" },
    spack_packages: {
      path: "spack-packages",
      origin: "local checkout",
      commit: "unknown",
      builtin: "spack-packages/repos/spack_repo/builtin",
    },
    specs: {
      x86_64_v3: [
        { name: "zlib", version: "1.3.1", hash: "abcdefghabcdefghabcdefghabcdefgh", source: ZLIB },
        { name: "gcc-runtime", version: "12.2.0", hash: "bbcdefghabcdefghabcdefghabcdefgh" },
      ],
      zen4: [{ name: "zlib", version: "1.3.1", hash: "cbcdefghabcdefghabcdefghabcdefgh", source: ZLIB }],
    },
    images: [{ family: "x86_64", tag: "stack-factory/builder:0123456789abcdef", file: KIT_LAYOUT.image("x86_64") }],
    repos: [],
    mirrors: [],
    bootstrap: "bootstrap",
    files: { [ZLIB]: SHA },
    ...over,
  };
}

const everything = () => true;

describe("kit.json", () => {
  it("round-trips and sorts its files", () => {
    const m = manifest({ files: { "z/b": SHA, "a/b": SHA } });
    const text = serializeKitManifest(m);
    expect(Object.keys(JSON.parse(text).files)).toEqual(["a/b", "z/b"]);
    expect(parseKitManifest(text, "kit.json")).toEqual({ ...m, files: { "a/b": SHA, "z/b": SHA } });
  });

  it("refuses paths that leave the kit, unknown keys and another format, naming the field", () => {
    const bad = (m: unknown) => () => parseKitManifest(JSON.stringify(m), "/kits/k/kit.json");
    expect(bad({ ...manifest(), files: { "../etc/passwd": SHA } })).toThrow(/files/);
    expect(bad({ ...manifest(), spack: { path: "/srv/spack", origin: "x", commit: "y" } })).toThrow(
      /spack\.path: a relative path inside the kit/,
    );
    expect(bad({ ...manifest(), images: [{ family: "x86_64", tag: "t", file: "images/../../x.tar" }] })).toThrow(
      /images\.0\.file/,
    );
    expect(bad({ ...manifest(), extra: 1 })).toThrow(InputError);
    expect(bad({ ...manifest(), format_version: 2 })).toThrow(/format_version/);
    expect(() => parseKitManifest("{", "/kits/k/kit.json")).toThrow(/\/kits\/k\/kit.json: not JSON/);
  });
});

describe("kitGaps", () => {
  it("is empty when the kit covers the stack", () => {
    expect(kitGaps({ kit: manifest(), stack, stackSha256: SHA, present: everything })).toEqual([]);
  });

  it("names a missing source with its spec and target, once per target that needs it", () => {
    const gaps = kitGaps({ kit: manifest(), stack, stackSha256: SHA, present: (p) => p !== ZLIB });
    expect(gaps).toEqual([
      `source of zlib@1.3.1 (target x86_64_v3) is missing: ${ZLIB}`,
      `source of zlib@1.3.1 (target zen4) is missing: ${ZLIB}`,
    ]);
    expect(
      kitGaps({ kit: manifest(), stack, stackSha256: SHA, targets: ["zen4"], present: (p) => p !== ZLIB }),
    ).toHaveLength(1);
  });

  it("names another stack file, a target, the image and the checkouts the kit lacks", () => {
    const kit = manifest({ targets: ["x86_64_v3"], specs: { x86_64_v3: [] }, images: [] });
    const gaps = kitGaps({ kit, stack, stackSha256: "b".repeat(64), present: () => false });
    expect(gaps[0]).toMatch(/^the kit was made for another stack file: demo\.yaml \(demo 1\.0/);
    expect(gaps).toContain("the Spack checkout is missing: spack/bin/spack");
    expect(gaps).toContain(
      "the builtin package repository is missing: spack-packages/repos/spack_repo/builtin/repo.yaml",
    );
    expect(gaps).toContain("target zen4 is not in the kit (it has: x86_64_v3)");
    expect(gaps).toContain("the builder image for x86_64 is not in the kit");
  });
});

describe("a stack and a plan from a kit", () => {
  it("takes Spack, builtin and the source mirror from the kit", () => {
    const s = stackFromKit(stack, manifest(), "/media/kit");
    expect(s.spack.origin).toEqual({ kind: "local", path: "/media/kit/spack" });
    expect(s.spack.builtin).toEqual({ kind: "local", path: "/media/kit/spack-packages/repos/spack_repo/builtin" });
    expect(s.spack.mirrors).toEqual({ "kit-sources": "/media/kit/mirror" });
    const plan = planBuild(s, undefined, { templates, jobs: 2 });
    const env = parse(plan.targets[0]!.spackYaml) as { spack: { mirrors: Record<string, { url: string }> } };
    expect(env.spack.mirrors["kit-sources"]?.url).toBe("file:///sf/mirrors/kit-sources");
    const withCache = stackFromKit(stack, manifest({ buildcache: "buildcache" }), "/media/kit");
    expect(withCache.spack.mirrors).toEqual({
      "kit-sources": "/media/kit/mirror",
      "kit-buildcache": "/media/kit/buildcache",
    });
  });

  it("planWithKit trusts the kit's bootstrap source in every environment and mounts it read-only", () => {
    const plan = planWithKit(planBuild(stack, undefined, { templates, jobs: 2 }), "/media/kit");
    for (const t of plan.targets) {
      const env = parse(t.spackYaml) as { spack: { bootstrap: unknown } };
      expect(env.spack.bootstrap).toEqual({
        sources: [{ name: "kit-binaries", metadata: "/sf/kit/bootstrap/metadata/binaries" }],
        trusted: { "kit-binaries": true },
      });
      expect(parse(t.files[`${t.envDir}/spack.yaml`] as string)).toEqual(parse(t.spackYaml));
      expect(t.mounts).toContainEqual({
        kind: "mirror",
        host: "/media/kit/bootstrap",
        hostIsAbsolute: true,
        container: "/sf/kit/bootstrap",
        readOnly: true,
      });
    }
  });

  it("kitCreatePlan concretizes as the build does, then mirrors; the bootstrap mirror once", () => {
    const warm = planBuild(stack, undefined, { templates, jobs: 2, mode: "warm" });
    const plan = kitCreatePlan(warm, "/kits/new");
    expect(plan.targets.map((t) => t.steps.map((s) => s.id))).toEqual([
      ["compiler", "concretize", "mirror", "bootstrap-mirror"],
      ["compiler", "concretize", "mirror"],
    ]);
    // The same environments as the build's, so the build's kept locks are reused.
    expect(plan.targets.map((t) => t.files)).toEqual(warm.targets.map((t) => t.files));
    expect(plan.targets[0]!.steps[2]!.argv).toEqual([
      "/sf/spack/bin/spack",
      "-e",
      "/sf/env",
      ...["mirror", "create", "-d", "/sf/kit-out/mirror", "--all"],
    ]);
    const built = parseStack(
      `name: c\nversion: "1"\nspecs: [zlib]\ntargets: [x86_64_v3]\ncompiler: gcc@13.3.0\nspack: { source: /srv/spack, builtin: { source: /srv/sp } }\n`,
      "/stacks/c.yaml",
    );
    const withCompiler = kitCreatePlan(planBuild(built, undefined, { templates, jobs: 2, mode: "warm" }), "/k");
    const mirrors = withCompiler.targets[0]!.steps.filter((s) => s.id === "mirror").map((s) => s.argv[2]);
    expect(mirrors).toEqual(["/sf/compiler-env", "/sf/env"]);
    expect(plan.targets[0]!.mounts.at(-1)).toEqual({
      kind: "mirror",
      host: "/kits/new",
      hostIsAbsolute: true,
      container: "/sf/kit-out",
      readOnly: false,
    });
  });
});

describe("a kit's builder image file", () => {
  /** A small archive in `docker save`'s shape with these members. */
  async function saved(members: Record<string, string>): Promise<string> {
    const file = join(mkdtempSync(join(tmpdir(), "sf-kit-image-")), "image.tar");
    const tar = pack();
    for (const [name, body] of Object.entries(members)) tar.entry({ name, mtime: new Date(0) }, body);
    tar.finalize();
    await pipeline(tar, createWriteStream(file));
    return file;
  }

  it("is read for every tag a load would give, from manifest.json and the legacy repositories file", async () => {
    const tag = "stack-factory/builder:0123456789abcdef";
    expect(
      await savedImageTags(await saved({ "blobs/x": "layer", "manifest.json": JSON.stringify([{ RepoTags: [tag] }]) })),
    ).toEqual([tag]);
    const sneaky = await saved({
      "manifest.json": JSON.stringify([{ RepoTags: [tag] }, { RepoTags: ["ubuntu:24.04"] }]),
      repositories: JSON.stringify({ debian: { bookworm: "abc" } }),
    });
    expect(await savedImageTags(sneaky)).toEqual([tag, "ubuntu:24.04", "debian:bookworm"]);
  });
});
