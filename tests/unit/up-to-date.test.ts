/**
 * Knowing that a target is up to date without Spack: the pure decision over what is kept, the readers of a lock and
 * of a path buildcache in both of Spack's layouts, and the kept tarball store (a tampered tarball is never taken).
 */
import { cp, mkdir, mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkKeptTarball, keep, readKept, type KeptRecord } from "../../src/cache/kept-tarballs.js";
import { projectRoot } from "../../src/project-root.js";
import { specsInPathBuildcache } from "../../src/run/buildcache-path.js";
import { lockSpecs, type ConcreteSpec } from "../../src/run/lock-specs.js";
import { templatesDigestOf } from "../../src/package/packaging-inputs.js";
import { concretizationInputsByName } from "../../src/run/up-to-date-inputs.js";
import { decideUpToDate, digestOf, UP_TO_DATE, type UpToDateFacts } from "../../src/run/up-to-date.js";

const ZLIB = "l56g2adx7hce52hgqhqgw7cgqhqqdy2a";
const RUNTIME = "qnmhjgcxccri5qsyservt72f3r7n4ak2";
const GCC = "gccextxrja7bzjdtzh4drt5rfcqdjamr";
const LOCK = JSON.stringify({
  roots: [{ hash: ZLIB, spec: "zlib" }],
  concrete_specs: {
    [ZLIB]: { name: "zlib", version: "1.3.1", hash: ZLIB },
    [RUNTIME]: { name: "gcc-runtime", version: "12.2.0", hash: RUNTIME },
    [GCC]: { name: "gcc", version: "12.2.0", hash: GCC, external: { path: "/usr", module: null } },
  },
});
const SPECS: ConcreteSpec[] = [
  { name: "gcc-runtime", version: "12.2.0", hash: RUNTIME },
  { name: "zlib", version: "1.3.1", hash: ZLIB },
];

const CONCRETIZATION = concretizationInputsByName({
  environments: { "/sf/env/spack.yaml": "spack:\n  specs: [zlib]\n" },
  spackCommit: "a".repeat(40),
  spackPackagesCommit: "b".repeat(40),
  repoDigests: {},
  imageId: "sha256:1111",
});
const PACKAGING = {
  templates: "t1",
  "install script and module": "m1",
  prefix: "/opt/x",
  compression: "gzip",
  "signing key": "none",
};
const INPUTS = { ...CONCRETIZATION, ...PACKAGING };
const RECORD: KeptRecord = {
  inputs: { ...INPUTS, "spack.lock": digestOf(LOCK) },
  tarball: { file: "x-1.0-zen4.tar.gz", bytes: 10, sha256: "f".repeat(64) },
  keptAt: "2026-12-01T00:00:00Z",
};

/** Everything known for an up-to-date build; tests change one fact at a time. */
const known = (over: Partial<UpToDateFacts> = {}): UpToDateFacts => ({
  mode: "build",
  lockKey: { key: "k".repeat(32) },
  inputs: INPUTS,
  record: RECORD,
  lock: LOCK,
  presence: { missing: [] },
  tarball: { path: "/cache/kept/x/x-1.0-zen4.tar.gz" },
  ...over,
});

