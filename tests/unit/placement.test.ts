import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { parseStack } from "../../src/config/index.js";
import { buildcacheLocation } from "../../src/config/factory.js";
import { planBuild } from "../../src/plan/plan.js";
import {
  ociRepositoryOf,
  placeTarget,
  REGISTRY_CREDENTIALS_FILE,
  withRunValues,
  REGISTRY_PATHS,
  remoteRootNeeds,
} from "../../src/plan/placement.js";
import { loadTemplates } from "../../src/render/templates.js";

const templates = await loadTemplates();
const stack = parseStack(
  'name: s\nversion: "1"\nspecs: [hello]\ntargets: [x86_64_v3, zen4]\nbase_image: "Example/Image:1"\nspack: { url: https://example.invalid/spack.git, ref: v1.1.0 }\n',
  "/stacks/s.yaml",
);
const plan = planBuild(stack, undefined, { templates, jobs: 2 });
const target = plan.targets[0]!;
const oci = buildcacheLocation("oci+http://127.0.0.1:5000/site/buildcache") as Extract<
  ReturnType<typeof buildcacheLocation>,
  { kind: "oci" }
>;
const https = buildcacheLocation("oci://127.0.0.1:5001/site/buildcache") as typeof oci;
const secret = { username: "builder", password: "s3cr'et" };
const siteCa = "-----BEGIN CERTIFICATE-----\nTUlJ\n-----END CERTIFICATE-----\n";

const mirrorOf = (yamlText: string) =>
  (parse(yamlText) as { spack: { mirrors: Record<string, unknown> } }).spack.mirrors["stack-factory"];

