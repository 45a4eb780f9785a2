/**
 * Files inside directories a stack names (a package repository's repo.yaml, a Spack checkout's defaults) are read
 * as user files: a FIFO there is refused, or passed over, at once, never read forever.
 */
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadStack } from "../../src/config/index.js";
import { pinOfCheckout } from "../../src/config/inspect.js";

const STANDIN = resolve("tests/fixtures/spack-standin");
const SPACK_PACKAGES = resolve("tests/fixtures/spack-packages");
let work: string;

async function caught(run: () => Promise<unknown>): Promise<Error> {
  try {
    await run();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected an error, nothing was thrown");
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-tree-files-"));
});

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe("files inside the trees a stack names", () => {
  it("a package repository whose repo.yaml is a FIFO is refused at once, naming it", async () => {
    const repo = join(work, "site-repo");
    await mkdir(join(repo, "packages"), { recursive: true });
    execFileSync("mkfifo", [join(repo, "repo.yaml")]);
    const stackFile = join(work, "fifo-repo.yaml");
    await writeFile(
      stackFile,
      [
        "name: fiforepo",
        'version: "1.0"',
        "specs: [zlib]",
        "targets: [x86_64_v3]",
        "compiler: { os: { packages: [gcc] } }",
        `spack: { source: ${JSON.stringify(STANDIN)}, builtin: { source: ${JSON.stringify(SPACK_PACKAGES)} }, repos: [${JSON.stringify(repo)}] }`,
        "",
      ].join("\n"),
    );
    // The test's own timeout is the "forever": a plain read of a FIFO with no writer never returns.
    const error = await caught(() => loadStack(stackFile));
    expect(String(error)).toContain(
      `${repo} is not a Spack package repository: repo.yaml ${join(repo, "repo.yaml")} is a FIFO, not a regular file`,
    );
  });

  it("a Spack checkout whose default repos.yaml is a FIFO is passed over, not waited on", async () => {
    const root = join(work, "spack");
    await mkdir(join(root, "etc", "spack", "defaults"), { recursive: true });
    execFileSync("mkfifo", [join(root, "etc", "spack", "defaults", "repos.yaml")]);
    expect(await pinOfCheckout(root)).toBeUndefined();
  });
});