describe("deciding whether a target is up to date", () => {
  it("is up to date when the lock, the buildcache and the kept tarball all agree, and hands out that tarball", () => {
    const verdict = decideUpToDate(known());
    expect(verdict).toMatchObject({ upToDate: true, reason: UP_TO_DATE });
    expect(verdict).toMatchObject({ kept: { path: "/cache/kept/x/x-1.0-zen4.tar.gz", sha256: "f".repeat(64) } });
    expect(verdict).toMatchObject({ specs: [`gcc-runtime-12.2.0-${RUNTIME}`, `zlib-1.3.1-${ZLIB}`] });
  });

  it("asks for each fact in turn, hashing the kept tarball last", () => {
    const { record, lock, presence, tarball, ...none } = known();
    expect(decideUpToDate(none)).toEqual({ need: "record" });
    expect(decideUpToDate({ ...none, record })).toEqual({ need: "lock" });
    expect(decideUpToDate({ ...none, record, lock })).toEqual({ need: "presence" });
    expect(decideUpToDate({ ...none, record, lock, presence })).toEqual({ need: "tarball" });
    expect(decideUpToDate({ ...none, record, lock, presence, tarball })).toMatchObject({ upToDate: true });
  });

  it("warm needs only the lock and the buildcache: no record, no tarball", () => {
    expect(decideUpToDate(known({ mode: "warm", record: null, tarball: undefined }))).toMatchObject({
      upToDate: true,
      reason: UP_TO_DATE,
    });
  });

  it.each([
    ["builder image", { ...INPUTS, "builder image": "sha256:2222" }],
    ["templates", { ...INPUTS, templates: "t2" }],
    ["signing key", { ...INPUTS, "signing key": "ABCDEF0123456789" }],
    ["prefix", { ...INPUTS, prefix: "/opt/y" }],
    ["compression", { ...INPUTS, compression: "zstd" }],
  ])("falls back naming the changed input: %s", (name, inputs) => {
    expect(decideUpToDate(known({ inputs }))).toMatchObject({
      upToDate: false,
      reason: `changed since the kept tarball: ${name}`,
    });
  });

  it("names what changed when no lock is kept for the inputs (a spec, the image)", () => {
    const inputs = { ...INPUTS, "spack.yaml": "other", "builder image": "sha256:2222" };
    expect(decideUpToDate(known({ inputs, lock: null }))).toMatchObject({
      upToDate: false,
      reason: "changed since the last build: spack.yaml, builder image",
    });
    expect(decideUpToDate(known({ inputs, lock: null, record: null }))).toMatchObject({
      upToDate: false,
      reason: "no earlier concretization with these inputs",
    });
  });

  it("falls back when the concretization changed under the same inputs (--fresh found another)", () => {
    const other = LOCK.replace("1.3.1", "1.3.2");
    expect(decideUpToDate(known({ lock: other }))).toMatchObject({
      upToDate: false,
      reason: "changed since the kept tarball: spack.lock",
    });
  });

  it("falls back naming the specs missing from the buildcache (a pruned entry)", () => {
    expect(decideUpToDate(known({ presence: { missing: [SPECS[1]!] } }))).toMatchObject({
      upToDate: false,
      reason: "not in the buildcache: zlib@1.3.1/l56g2ad",
    });
    const many = Array.from({ length: 7 }, (_, i) => ({ name: `p${i}`, version: "1", hash: ZLIB }));
    expect(decideUpToDate(known({ presence: { missing: many } }))).toMatchObject({
      reason: "not in the buildcache: p0@1/l56g2ad, p1@1/l56g2ad, p2@1/l56g2ad, p3@1/l56g2ad, p4@1/l56g2ad and 2 more",
    });
  });

  it("names a changed input before what it leads to (another signing key: another, empty, buildcache)", () => {
    const inputs = { ...INPUTS, "signing key": "ABCDEF0123456789" };
    expect(decideUpToDate(known({ inputs, presence: { missing: SPECS } }))).toMatchObject({
      upToDate: false,
      reason: "changed since the kept tarball: signing key",
    });
  });

  it("says when everything is in the buildcache although the target runs (fetch and push have nothing to do)", () => {
    const changed = { ...INPUTS, prefix: "/opt/y" };
    expect(decideUpToDate(known({ inputs: changed }))).toMatchObject({ allInBuildcache: true });
    expect(decideUpToDate(known({ inputs: changed, presence: { missing: SPECS } }))).toMatchObject({
      allInBuildcache: false,
    });
    expect(decideUpToDate(known({ tarball: { problem: "tampered" } }))).toMatchObject({ allInBuildcache: true });
    expect(decideUpToDate(known({ presence: { missing: SPECS } }))).not.toHaveProperty("allInBuildcache");
    expect(decideUpToDate(known({ presence: { unreadable: "x" } }))).not.toHaveProperty("allInBuildcache");
  });

  it("falls back with the reader's words when the buildcache or the kept tarball cannot be trusted", () => {
    expect(decideUpToDate(known({ presence: { unreadable: "cannot read the buildcache /b (EACCES)" } }))).toMatchObject(
      {
        upToDate: false,
        reason: "cannot read the buildcache /b (EACCES)",
      },
    );
    expect(
      decideUpToDate(known({ tarball: { problem: "the kept tarball t has sha256 0, f was recorded" } })),
    ).toMatchObject({
      upToDate: false,
      reason: "the kept tarball t has sha256 0, f was recorded",
    });
    expect(decideUpToDate(known({ record: null }))).toMatchObject({
      upToDate: false,
      reason: "no tarball kept from an earlier build",
    });
  });

  it("falls back for --fresh, an unusable lock key, a malformed lock and a compiler Spack builds", () => {
    expect(decideUpToDate(known({ fresh: true }))).toMatchObject({ upToDate: false, reason: /--fresh/ });
    expect(decideUpToDate(known({ lockKey: { unusable: "the builder image id is unknown" } }))).toMatchObject({
      upToDate: false,
      reason: "no concretization to compare: the builder image id is unknown",
    });
    expect(decideUpToDate(known({ lock: "{not json" }))).toMatchObject({
      upToDate: false,
      reason: /^the kept spack\.lock cannot be read: /,
    });
    expect(decideUpToDate(known({ compilerBuiltBySpack: true }))).toMatchObject({ upToDate: false });
  });
});

