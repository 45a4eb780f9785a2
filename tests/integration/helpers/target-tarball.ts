import { createHash } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative } from "node:path";
import { execa } from "execa";
import type { RelocatableTree } from "./relocatable-tree.js";

async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

const sha256 = async (path: string) =>
  createHash("sha256")
    .update(await readFile(path))
    .digest("hex");

/**
 * A target tarball as the factory packs one, from a relocatable tree (really compiled, prepared by the production
 * prepare-relocation.py): a manifest with every key and file checksum, SHA256SUMS of every file, packed by GNU tar
 * with fixed order, owners and times, and its .sha256 sidecar. Written beside the tree's top directory.
 */
export async function packTargetTarball(tree: RelocatableTree, outDir: string): Promise<string> {
  const listed: Record<string, string> = {};
  for (const path of await files(tree.top)) {
    if (path !== "SHA256SUMS" && path !== "manifest.json") listed[path] = await sha256(join(tree.top, path));
  }
  const manifest = {
    format_version: 1,
    stack: { name: tree.stackName, version: tree.version, file: "/stacks/hello.yaml", description: "A greeting stack" },
    target: tree.target,
    compiler: "gcc@12.2.0",
    base_image: "stack-factory-test/debian:bookworm",
    image_id: null,
    spack_commit: null,
    specs: [],
    build_prefix: tree.buildPrefix,
    relocate: [],
    files: listed,
    created_by: "stack-factory test",
  };
  await writeFile(join(tree.top, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  const sums: string[] = [];
  for (const path of await files(tree.top)) {
    if (path !== "SHA256SUMS") sums.push(`${await sha256(join(tree.top, path))}  ${path}\n`);
  }
  await writeFile(join(tree.top, "SHA256SUMS"), sums.join(""));
  const tarball = join(outDir, `${basename(tree.top)}.tar.gz`);
  await execa("tar", [
    "--sort=name",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "--mtime=@0",
    "-czf",
    tarball,
    "-C",
    dirname(tree.top),
    basename(tree.top),
  ]);
  await writeFile(`${tarball}.sha256`, `${await sha256(tarball)}  ${basename(tarball)}\n`);
  return tarball;
}
