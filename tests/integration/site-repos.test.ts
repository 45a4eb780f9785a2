/**
 * A site's package repository overrides builtin recipes: Spack takes a package from the first repository of the
 * merged `repos:` that has it, so the stack's repositories come first, in the order the stack lists them, and builtin
 * last. Shown end to end with examples/site-override.yaml (the site's `zlib`, of another version than builtin's,
 * under libgreet from builtin, lands in the tarball, and the manifest names where each package came from) and at the
 * stand-in (two site repositories with the same package: the one the stack lists first wins).
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { Manifest } from "../../src/package/manifest.js";
import type { RunReport } from "../../src/run/report.js";
import { environmentConfig, repoMountPath, spackCommands, spackEnvironment } from "../../src/spack/contract.js";
import type { SpackPaths } from "../../src/spack/contract.js";
import { runCli } from "./helpers/cli.js";
import { requireEngine, requireTestImage } from "./helpers/engine.js";
import { SPACK_PACKAGES, STANDIN, tempDir } from "./helpers/stack.js";

const BUILTIN = join(SPACK_PACKAGES, "repos", "spack_repo", "builtin");
const CLINGO = join(STANDIN, "..", "clingo-standin");
let work: string;

/** The sha256 of the source the stand-in makes for a package version (its recipes must carry it). */
async function standinChecksum(name: string, version: string, deps: string[] = []): Promise<string> {
  const { stdout } = await execa("python3", [
    "-c",
    "import sys, json, hashlib; sys.path.insert(0, sys.argv[1]); from standin.build import source_tarball; " +
      "print(hashlib.sha256(source_tarball(sys.argv[2], sys.argv[3], {'deps': json.loads(sys.argv[4])})).hexdigest())",
    join(STANDIN, "lib"),
    name,
    version,
    JSON.stringify(deps),
  ]);
  return stdout.trim();
}

/** A Package API v2 repository of one `zlib` recipe of this version, at `dir` (namespace: its last component). */
async function zlibRepo(dir: string, namespace: string, version: string): Promise<string> {
  await mkdir(join(dir, "packages", "zlib"), { recursive: true });
  await writeFile(join(dir, "repo.yaml"), `repo:\n  namespace: ${namespace}\n  api: v2.0\n`);
  const sha = await standinChecksum("zlib", version);
  await writeFile(
    join(dir, "packages", "zlib", "package.py"),
    [
      `# The ${namespace} site's zlib: another version than builtin's.`,
      `version("${version}", sha256="${sha}")`,
      `variant("shared", default=True, description="shared")`,
      `depends_on("c", type="build")`,
      "",
    ].join("\n"),
  );
  return dir;
}

beforeAll(async () => {
  work = await tempDir("site-repos");
});

describe("a site repository before builtin", () => {
  it("builds the site's recipe of a builtin package into the tarball, and the manifest names its namespace", async () => {
    await requireTestImage(await requireEngine());
    await execa("npm", ["run", "build"], { stdio: "ignore" });
    // examples/site-override.yaml: examples/site-repo/ has zlib 1.3.1-site, builtin has 1.3.1 and 1.2.13.
    const dir = join(work, "build");
    const report = join(dir, "report.json");
    const out = join(dir, "out");
    const stackFile = resolve("examples/site-override.yaml");
    const run = await runCli(["build", stackFile, "--cache-dir", join(dir, "cache"), "--out", out, "--report", report]);
    expect(run.exitCode, run.all).toBe(0);
    const [t] = (JSON.parse(await readFile(report, "utf8")) as RunReport).targets;
    expect(
      t?.built.some((p) => p.startsWith("zlib-1.3.1-site-")),
      JSON.stringify(t?.built),
    ).toBe(true);

    await execa("tar", ["-xzf", t!.tarball!, "-C", dir]);
    const top = join(dir, "site-override-1.0-x86_64_v3");
    const manifest = JSON.parse(await readFile(join(top, "manifest.json"), "utf8")) as Manifest;
    const zlib = manifest.specs.find((s) => s.name === "zlib");
    expect(zlib).toMatchObject({ version: "1.3.1-site", namespace: "site" });
    expect(manifest.specs.find((s) => s.name === "libgreet")).toMatchObject({ namespace: "builtin" });
    expect(manifest.specs.find((s) => s.name === "libgreet")?.dependencies).toContainEqual({
      name: "zlib",
      hash: zlib!.hash,
    });
    // The view holds the site's build, and libgreet was built against it.
    expect(await readFile(join(top, "view", "share", "zlib", "README"), "utf8")).toMatch(
      /^zlib@1\.3\.1-site, installed/,
    );
    expect(await readFile(join(top, "view", "lib", "pkgconfig", "libgreet.pc"), "utf8")).toMatch(/^Requires: zlib$/m);
    const sbom = JSON.parse(await readFile(join(top, "sbom.cdx.json"), "utf8")) as {
      components: { name: string; properties?: { name: string; value: string }[] }[];
    };
    expect(sbom.components.find((c) => c.name === "zlib")?.properties).toContainEqual({
      name: "spack:namespace",
      value: "site",
    });
  });

  it("takes a package from the stack's first repository that has it (the stand-in searches as Spack does)", async () => {
    const base = join(work, "order");
    const repos = join(base, "repos");
    const first = await zlibRepo(repoMountPath(repos, "first"), "first", "7.0");
    const second = await zlibRepo(repoMountPath(repos, "second"), "second", "8.0");
    const p: SpackPaths = {
      spack: join(STANDIN, "bin", "spack"),
      envDir: join(base, "env"),
      installRoot: join(base, "install"),
      paddedLength: 0,
      viewRoot: join(base, "view"),
      sourceCache: join(base, "source-cache"),
      userCache: join(base, "user-cache"),
      buildcache: join(base, "buildcache"),
      ccache: join(base, "ccache"),
    };
    const versionOf = async (extra: { namespace: string; path: string }[]) => {
      await mkdir(p.envDir, { recursive: true });
      const env = environmentConfig(p, {
        specs: ["libgreet"],
        target: "x86_64",
        compilerSpec: undefined,
        packages: {},
        repos: { generation: "v1", builtin: BUILTIN, extra },
        mirrors: {},
      });
      await writeFile(join(p.envDir, "spack.yaml"), stringify(env));
      const r = await execa(spackCommands.concretize(p)[0]!, spackCommands.concretize(p).slice(1), {
        reject: false,
        env: { ...spackEnvironment(p), PYTHONPATH: CLINGO },
      });
      expect(r.exitCode, r.stderr).toBe(0);
      const lock = JSON.parse(await readFile(join(p.envDir, "spack.lock"), "utf8")) as {
        concrete_specs: Record<string, { name: string; version: string; namespace: string }>;
      };
      const zlib = Object.values(lock.concrete_specs).find((n) => n.name === "zlib");
      return `${zlib?.namespace}.zlib@${zlib?.version}`;
    };
    expect(
      await versionOf([
        { namespace: "first", path: first },
        { namespace: "second", path: second },
      ]),
    ).toBe("first.zlib@7.0");
    expect(
      await versionOf([
        { namespace: "second", path: second },
        { namespace: "first", path: first },
      ]),
    ).toBe("second.zlib@8.0");
    // Without a site repository that has it, builtin's.
    expect(await versionOf([])).toBe("builtin.zlib@1.3.1");
  });
});
