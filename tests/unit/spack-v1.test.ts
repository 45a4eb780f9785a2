/** Spack v1.x as the factory meets it: builtin repository, repository paths, foreign targets, honest counts. */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadStack, parseStack } from "../../src/config/index.js";
import { pinOfReposYaml } from "../../src/config/inspect.js";
import { generationOfRef, pinnedSpackPackagesRef } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";
import { planBuild } from "../../src/plan/plan.js";
import { loadTemplates } from "../../src/render/templates.js";
import { passwdEntryArgv } from "../../src/run/passwd-entry.js";
import { reposConfig, summariseInstallLog } from "../../src/spack/contract.js";

const REQUIRED = "name: s\nversion: '1'\nspecs: [zlib]\ntargets: [x86_64_v3, icelake]\n";
const log = (name: string) => readFile(path.resolve("tests/fixtures/spack-logs", name), "utf8");
const issuesOf = async (promise: Promise<unknown>): Promise<string[]> => {
  const error = await promise.catch((e: unknown) => e);
  if (!(error instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String(error)}`);
  return [...error.issues];
};
const yamlOf = (text: string) => parse(text) as { spack: Record<string, any> };

let work: string;
let templates: Awaited<ReturnType<typeof loadTemplates>>;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "sf-spack-v1-"));
  templates = await loadTemplates();
});
afterAll(() => rm(work, { recursive: true, force: true }));

/** A directory tree from a map of relative path → content. */
async function tree(root: string, files: Record<string, string>): Promise<string> {
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await writeFile(path.join(root, rel), content);
  }
  return root;
}

describe("which Spack and which builtin packages", () => {
  it("tells Spack 0.2x from 1.x by the ref and pins spack-packages like each v1 release does", () => {
    expect(generationOfRef("v0.23.1")).toBe("v0");
    expect(generationOfRef("releases/v0.22")).toBe("v0");
    expect(generationOfRef("v1.1.0")).toBe("v1");
    expect(generationOfRef("develop")).toBe("v1");
    expect(pinnedSpackPackagesRef("v1.1.0")).toBe("releases/v2025.11");
    expect(pinnedSpackPackagesRef("v1.0.2")).toBe("releases/v2025.07");
    expect(pinnedSpackPackagesRef("develop")).toBe("develop");
  });

  it("reads the pin from a checkout's repos.yaml defaults", () => {
    const pin = pinOfReposYaml(
      "repos:\n  builtin:\n    git: https://example.org/spack-packages.git\n    branch: releases/v2025.11\n",
    );
    expect(pin).toEqual({ kind: "git", url: "https://example.org/spack-packages.git", ref: "releases/v2025.11" });
    expect(pinOfReposYaml("repos: [a]\n")).toBeUndefined();
  });

  it("refuses spack.builtin with a Spack 0.2x ref, naming the field", () => {
    expect(() => parseStack(`${REQUIRED}spack:\n  ref: v0.23.1\n  builtin: { source: /x }\n`, "stack.yaml")).toThrow(
      /stack\.yaml:7:3 spack\.builtin: Spack 0\.2x keeps its builtin packages inside the checkout/,
    );
  });

  it("refuses command transports and option-like URLs for Spack and spack-packages", () => {
    for (const url of ["ext::sh -c touch% /tmp/pwned", "fd::17", "-u evil", "https://x/a.git\nb"]) {
      expect(() => parseStack(`${REQUIRED}spack:\n  url: ${JSON.stringify(url)}\n`, "stack.yaml")).toThrow(
        /spack\.url/,
      );
      expect(() => parseStack(`${REQUIRED}spack:\n  builtin: { url: ${JSON.stringify(url)} }\n`, "stack.yaml")).toThrow(
        /spack\.builtin\.url/,
      );
    }
    for (const url of [
      "https://github.com/spack/spack.git",
      "ssh://git@host/spack.git",
      "git@github.com:spack/spack.git",
      "file:///srv/spack.git",
    ]) {
      expect(parseStack(`${REQUIRED}spack:\n  url: ${JSON.stringify(url)}\n`, "stack.yaml").spack.origin).toMatchObject(
        { url },
      );
    }
  });
});

describe("local checkouts, read before anything runs", () => {
  it("finds builtin inside a spack-packages checkout and each repository's namespace", async () => {
    const dir = path.join(work, "a");
    await tree(dir, {
      "spack/bin/spack": "#!/bin/sh\n",
      "spack-packages/repos/spack_repo/builtin/repo.yaml": "repo:\n  namespace: builtin\n  api: v2.0\n",
      "site/repo.yaml": "repo:\n  namespace: site_x\n  api: v2.0\n",
    });
    await writeFile(
      path.join(dir, "stack.yaml"),
      `${REQUIRED}spack:\n  source: spack\n  builtin: { source: spack-packages }\n  repos: [site]\n`,
    );
    const stack = await loadStack(path.join(dir, "stack.yaml"));
    expect(stack.spack.generation).toBe("v1");
    expect(stack.spack.builtin).toEqual({
      kind: "local",
      path: path.join(dir, "spack-packages/repos/spack_repo/builtin"),
    });
    expect(stack.spack.repos).toEqual([{ path: path.join(dir, "site"), namespace: "site_x" }]);

    const plan = planBuild(stack, undefined, { templates, jobs: 2 });
    for (const target of plan.targets) {
      const env = yamlOf(target.spackYaml).spack;
      expect(env["repos"]).toEqual({
        builtin: "/sf/spack-packages/repos/spack_repo/builtin",
        site_x: "/sf/repos/spack_repo/site_x",
      });
      const builtin = target.mounts.find((m) => m.kind === "spack-packages");
      expect(builtin).toMatchObject({
        host: path.join(dir, "spack-packages/repos/spack_repo/builtin"),
        readOnly: true,
      });
      expect(builtin?.container).toMatch(/\/spack_repo\/builtin$/);
      expect(target.mounts.find((m) => m.kind === "repo")).toMatchObject({
        host: path.join(dir, "site"),
        container: "/sf/repos/spack_repo/site_x",
        readOnly: true,
      });
    }
  });

  it("takes a Spack v1 checkout's own pin when spack.builtin is not given, and clones it into the cache", async () => {
    const dir = path.join(work, "b");
    await tree(dir, {
      "spack/bin/spack": "#!/bin/sh\n",
      "spack/etc/spack/defaults/repos.yaml":
        "repos:\n  builtin:\n    git: https://github.com/spack/spack-packages.git\n    branch: releases/v2025.11\n",
    });
    await writeFile(path.join(dir, "stack.yaml"), `${REQUIRED}spack:\n  source: spack\n`);
    const stack = await loadStack(path.join(dir, "stack.yaml"));
    expect(stack.spack.builtin).toEqual({
      kind: "git",
      url: "https://github.com/spack/spack-packages.git",
      ref: "releases/v2025.11",
    });
    const plan = planBuild(stack, ["x86_64_v3"], { templates, jobs: 2 });
    const mount = plan.targets[0]!.mounts.find((m) => m.kind === "spack-packages");
    expect(mount).toMatchObject({ hostIsAbsolute: false, container: "/sf/spack-packages", readOnly: true });
    expect(mount?.host).toMatch(/^spack-packages\/releases-v2025\.11_[0-9a-f]{12}$/);
    expect(plan.builtin).toEqual(stack.spack.builtin);
  });

  it("recognises Spack 0.2x by its layout: list form of repos, no builtin", async () => {
    const dir = path.join(work, "c");
    await tree(dir, {
      "spack/bin/spack": "#!/bin/sh\n",
      "spack/var/spack/repos/builtin/repo.yaml": "repo:\n  namespace: builtin\n",
      "site/repo.yaml": "repo:\n  namespace: site\n",
    });
    await writeFile(path.join(dir, "stack.yaml"), `${REQUIRED}spack:\n  source: spack\n  repos: [site]\n`);
    const stack = await loadStack(path.join(dir, "stack.yaml"));
    expect(stack.spack.generation).toBe("v0");
    expect(stack.spack.builtin).toBeUndefined();
    const plan = planBuild(stack, ["x86_64_v3"], { templates, jobs: 2 });
    expect(yamlOf(plan.targets[0]!.spackYaml).spack["repos"]).toEqual(["/sf/repos/spack_repo/site"]);
    expect(plan.targets[0]!.mounts.some((m) => m.kind === "spack-packages")).toBe(false);

    await writeFile(path.join(dir, "stack.yaml"), `${REQUIRED}spack:\n  source: spack\n  builtin: { source: site }\n`);
    expect(await issuesOf(loadStack(path.join(dir, "stack.yaml")))).toEqual([
      expect.stringMatching(
        /:7:3 spack\.builtin: .* is Spack 0\.2x, which keeps its builtin packages inside the checkout/,
      ),
    ]);
  });

  it("refuses what is not a Spack checkout, a spack-packages checkout or a repository, all at once", async () => {
    const dir = path.join(work, "d");
    await tree(dir, {
      "notspack/README": "x\n",
      "notpkgs/README": "x\n",
      "norepo/packages/.keep": "",
      "r1/repo.yaml": "repo:\n  namespace: same\n",
      "r2/repo.yaml": "repo:\n  namespace: same\n",
      "r3/repo.yaml": "repo:\n  namespace: builtin\n",
    });
    await writeFile(
      path.join(dir, "stack.yaml"),
      `${REQUIRED}spack:\n  source: notspack\n  builtin: { source: notpkgs }\n  repos: [norepo, r1, r2, r3]\n`,
    );
    const issues = await issuesOf(loadStack(path.join(dir, "stack.yaml")));
    expect(issues).toEqual([
      expect.stringMatching(/:6:11 spack\.source: .*notspack is not a Spack checkout: it has no bin\/spack$/),
      expect.stringMatching(/:7:22 spack\.builtin\.source: .*notpkgs is not a spack-packages checkout/),
      expect.stringMatching(/spack\.repos\[0\]: .*norepo is not a Spack package repository: it has no repo\.yaml$/),
      expect.stringMatching(/spack\.repos\[2\]: namespace "same" is already taken by spack\.repos\[1\]$/),
      expect.stringMatching(
        /spack\.repos\[3\]: .* has namespace builtin: give Spack's builtin packages as spack\.builtin\.source$/,
      ),
    ]);
  });
});

describe("every environment", () => {
  it("lets foreign targets concretize (host_compatible: false), the compiler's environment too", () => {
    const stack = parseStack(`${REQUIRED}compiler: gcc@13.3.0\n`, "stack.yaml");
    const plan = planBuild(stack, undefined, { templates, jobs: 2 });
    for (const target of plan.targets) {
      const yamls = Object.entries(target.files).filter(([p]) => p.endsWith("spack.yaml"));
      expect(yamls.length).toBe(2);
      for (const [, text] of yamls)
        expect(yamlOf(text).spack["concretizer"]).toMatchObject({ targets: { host_compatible: false } });
    }
  });

  it("never writes the list form that leaves builtin to be cloned (v1)", () => {
    expect(reposConfig({ generation: "v1", extra: [{ namespace: "f", path: "/sf/repos/spack_repo/f" }] })).toEqual({
      f: "/sf/repos/spack_repo/f",
    });
    expect(reposConfig({ generation: "v1", builtin: "/b", extra: [] })).toEqual({ builtin: "/b" });
    expect(reposConfig({ generation: "v0", extra: [] })).toBeUndefined();
  });
});

describe("honest counts from real Spack output", () => {
  it("counts a rebuild where every package came from the buildcache as nothing built (0.23 and 1.1)", async () => {
    for (const name of ["v0-install-from-cache.txt", "v1-install-cache-only.txt"]) {
      const summary = summariseInstallLog(await log(name));
      expect(summary.built).toEqual([]);
      expect(summary.fromCache.length).toBe(3);
    }
  });

  it("counts a build from source as built", async () => {
    const first = summariseInstallLog(await log("v0-install-first.txt"));
    expect(first.built.map((p) => p.replace(/-[a-z0-9]{32}$/, ""))).toEqual([
      "gcc-runtime-12.2.0",
      "lz4-1.10.0",
      "factory-hello-1.0",
    ]);
    expect(first.fromCache).toEqual([]);
    const v1 = summariseInstallLog(await log("v1-install.txt"));
    expect(v1.built.length).toBe(4);
    expect(v1.fromCache).toEqual([]);
  });
});

describe("the build user", () => {
  it("gives the uid a passwd entry with a fixed script, the ids as arguments only", () => {
    const argv = passwdEntryArgv({ uid: 4242, gid: 4242 });
    expect(argv.slice(0, 2)).toEqual(["sh", "-ec"]);
    expect(argv[2]).not.toContain("4242");
    expect(argv.slice(3)).toEqual(["sh", "4242", "4242", "/sf/home"]);
    expect(() => passwdEntryArgv({ uid: Number.NaN, gid: 1 })).toThrow(/not a numeric uid/);
    expect(() => passwdEntryArgv({ uid: -1, gid: 1 })).toThrow(/not a numeric uid/);
  });
});
