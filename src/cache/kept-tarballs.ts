/**
 * The factory's own copy of each target's last tarball and of the inputs it was made from, so that an unchanged
 * rebuild hands it out again instead of building and packing (`kept/<name>-<version>-<target>/` under the cache
 * root). `build.json` records the inputs by name, the tarball's file name, size and sha256; `warm.json` the inputs of
 * the last warm run (no tarball). Records are written last, atomically, after the tarball is in place; a kept
 * tarball is hashed again before it is handed out, so a changed or truncated file is never taken for it.
 */
import { sha256Of } from "../fs/sha256.js";
import { copyFile, link, mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { writeFileAtomic } from "../fs/write-atomic.js";
import { CACHE_LAYOUT } from "./layout.js";

export type RunMode = "build" | "warm";

/** What was kept for a target after its last successful run of one mode. */
export interface KeptRecord {
  /** Each input by name (`builder image`, `signing key`, ...) → a digest or value. */
  inputs: Record<string, string>;
  tarball?: { file: string; bytes: number; sha256: string };
  /** The tarball's portability warnings, said again when it is handed out. */
  warnings?: string[];
  keptAt: string;
}

const RECORD_VERSION = 1;

function dirOf(cacheRoot: string, target: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(target) || target.includes(".."))
    throw new Error(`kept tarballs: ${JSON.stringify(target)} is no target directory name`);
  return join(cacheRoot, CACHE_LAYOUT.kept(target));
}

/** The record of the last successful run of this mode, undefined when there is none or it cannot be read. */
export async function readKept(cacheRoot: string, target: string, mode: RunMode): Promise<KeptRecord | undefined> {
  const text = await readFile(join(dirOf(cacheRoot, target), `${mode}.json`), "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const doc = JSON.parse(text) as KeptRecord & { version?: number };
    if (doc.version !== RECORD_VERSION || typeof doc.inputs !== "object" || doc.inputs === null) return undefined;
    if (doc.tarball !== undefined && (basename(doc.tarball.file) !== doc.tarball.file || doc.tarball.file === ""))
      return undefined;
    return doc;
  } catch {
    return undefined;
  }
}

/**
 * Keeps a run's inputs and (build) its tarball: hard-linked when the output directory is on the same file system
 * (no copy), copied otherwise. Older kept tarballs of the target go.
 */
export async function keep(
  cacheRoot: string,
  target: string,
  mode: RunMode,
  record: { inputs: Record<string, string>; tarball?: string; warnings?: string[] },
): Promise<void> {
  const dir = dirOf(cacheRoot, target);
  await mkdir(dir, { recursive: true });
  let tarball: KeptRecord["tarball"];
  if (record.tarball !== undefined) {
    const file = basename(record.tarball);
    const partial = join(dir, `.${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
    await linkOrCopy(record.tarball, partial);
    const sha256 = await sha256Of(partial);
    await rename(partial, join(dir, file));
    tarball = { file, bytes: (await stat(join(dir, file))).size, sha256 };
  }
  const doc = {
    version: RECORD_VERSION,
    inputs: record.inputs,
    ...(tarball === undefined ? {} : { tarball }),
    ...(record.warnings === undefined || record.warnings.length === 0 ? {} : { warnings: record.warnings }),
    keptAt: new Date().toISOString(),
  };
  await writeFileAtomic(join(dir, `${mode}.json`), `${JSON.stringify(doc, null, 2)}\n`);
  if (mode === "build") {
    // Only the tarball the record names stays (another compression leaves another file name behind).
    for (const name of await readdir(dir)) {
      if (name.endsWith(".json") || name === tarball?.file || name.startsWith(".")) continue;
      await rm(join(dir, name), { force: true });
    }
  }
}

/** The kept tarball's path when its bytes still have the recorded sha256, else what is wrong with it. */
export async function checkKeptTarball(
  cacheRoot: string,
  target: string,
  record: KeptRecord,
): Promise<{ path: string } | { problem: string }> {
  if (record.tarball === undefined) return { problem: "no tarball was kept" };
  const path = join(dirOf(cacheRoot, target), record.tarball.file);
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) return { problem: `the kept tarball ${path} is gone` };
  if (info.size !== record.tarball.bytes)
    return { problem: `the kept tarball ${path} has ${info.size} bytes, ${record.tarball.bytes} were kept` };
  const sha256 = await sha256Of(path);
  if (sha256 !== record.tarball.sha256)
    return { problem: `the kept tarball ${path} has sha256 ${sha256}, ${record.tarball.sha256} was recorded` };
  return { path };
}

/** Puts `from` at `to` (a hard link when possible, else a copy), through a partial name renamed into place. */
export async function linkOrCopy(from: string, to: string): Promise<void> {
  const partial = `${to}.partial-${process.pid}`;
  await rm(partial, { force: true });
  try {
    await link(from, partial).catch(() => copyFile(from, partial));
    await rename(partial, to);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}