describe("the specs of a lock", () => {
  it("are its non-external nodes", () => {
    expect(lockSpecs(LOCK)).toEqual(SPECS);
  });

  it("refuses names, versions and hashes Spack would not write (they become file names and URLs)", () => {
    const bad = (node: object, hash = ZLIB) => JSON.stringify({ concrete_specs: { [hash]: node } });
    expect(() => lockSpecs(bad({ name: "../../etc", version: "1" }))).toThrow(/name is not a package name/);
    expect(() => lockSpecs(bad({ name: "zlib", version: "1/../x" }))).toThrow(/version is not a version/);
    expect(() => lockSpecs(bad({ name: "zlib", version: "1" }, "../x"))).toThrow(/not a Spack hash/);
    expect(() => lockSpecs(JSON.stringify({ roots: [] }))).toThrow(/no concrete_specs/);
  });
});

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-uptodate-"));
});
afterAll(() => rm(work, { recursive: true, force: true }));

/** A buildcache directory in Spack 1.x's layout (v3): a manifest per spec listing its blobs. */
async function v3Buildcache(dir: string, specs: ConcreteSpec[], options: { signed?: boolean } = {}): Promise<void> {
  for (const s of specs) {
    const blobs = [digestOf(`tarball ${s.hash}`), digestOf(`spec ${s.hash}`)];
    for (const b of blobs) {
      await mkdir(join(dir, "blobs", "sha256", b.slice(0, 2)), { recursive: true });
      await writeFile(join(dir, "blobs", "sha256", b.slice(0, 2), b), "x");
    }
    const manifest = JSON.stringify({
      version: 3,
      data: blobs.map((checksum) => ({ checksumAlgorithm: "sha256", checksum, contentLength: 1 })),
    });
    const text = options.signed
      ? `-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n${manifest}\n-----BEGIN PGP SIGNATURE-----\n\nx\n-----END PGP SIGNATURE-----\n`
      : manifest;
    await mkdir(join(dir, "v3", "manifests", "spec", s.name), { recursive: true });
    await writeFile(
      join(dir, "v3", "manifests", "spec", s.name, `${s.name}-${s.version}-${s.hash}.spec.manifest.json`),
      text,
    );
  }
}

describe("reading a path buildcache from the host", () => {
  it("Spack 1.x layout: an entry counts when its manifest and every blob it lists are there", async () => {
    const dir = join(work, "v3");
    await v3Buildcache(dir, SPECS);
    expect(await specsInPathBuildcache(dir, SPECS, { signed: false })).toEqual({ missing: [] });
    // A pruned blob: the entry no longer installs.
    const blob = digestOf(`tarball ${ZLIB}`);
    await rm(join(dir, "blobs", "sha256", blob.slice(0, 2), blob));
    expect(await specsInPathBuildcache(dir, SPECS, { signed: false })).toEqual({ missing: [SPECS[1]] });
    // Unsigned entries do not serve a signed buildcache.
    expect(await specsInPathBuildcache(dir, SPECS, { signed: true })).toEqual({ missing: SPECS });
    const signed = join(work, "v3-signed");
    await v3Buildcache(signed, SPECS, { signed: true });
    expect(await specsInPathBuildcache(signed, SPECS, { signed: true })).toEqual({ missing: [] });
  });

  it("build_cache layout: a spec file (signed when the buildcache is) and its tarball, flat or nested", async () => {
    const dir = join(work, "bc");
    await mkdir(join(dir, "build_cache", "linux-debian12-x86_64_v3", "gcc-12.2.0", "zlib-1.3.1"), { recursive: true });
    await writeFile(join(dir, "build_cache", `gcc-runtime-12.2.0-${RUNTIME}.spec.json`), "{}");
    await writeFile(join(dir, "build_cache", `gcc-runtime-12.2.0-${RUNTIME}.spack`), "x");
    await writeFile(
      join(dir, "build_cache", `linux-debian12-x86_64_v3-gcc-12.2.0-zlib-1.3.1-${ZLIB}.spec.json.sig`),
      "s",
    );
    await writeFile(
      join(
        dir,
        "build_cache",
        "linux-debian12-x86_64_v3",
        "gcc-12.2.0",
        "zlib-1.3.1",
        `linux-zlib-1.3.1-${ZLIB}.spack`,
      ),
      "x",
    );
    expect(await specsInPathBuildcache(dir, SPECS, { signed: false })).toEqual({ missing: [] });
    expect(await specsInPathBuildcache(dir, SPECS, { signed: true })).toEqual({ missing: [SPECS[0]] });
    await rm(join(dir, "build_cache", `gcc-runtime-12.2.0-${RUNTIME}.spack`));
    expect(await specsInPathBuildcache(dir, SPECS, { signed: false })).toEqual({ missing: [SPECS[0]] });
  });

  it("an empty buildcache misses everything; an unreadable one says so", async () => {
    await mkdir(join(work, "empty"), { recursive: true });
    expect(await specsInPathBuildcache(join(work, "empty"), SPECS, { signed: false })).toEqual({ missing: SPECS });
    expect(await specsInPathBuildcache(join(work, "nowhere"), SPECS, { signed: false })).toEqual({
      unreadable: `cannot read the buildcache ${join(work, "nowhere")} (ENOENT)`,
    });
  });
});