describe("a target placed on an engine", () => {
  it("as without settings: the same plan, its caches under the engine's cache root", () => {
    const placed = placeTarget(target, { engine: "local", cacheRoot: "/c", factoryCacheRoot: "/c" });
    expect(placed.spackYaml).toBe(target.spackYaml);
    expect(placed.files).toEqual(target.files);
    expect(placed.steps).toEqual(target.steps);
    expect(placed.mounts.every((m) => m.hostIsAbsolute)).toBe(true);
    expect(placed.mounts.find((m) => m.kind === "buildcache")?.host).toBe(`/c/buildcache/${target.buildcacheKey}`);
    expect(target.mounts.find((m) => m.kind === "buildcache")?.hostIsAbsolute).toBe(false); // the plan itself is untouched
  });

  it("on an engine with its own cache root: its own source-cache and buildcache push locks", () => {
    const placed = placeTarget(target, { engine: "build 2", cacheRoot: "/e2", factoryCacheRoot: "/c" });
    expect(placed.mounts.find((m) => m.kind === "source")?.host).toBe("/e2/source");
    expect(placed.steps.find((s) => s.id === "fetch")?.lock).toBe("source-cache-build-2");
    const pushLock = target.steps.find((s) => s.id === "push")?.lock;
    expect(placed.steps.find((s) => s.id === "push")?.lock).toBe(`${pushLock}-build-2`);
  });

  it("a buildcache every engine shares keeps one push lock, whatever the engine's cache root", () => {
    const pushLock = target.steps.find((s) => s.id === "push")?.lock;
    for (const buildcache of [
      { kind: "path", path: "/nfs/bc" } as const,
      { kind: "oci", url: "oci://r:5000/bc", registry: "r:5000", repository: "bc", plainHttp: false } as const,
    ]) {
      const placed = placeTarget(target, { engine: "build 2", cacheRoot: "/e2", factoryCacheRoot: "/c", buildcache });
      expect(placed.steps.find((s) => s.id === "push")?.lock).toBe(pushLock);
    }
  });

  it("on an engine of another host: content mounts where they were sent, cache directories under its root", () => {
    const needs = remoteRootNeeds([target]);
    const contentHosts = target.mounts.filter((m) => m.readOnly).map((m) => m.host);
    expect(needs.contents.map((c) => c.host).sort()).toEqual([...contentHosts].sort());
    expect(needs.dirs).toEqual(
      target.mounts
        .filter((m) => !m.readOnly)
        .map((m) => m.host)
        .sort(),
    );
    expect(needs.userCaches).toEqual(target.mounts.filter((m) => m.kind === "spack-user").map((m) => m.host));
    const synced = new Map(contentHosts.map((h, i) => [h, `/r/synced/t${i}`]));
    const planned = placeTarget(target, { engine: "far", cacheRoot: "/r", factoryCacheRoot: "/c", remote: true });
    // The plan names the trees of this host that are sent; where they land is known when they are sent.
    expect(planned.mounts.filter((m) => m.sent === true).map((m) => m.host)).toEqual(contentHosts);
    const placed = withRunValues(planned, { engine: "far", synced });
    for (const m of placed.mounts) {
      if (m.readOnly) expect(m.host).toMatch(/^\/r\/synced\/t\d$/);
      else expect(m.host.startsWith("/r/")).toBe(true);
    }
    // A content mount that was not sent is a bug of the caller, not a silent mount of a path of this host.
    expect(() => withRunValues(planned, { engine: "far", synced: new Map() })).toThrow(/was not sent to engine far/);
  });

  it("an engine sized by its own cores: install steps take its job count, nothing else changes", () => {
    const placed = placeTarget(target, { engine: "grace", cacheRoot: "/r", factoryCacheRoot: "/c", jobs: 36 });
    const install = placed.steps.find((s) => s.id === "install")!;
    expect(install.argv.slice(install.argv.indexOf("-j"), install.argv.indexOf("-j") + 2)).toEqual(["-j", "36"]);
    const planned = target.steps.find((s) => s.id === "install")!;
    expect(install.argv.filter((a, i) => a !== planned.argv[i])).toEqual(["36"]);
    for (const s of placed.steps.filter((x) => x.id !== "install"))
      expect(s.argv).toEqual(target.steps.find((x) => x.id === s.id)!.argv);
  });

  it("a shared buildcache is not the remote engine's to make", () => {
    const needs = remoteRootNeeds([target], { kind: "path", path: "/nfs/bc" });
    expect(needs.dirs.some((d) => d.startsWith("buildcache/"))).toBe(false);
  });

  it("a shared buildcache path: the key's directory under it", () => {
    const placed = placeTarget(target, {
      engine: "e",
      cacheRoot: "/e",
      factoryCacheRoot: "/c",
      buildcache: { kind: "path", path: "/nfs/bc" },
    });
    expect(placed.mounts.find((m) => m.kind === "buildcache")?.host).toBe(`/nfs/bc/${target.buildcacheKey}`);
  });

  it("an OCI buildcache: no buildcache mount, the mirror points at the key's repository", () => {
    const placed = placeTarget(target, { engine: "e", cacheRoot: "/e", factoryCacheRoot: "/c", buildcache: oci });
    expect(placed.mounts.some((m) => m.kind === "buildcache")).toBe(false);
    const repo = ociRepositoryOf(oci, target.buildcacheKey);
    // OCI repository names are lowercase components joined by '.', '_', '__' or dashes.
    expect(repo).toMatch(
      /^oci\+http:\/\/127\.0\.0\.1:5000\/site\/buildcache\/example-image-1-os-gcc-g-gfortran-pad220-[0-9a-f]{8}$/,
    );
    expect(mirrorOf(placed.spackYaml)).toEqual({ url: repo, signed: false, binary: true, source: false });
    for (const [path, text] of Object.entries(placed.files))
      if (path.endsWith("spack.yaml")) expect(mirrorOf(text)).toEqual(mirrorOf(placed.spackYaml));
    expect(placed.files[REGISTRY_CREDENTIALS_FILE]).toBeUndefined();
    expect(placed.registryFiles).toBeUndefined();
    expect(placed.env).toEqual(target.env);
    expect(placed.steps.map((s) => s.argv)).toEqual(target.steps.map((s) => s.argv));
  });

  it("a signed buildcache stays signed in the registry", () => {
    const yamlText = target.spackYaml.replace(/(stack-factory:\n\s+url: [^\n]+\n\s+)signed: false/, "$1signed: true");
    expect(yamlText).not.toBe(target.spackYaml);
    const placed = placeTarget(
      { ...target, spackYaml: yamlText },
      { engine: "e", cacheRoot: "/e", factoryCacheRoot: "/c", buildcache: oci },
    );
    expect(mirrorOf(placed.spackYaml)).toMatchObject({ signed: true, url: ociRepositoryOf(oci, target.buildcacheKey) });
  });

  it("registry credentials: a file on the container's registry tmpfs and an access_pair of variable names; the secret in no argv, env, file or spack.yaml", () => {
    const placed = placeTarget(target, {
      engine: "e",
      cacheRoot: "/e",
      factoryCacheRoot: "/c",
      buildcache: https,
      credentials: true,
    });
    expect(mirrorOf(placed.spackYaml)).toMatchObject({
      access_pair: {
        id_variable: "STACK_FACTORY_REGISTRY_USERNAME_ROOT",
        secret_variable: "STACK_FACTORY_REGISTRY_PASSWORD_ROOT",
      },
    });
    // `*_ROOT`: Spack's clean_environment() unsets them before any package builds.
    expect(REGISTRY_CREDENTIALS_FILE.startsWith(`${REGISTRY_PATHS.tmpfs}/`)).toBe(true);
    // The plan names the secret; its value is put in as the target runs.
    expect(placed.registryFiles).toEqual({
      tmpfs: REGISTRY_PATHS.tmpfs,
      files: {},
      secrets: { [REGISTRY_CREDENTIALS_FILE]: "registry-credentials" },
    });
    expect(withRunValues(placed, { engine: "e", credentials: secret }).registryFiles).toEqual({
      tmpfs: REGISTRY_PATHS.tmpfs,
      files: {
        [REGISTRY_CREDENTIALS_FILE]:
          "STACK_FACTORY_REGISTRY_USERNAME_ROOT='builder'\nSTACK_FACTORY_REGISTRY_PASSWORD_ROOT='s3cr'\\''et'\n",
      },
    });
    expect(() => withRunValues(placed, { engine: "e" })).toThrow(/needs the secret 'registry-credentials'/);
    const install = placed.steps.find((s) => s.id === "install")!;
    expect(install.argv.slice(0, 4)).toEqual([
      "/bin/sh",
      "-c",
      'set -a && . "$0" && set +a && exec "$@"',
      REGISTRY_CREDENTIALS_FILE,
    ]);
    expect(install.argv.slice(4)).toEqual(target.steps.find((s) => s.id === "install")!.argv);
    // Steps that never reach the registry run as planned.
    expect(placed.steps.find((s) => s.id === "view")!.argv).toEqual(target.steps.find((s) => s.id === "view")!.argv);
    const visible = JSON.stringify({
      argv: placed.steps,
      env: placed.env,
      yaml: placed.spackYaml,
      mounts: placed.mounts,
      files: placed.files,
    });
    expect(visible).not.toContain("s3cr");
  });

  it("credentials over plain http are refused (validation says why; placement never writes them)", () => {
    expect(() =>
      placeTarget(target, {
        engine: "e",
        cacheRoot: "/e",
        factoryCacheRoot: "/c",
        buildcache: oci,
        credentials: true,
      }),
    ).toThrow(/plain http/);
  });

  it("a site CA: on the registry tmpfs, joined with the image's CAs into the build's SSL_CERT_FILE", () => {
    const placed = placeTarget(target, {
      engine: "e",
      cacheRoot: "/e",
      factoryCacheRoot: "/c",
      buildcache: https,
      registryCa: siteCa,
    });
    expect(placed.registryFiles).toEqual({
      tmpfs: REGISTRY_PATHS.tmpfs,
      files: { [REGISTRY_PATHS.siteCa]: siteCa },
      caBundle: { path: REGISTRY_PATHS.caBundle, siteCa: REGISTRY_PATHS.siteCa },
    });
    expect(placed.env).toEqual({ ...target.env, SSL_CERT_FILE: REGISTRY_PATHS.caBundle });
    // Without an OCI buildcache the CA has no use.
    const local = placeTarget(target, { engine: "e", cacheRoot: "/e", factoryCacheRoot: "/c", registryCa: siteCa });
    expect(local.registryFiles).toBeUndefined();
  });

  it("a sh-based wrapper really exports the credentials to the step alone", async () => {
    const { execa } = await import("execa");
    const { mkdtemp, writeFile } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = await mkdtemp(join(tmpdir(), "sf-placement-"));
    const placed = placeTarget(target, {
      engine: "e",
      cacheRoot: "/e",
      factoryCacheRoot: "/c",
      buildcache: https,
      credentials: true,
    });
    const file = join(dir, "registry.env");
    await writeFile(
      file,
      withRunValues(placed, { engine: "e", credentials: secret }).registryFiles!.files[REGISTRY_CREDENTIALS_FILE]!,
    );
    const argv = placed.steps.find((s) => s.id === "install")!.argv.slice(0, 3);
    const { stdout } = await execa(
      argv[0]!,
      [
        ...argv.slice(1),
        file,
        "sh",
        "-c",
        'printf "%s|%s" "$STACK_FACTORY_REGISTRY_USERNAME_ROOT" "$STACK_FACTORY_REGISTRY_PASSWORD_ROOT"',
      ],
      {
        env: {},
        extendEnv: false,
      },
    );
    expect(stdout).toBe("builder|s3cr'et");
  });
});
