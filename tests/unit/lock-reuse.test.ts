import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CACHE_LAYOUT } from "../../src/cache/layout.js";
import { execa } from "execa";
import {
  concretizationKey,
  findLock,
  registrationOf,
  repoDigest,
  saveLock,
  treeIdentity,
  type ConcretizationInputs,
} from "../../src/run/lock-reuse.js";

const BASE: ConcretizationInputs = {
  environments: { "/sf/env/spack.yaml": "spack:\n  specs: [zlib]\n" },
  spackCommit: "a".repeat(40),
  spackPackagesCommit: "b".repeat(40),
  repoDigests: { site: "c".repeat(64) },
  imageId: "sha256:1234",
};
const keyOf = (inputs: ConcretizationInputs): string => {
  const k = concretizationKey(inputs);
  if (!("key" in k)) throw new Error(k.unusable);
  return k.key;
};

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "sf-lock-"));
});
afterAll(() => rm(work, { recursive: true, force: true }));

describe("the concretization key", () => {
  it("is stable for the same inputs and changes with every input that feeds concretization", () => {
    const base = keyOf(BASE);
    expect(keyOf({ ...BASE, repoDigests: { site: "c".repeat(64) } })).toBe(base);
    const changed: ConcretizationInputs[] = [
      { ...BASE, environments: { "/sf/env/spack.yaml": "spack:\n  specs: [zlib@1.2]\n" } },
      { ...BASE, environments: { ...BASE.environments, "/sf/compiler-env/spack.yaml": "spack: {}\n" } },
      { ...BASE, spackCommit: "d".repeat(40) },
      { ...BASE, spackPackagesCommit: "e".repeat(40) },
      { ...BASE, repoDigests: { site: "f".repeat(64) } },
      { ...BASE, repoDigests: { site: "c".repeat(64), other: "0" } },
      { ...BASE, imageId: "sha256:5678" },
      { ...BASE, registration: [["compiler", "find"]] },
      {
        ...BASE,
        registration: [
          ["compiler", "find"],
          ["external", "find", "--not-buildable", "python"],
        ],
      },
    ];
    const keys = changed.map(keyOf);
    expect(keys).not.toContain(base);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("takes what the registration steps register, not where Spack lives", () => {
    const spack = ["/sf/spack/bin/spack", "-e", "/sf/env"];
    expect(
      registrationOf([
        { id: "trust", title: "t", argv: ["/sf/spack/bin/spack", "gpg", "trust", "/sf/key.asc"] },
        { id: "compiler", title: "c", argv: [...spack, "compiler", "find", "/sf/compiler-view/bin"] },
        { id: "externals", title: "e", argv: [...spack, "external", "find", "--not-buildable", "python"] },
        { id: "concretize", title: "k", argv: [...spack, "concretize", "--force"] },
      ]),
    ).toEqual([
      ["compiler", "find", "/sf/compiler-view/bin"],
      ["external", "find", "--not-buildable", "python"],
    ]);
  });

  it("refuses to key inputs it cannot compare", () => {
    expect(concretizationKey({ ...BASE, spackCommit: "unknown" })).toEqual({
      unusable: "the Spack checkout has no git commit to compare",
    });
    expect(concretizationKey({ ...BASE, spackPackagesCommit: "unknown" })).toMatchObject({
      unusable: expect.stringContaining("spack-packages"),
    });
    expect(concretizationKey({ ...BASE, imageId: "" })).toMatchObject({ unusable: expect.stringContaining("image") });
  });
});

describe("kept locks", () => {
  it("are found under their key only, and a damaged one is not trusted", async () => {
    const cache = path.join(work, "cache");
    await saveLock(cache, "k1", '{"roots": []}\n');
    expect(await findLock(cache, "k1")).toBe('{"roots": []}\n');
    expect(await findLock(cache, "k2")).toBeUndefined();
    await mkdir(path.dirname(path.join(cache, CACHE_LAYOUT.concretized("k3"))), { recursive: true });
    await writeFile(path.join(cache, CACHE_LAYOUT.concretized("k3")), '{"roots": [');
    expect(await findLock(cache, "k3")).toBeUndefined();
  });

  it("digest a repository by its files' names and contents, ignoring .git", async () => {
    const repo = path.join(work, "repo");
    await mkdir(path.join(repo, "packages", "a"), { recursive: true });
    await writeFile(path.join(repo, "repo.yaml"), "repo:\n  namespace: site\n");
    await writeFile(path.join(repo, "packages", "a", "package.py"), "version('1.0')\n");
    const first = await repoDigest(repo);
    await mkdir(path.join(repo, ".git"), { recursive: true });
    await writeFile(path.join(repo, ".git", "HEAD"), "ref: refs/heads/main\n");
    expect(await repoDigest(repo)).toBe(first);
    await writeFile(path.join(repo, "packages", "a", "package.py"), "version('1.1')\n");
    expect(await repoDigest(repo)).not.toBe(first);
  });
});

describe("what a checkout holds", () => {
  it("keeps a subdirectory's identity while other files of its repository change, and counts uncommitted edits", async () => {
    const repo = path.join(work, "git");
    const git = (...args: string[]) =>
      execa("git", ["-C", repo, "-c", "user.email=t@example.invalid", "-c", "user.name=t", ...args]);
    await mkdir(path.join(repo, "spack", "bin"), { recursive: true });
    await mkdir(path.join(repo, "other"), { recursive: true });
    await writeFile(path.join(repo, "spack", "bin", "spack"), "#!/bin/sh\n");
    await writeFile(path.join(repo, "other", "x"), "1\n");
    await git("init", "--quiet");
    await git("add", "-A");
    await git("commit", "--quiet", "-m", "one");
    const dir = path.join(repo, "spack");
    const first = await treeIdentity(dir);
    expect(first).toMatch(/^[0-9a-f]{40}$/);
    await writeFile(path.join(repo, "other", "x"), "2\n");
    await git("commit", "--quiet", "-am", "two");
    expect(await treeIdentity(dir)).toBe(first);
    await writeFile(path.join(dir, "bin", "spack"), "#!/bin/sh\necho changed\n");
    const dirty = await treeIdentity(dir);
    expect(dirty).toMatch(new RegExp(`^${first}\\+[0-9a-f]{16}$`));
    await git("commit", "--quiet", "-am", "three");
    const committed = await treeIdentity(dir);
    expect(committed).not.toBe(first);
    expect(committed).toMatch(/^[0-9a-f]{40}$/);
    expect(await treeIdentity(path.join(work, "repo"))).toBe("unknown");
  });
});