describe("kept tarballs", () => {
  it("are kept with their inputs and sha256, and a tampered or truncated one is refused by name", async () => {
    const cache = join(work, "cache");
    const made = join(work, "out", "x-1.0-zen4.tar.gz");
    await mkdir(join(work, "out"), { recursive: true });
    await writeFile(made, "tarball bytes");
    await keep(cache, "x-1.0-zen4", "build", { inputs: { a: "1" }, tarball: made, warnings: ["w"] });
    const record = await readKept(cache, "x-1.0-zen4", "build");
    expect(record).toMatchObject({
      inputs: { a: "1" },
      tarball: { file: "x-1.0-zen4.tar.gz", bytes: 13, sha256: digestOf("tarball bytes") },
      warnings: ["w"],
    });
    const path = join(cache, "kept", "x-1.0-zen4", "x-1.0-zen4.tar.gz");
    expect(await checkKeptTarball(cache, "x-1.0-zen4", record!)).toEqual({ path });
    // Same size, other bytes (the kept copy is its own file when copied, shared when hard-linked: both are checked).
    await rm(path);
    await writeFile(path, "tarball bytez");
    expect(await checkKeptTarball(cache, "x-1.0-zen4", record!)).toEqual({
      problem: `the kept tarball ${path} has sha256 ${digestOf("tarball bytez")}, ${digestOf("tarball bytes")} was recorded`,
    });
    await truncate(path, 3);
    expect(await checkKeptTarball(cache, "x-1.0-zen4", record!)).toEqual({
      problem: `the kept tarball ${path} has 3 bytes, 13 were kept`,
    });
    await rm(path);
    expect(await checkKeptTarball(cache, "x-1.0-zen4", record!)).toEqual({
      problem: `the kept tarball ${path} is gone`,
    });
  });

  it("takes no record it cannot trust, and no target name that leaves its directory", async () => {
    const cache = join(work, "cache2");
    await mkdir(join(cache, "kept", "t"), { recursive: true });
    await writeFile(
      join(cache, "kept", "t", "build.json"),
      JSON.stringify({ version: 1, inputs: {}, tarball: { file: "../../x" } }),
    );
    expect(await readKept(cache, "t", "build")).toBeUndefined();
    await writeFile(join(cache, "kept", "t", "build.json"), "{truncated");
    expect(await readKept(cache, "t", "build")).toBeUndefined();
    await expect(readKept(cache, "../t", "build")).rejects.toThrow(/no target directory name/);
  });
});

describe("the inputs of a tarball", () => {
  it("the templates' digest follows every template and script a tarball is made with", async () => {
    const root = join(work, "root");
    for (const d of ["docker", "templates", "modules-templates"])
      await cp(join(projectRoot, d), join(root, d), { recursive: true });
    const before = await templatesDigestOf(root);
    expect(await templatesDigestOf(root)).toBe(before);
    await writeFile(join(root, "modules-templates", "module.lua.eta"), "-- changed\n", { flag: "a" });
    const lua = await templatesDigestOf(root);
    expect(lua).not.toBe(before);
    await writeFile(join(root, "modules-templates", "module.tcl.eta"), "# changed\n", { flag: "a" });
    const tcl = await templatesDigestOf(root);
    expect(tcl).not.toBe(lua);
    await writeFile(join(root, "templates", "new-script.sh"), "true\n");
    expect(await templatesDigestOf(root)).not.toBe(tcl);
  });
});
