/**
 * `stack-factory bundle`: one tarball `<name>-<version>-<family>.tar.gz` from target tarballs built earlier. Each is
 * verified first (as `stack-factory verify` does), unpacked with GNU tar into a work directory, and merged:
 * `targets/<target>/` holds each tree, a file identical in an earlier target is a hard link to it (src/bundle/plan.ts),
 * and the bundle's own install.sh, modules, manifest.json and SHA256SUMS sit at the top. Output is deterministic:
 * fixed order, times and owners, as the target tarballs.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile as writeText } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { execa } from "execa";
import { pack } from "tar-stream";
import type { Stack } from "../config/types.js";
import { BuildError, InputError } from "../errors.js";
import { byteOrder, formatSums } from "../package/checksums.js";
import { openCompressor } from "../package/compressor.js";
import { defaultMtime, INSTALL_SCRIPT, MANIFEST_FILE, SBOM_FILE, verifyTarball } from "../package/index.js";
import { writeEmpty, writeFile } from "../package/tar-writer.js";
import { getMicroarch } from "../targets/index.js";
import { bundleFiles } from "./bundle-files.js";
import { type BundleEntry, planBundleEntries, TARGETS_DIR, type TargetTree } from "./plan.js";
import { readTargetTree } from "./read-tree.js";

export interface BundleOptions {
  stack: Stack;
  /** The target tarballs, in the order the bundle lists them. */
  tarballs: { target: string; path: string }[];
  outDir: string;
  mtime?: Date;
}

export interface BundleResult {
  path: string;
  bytes: number;
  /** The sizes of the target tarballs together. */
  inputBytes: number;
  stored: number;
  linked: number;
}

function familyOf(targets: readonly string[]): string {
  const families = new Set(targets.map((t) => getMicroarch(t)?.family ?? "unknown"));
  if (families.size !== 1) {
    throw new InputError(`a bundle holds targets of one family; these are of ${[...families].join(", ")}`);
  }
  return [...families][0] as string;
}

async function verifiedTree(stack: Stack, target: string, path: string, work: string): Promise<[TargetTree, string]> {
  const report = await verifyTarball(path);
  if (!report.ok) throw new BuildError(`${path} failed verification:\n  ${report.problems.join("\n  ")}`);
  const top = `${stack.name}-${stack.version}-${target}`;
  if (report.top !== top) throw new InputError(`${path} holds ${report.top ?? "nothing"}, not ${top}`);
  const dir = join(work, target);
  await mkdir(dir);
  await execa("tar", ["-xf", path, "-C", dir, "--no-same-owner", "--no-same-permissions"]);
  return [await readTargetTree(target, join(dir, top)), join(dir, top)];
}

/** The directories above the generated files (`modules/<name>/...`), parents first. */
function parentDirs(names: Iterable<string>): string[] {
  const dirs = new Set<string>();
  for (const name of names) {
    const parts = name.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  return [...dirs].sort(byteOrder);
}

async function writeEntries(
  out: string,
  top: string,
  trees: Map<string, string>,
  entries: BundleEntry[],
  files: Map<string, Buffer>,
  mtime: Date,
) {
  const tar = pack();
  const compressor = await openCompressor("gzip");
  const writing = Promise.all([pipeline(tar, compressor.stream, createWriteStream(out)), compressor.exited]);
  await writeEmpty(tar, { name: top, type: "directory", mode: 0o755 }, mtime);
  for (const dir of [...parentDirs(files.keys()), TARGETS_DIR]) {
    await writeEmpty(tar, { name: `${top}/${dir}`, type: "directory", mode: 0o755 }, mtime);
  }
  for (const name of [...files.keys()].sort(byteOrder)) {
    const content = files.get(name) as Buffer;
    const mode = name === INSTALL_SCRIPT ? 0o755 : 0o644;
    await writeFile(tar, { name: `${top}/${name}`, type: "file", mode, size: content.length }, content, mtime);
  }
  for (const e of entries) {
    const name = `${top}/${e.name}`;
    if (e.kind === "link") {
      await writeEmpty(tar, { name, type: "link", mode: e.mode, linkname: `${top}/${e.linkTo}` }, mtime);
    } else if (e.type === "directory") await writeEmpty(tar, { name, type: "directory", mode: e.mode }, mtime);
    else if (e.type === "symlink") {
      await writeEmpty(tar, { name, type: "symlink", mode: 0o777, linkname: e.linkname ?? "" }, mtime);
    } else {
      const body = createReadStream(join(trees.get(e.target) as string, e.path));
      await writeFile(tar, { name, type: "file", mode: e.mode, size: e.size }, body, mtime);
    }
  }
  tar.finalize();
  await writing;
}

export async function makeBundle(options: BundleOptions): Promise<BundleResult> {
  const { stack } = options;
  const targets = options.tarballs.map((t) => t.target);
  const family = familyOf(targets);
  const top = `${stack.name}-${stack.version}-${family}`;
  const work = await mkdtemp(join(options.outDir, `.${top}.work.`));
  try {
    const trees: TargetTree[] = [];
    const dirs = new Map<string, string>();
    for (const t of options.tarballs) {
      const [tree, dir] = await verifiedTree(stack, t.target, t.path, work);
      trees.push(tree);
      dirs.set(t.target, dir);
    }
    const entries = planBundleEntries(trees);
    const manifests = new Map<string, Buffer>();
    const sboms = new Map<string, Buffer>();
    for (const [t, dir] of dirs) {
      manifests.set(t, await readFile(join(dir, MANIFEST_FILE)));
      const sbom = await readFile(join(dir, SBOM_FILE)).catch(() => undefined);
      if (sbom !== undefined) sboms.set(t, sbom);
    }
    const files = await bundleFiles({ stack, targets, family, entries, manifests, sboms });
    const out = join(options.outDir, `${top}.tar.gz`);
    const partial = `${out}.partial`;
    await writeEntries(partial, top, dirs, entries, files, options.mtime ?? defaultMtime());
    const hash = createHash("sha256");
    for await (const chunk of createReadStream(partial)) hash.update(chunk as Buffer);
    await rename(partial, out);
    await writeText(`${out}.sha256`, formatSums({ [`${top}.tar.gz`]: hash.digest("hex") }));
    let inputBytes = 0;
    for (const t of options.tarballs) inputBytes += (await stat(t.path)).size;
    return {
      path: out,
      bytes: (await stat(out)).size,
      inputBytes,
      stored: entries.filter((e) => e.kind === "stored" && e.type === "file").length,
      linked: entries.filter((e) => e.kind === "link").length,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
