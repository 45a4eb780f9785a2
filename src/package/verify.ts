/**
 * Checks a stack tarball before it ships or installs: the sidecar checksum, that every entry is safe to extract
 * as GNU tar would extract it (one top directory, no absolute or `..` paths, names normalised before duplicates
 * are looked for, links that stay inside once resolved through each other, no devices, fifos, setuid/setgid,
 * world-writable or foreign-owned entries, no extended header GNU tar would act on), and that every file matches
 * SHA256SUMS and the manifest, and that every ELF file of the view has the dynamic tag (DT_RPATH or DT_RUNPATH) the
 * manifest records it was linked with (dynamic-tags.ts). Reports problems; only a missing or non-regular file (a FIFO would block) throws.
 */
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { basename } from "node:path";
import { Duplex, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { execa } from "execa";
import { InputError } from "../errors.js";
import { parseSums } from "./checksums.js";
import {
  cleanName,
  entryProblem,
  modeProblem,
  nameProblem,
  ownerProblem,
  symlinkAbove,
  symlinkEscape,
} from "./entry-safety.js";
import { DynamicTagReader, dynamicTagProblems, type TagReading } from "./dynamic-tags.js";
import { LAYOUT } from "./layout.js";
import { MANIFEST_KEYS } from "./manifest.js";
import { TarProblem, TarReader, type TarEntry } from "./tar-read.js";
import { findExecutable } from "./which.js";
import { kindOf } from "../fs/kind.js";

export interface VerifyReport {
  ok: boolean;
  problems: string[];
  /** Regular files (hardlinks included) in the archive. */
  files: number;
  /** The top-level directory, when there is one. */
  top?: string;
  /** The manifest's base image (the image the stack was built on), when the manifest names one. */
  baseImage?: string;
  /** The manifest's `portability` record (what the tree needs from a node), unchecked; see node-check.ts. */
  portability?: unknown;
  /** The fingerprint of the key the manifest says signed the tarball (`signing_key`), unchecked; see src/sign. */
  signingFingerprint?: string;
}

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
/** manifest.json and SHA256SUMS are read into memory: refuse absurd sizes. */
const MAX_METADATA_BYTES = 256 * 1024 * 1024;
const MAX_PROBLEMS = 200;

class Problems {
  readonly list: string[] = [];
  private dropped = 0;
  add(problem: string): void {
    if (this.list.length < MAX_PROBLEMS) this.list.push(problem);
    else this.dropped++;
  }
  get all(): string[] {
    return this.dropped > 0 ? [...this.list, `... and ${this.dropped} more problem(s)`] : this.list;
  }
}

async function magic(handle: FileHandle): Promise<Buffer> {
  const buffer = Buffer.alloc(4);
  const { bytesRead } = await handle.read(buffer, 0, 4, 0);
  return buffer.subarray(0, bytesRead);
}

async function decompressor(handle: FileHandle): Promise<{ stream: Duplex; exited: Promise<void> } | string> {
  const head = await magic(handle);
  if (head.subarray(0, 2).equals(GZIP_MAGIC)) return { stream: createGunzip(), exited: Promise.resolve() };
  if (head.equals(ZSTD_MAGIC)) {
    const zstd = await findExecutable("zstd");
    if (zstd === undefined) return "the archive is zstd-compressed and the zstd program is not on PATH";
    const child = execa(zstd, ["-dc", "-q"], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
      buffer: { stdout: false, stderr: true },
    });
    const exited = child.then(
      () => undefined,
      (error: unknown) => {
        throw new Error(`zstd -dc failed: ${(error as { stderr?: string }).stderr ?? String(error)}`);
      },
    );
    exited.catch(() => {});
    return { stream: Duplex.from({ writable: child.stdin, readable: child.stdout }), exited };
  }
  return `not a gzip or zstd file (first bytes ${head.toString("hex") || "none"})`;
}

/** The sidecar is one line; anything longer is not one. */
const MAX_SIDECAR_BYTES = 64 * 1024;

async function readSidecar(path: string): Promise<{ hex: string; name: string } | string | undefined> {
  let text: string;
  try {
    const handle = await openRegular(`${path}.sha256`);
    if (handle === undefined) return undefined;
    try {
      const buffer = Buffer.alloc(MAX_SIDECAR_BYTES + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      if (bytesRead > MAX_SIDECAR_BYTES) return `${basename(path)}.sha256 is larger than ${MAX_SIDECAR_BYTES} bytes`;
      text = buffer.subarray(0, bytesRead).toString("utf8");
    } finally {
      await handle.close();
    }
  } catch (error) {
    return `cannot read ${path}.sha256: ${(error as Error).message}`;
  }
  const match = /^([0-9a-f]{64}) [ *](.+)\n?$/.exec(text);
  if (!match) return `${basename(path)}.sha256 is not one "<sha256>  <file name>" line`;
  return { hex: match[1]!, name: match[2]! };
}

interface Scan {
  top: string | undefined;
  /** Path relative to the top directory → sha256 of every regular file. */
  hashes: Map<string, string>;
  metadata: Map<string, Buffer>;
  /** Dynamic tag of every file under view/ (hardlinks included), read as the bytes stream by. */
  tags: Map<string, TagReading>;
}

/**
 * Reads every entry as GNU tar will extract it: names normalised (`a//b`, `./a` are `a/b`, `a`) before the
 * duplicate check, modes checked, and at the end symlinks resolved through one another as the extracted tree
 * would resolve them. A structural problem (an extended header GNU tar would honour, a malformed header) stops
 * the reading: nothing after it can be judged.
 */
async function scanEntries(reader: TarReader, problems: Problems): Promise<Scan> {
  const entries = new EntryScan(problems);
  try {
    for await (const entry of reader.entries()) {
      const rel = entries.place(entry);
      if (entry.type === "file" || entry.type === "contiguous-file") await entries.readFile(entry, rel);
    }
  } catch (error) {
    if (!(error instanceof TarProblem)) throw error;
    problems.add(`${error.message}; the rest of the archive is not checked`);
    await reader.drain();
  }
  entries.checkSymlinks();
  return entries.scan;
}

/** What one reading of an archive has met so far, entry by entry. */
class EntryScan {
  readonly scan: Scan = { top: undefined, hashes: new Map(), metadata: new Map(), tags: new Map() };
  /** Clean archive paths met. */
  private readonly seen = new Set<string>();
  /** Clean archive path → link target, of every symlink. */
  private readonly links = new Map<string, string>();
  /** The symlinks that are safe on their own, to be resolved through the others at the end. */
  private readonly checkLinks: string[] = [];

  constructor(private readonly problems: Problems) {}

  /**
   * Judges an entry's name (one top directory, no duplicate) and the entry itself; its path under the top
   * directory, or undefined when its name is refused.
   */
  place(entry: TarEntry): string | undefined {
    const raw = entry.name;
    const bad = nameProblem(raw);
    const name = cleanName(raw);
    const first = name.split("/")[0] as string;
    if (bad !== undefined) {
      this.problems.add(`${JSON.stringify(raw)}: ${bad}`);
      return undefined;
    }
    if (this.scan.top === undefined) this.scan.top = first;
    if (first !== this.scan.top) {
      this.problems.add(`${JSON.stringify(raw)}: a second top-level entry (the first is ${this.scan.top})`);
      return undefined;
    }
    const rel = name === this.scan.top ? "" : name.slice(this.scan.top.length + 1);
    if (this.seen.has(name))
      this.problems.add(
        `${name}: appears twice in the archive${raw !== name && raw !== `${name}/` ? ` (as ${JSON.stringify(raw)})` : ""}`,
      );
    this.seen.add(name);
    this.judge(entry, name, rel, this.scan.top);
    return rel;
  }

  private judge(entry: TarEntry, name: string, rel: string, top: string): void {
    const type = entry.type;
    const problem =
      entryProblem({ name, type, linkname: entry.linkname }, top) ??
      modeProblem(type, entry.mode) ??
      ownerProblem(entry);
    // Every symlink counts when others are resolved through it, the refused ones too.
    if (type === "symlink") this.links.set(name, entry.linkname);
    if (problem !== undefined) this.problems.add(`${name}: ${problem}`);
    else if (rel === "" && type !== "directory")
      this.problems.add(`${name}: the top-level entry is a ${type}, not a directory`);
    else if (type === "symlink") this.checkLinks.push(name);
    else if (type === "link") this.hardlink(entry.linkname, name, rel, top);
  }

  /** A hardlink has its target's hash and dynamic tag. */
  private hardlink(linkname: string, name: string, rel: string, top: string): void {
    const target = cleanName(linkname).slice(top.length + 1);
    const hex = this.scan.hashes.get(target);
    if (hex === undefined) this.problems.add(`${name}: hardlink to ${linkname}, which is not a file before it`);
    else this.scan.hashes.set(rel, hex);
    const reading = this.scan.tags.get(target);
    if (reading !== undefined && rel.startsWith(`${LAYOUT.view}/`)) this.scan.tags.set(rel, reading);
  }

  /** Reads a file's body: its hash, the dynamic tag of a file of the view, and the metadata files kept whole. */
  async readFile(entry: TarEntry, rel: string | undefined): Promise<void> {
    const hash = createHash("sha256");
    const keep = rel === LAYOUT.manifest || rel === LAYOUT.checksums;
    const chunks: Buffer[] = [];
    const tags = rel?.startsWith(`${LAYOUT.view}/`) ? new DynamicTagReader() : undefined;
    let size = 0;
    for await (const chunk of entry.body) {
      hash.update(chunk);
      tags?.push(chunk);
      size += chunk.length;
      if (keep && size <= MAX_METADATA_BYTES) chunks.push(chunk);
    }
    if (rel === undefined || entry.type !== "file") return;
    this.scan.hashes.set(rel, hash.digest("hex"));
    if (tags !== undefined) this.scan.tags.set(rel, tags.finish());
    if (keep && size > MAX_METADATA_BYTES) this.problems.add(`${rel} is larger than ${MAX_METADATA_BYTES} bytes`);
    else if (keep) this.scan.metadata.set(rel, Buffer.concat(chunks));
  }

  /** At the end: no entry under a symlink, no symlink leaving the top directory through the others. */
  checkSymlinks(): void {
    const top = this.scan.top;
    if (top === undefined) return;
    for (const name of this.seen) {
      const above = symlinkAbove(name, this.links);
      if (above !== undefined)
        this.problems.add(`${name}: lies under ${above}, a symlink (tar would write through it)`);
    }
    for (const name of this.checkLinks) {
      const outside = symlinkEscape(name, this.links, top);
      if (outside !== undefined) this.problems.add(`${name}: symlink to ${this.links.get(name)!} ${outside}`);
    }
  }
}

function checkSums(scan: Scan, problems: Problems): void {
  const text = scan.metadata.get(LAYOUT.checksums);
  if (text === undefined) {
    problems.add(`${LAYOUT.checksums} is missing`);
    return;
  }
  const { files, bad } = parseSums(text.toString("utf8"));
  for (const line of bad) problems.add(`${LAYOUT.checksums}: unreadable line ${JSON.stringify(line.slice(0, 120))}`);
  for (const [path, hex] of files) {
    const actual = scan.hashes.get(path);
    if (actual === undefined) problems.add(`${LAYOUT.checksums} lists ${path}, which is not in the archive`);
    else if (actual !== hex) problems.add(`${path}: sha256 ${actual} does not match ${LAYOUT.checksums} (${hex})`);
  }
  for (const path of scan.hashes.keys()) {
    if (path !== LAYOUT.checksums && !files.has(path)) problems.add(`${path} is not listed in ${LAYOUT.checksums}`);
  }
}

/** Checks the manifest; returns it when it is a JSON object. */
function checkManifest(scan: Scan, problems: Problems): Record<string, unknown> | undefined {
  const text = scan.metadata.get(LAYOUT.manifest);
  if (text === undefined) {
    problems.add(`${LAYOUT.manifest} is missing`);
    return undefined;
  }
  let manifest: unknown;
  try {
    manifest = JSON.parse(text.toString("utf8"));
  } catch (error) {
    problems.add(`${LAYOUT.manifest} is not JSON: ${(error as Error).message}`);
    return undefined;
  }
  if (typeof manifest !== "object" || manifest === null || Array.isArray(manifest)) {
    problems.add(`${LAYOUT.manifest} is not a JSON object`);
    return undefined;
  }
  const record = manifest as Record<string, unknown>;
  const missing = MANIFEST_KEYS.filter((key) => !Object.hasOwn(record, key));
  if (missing.length > 0) problems.add(`${LAYOUT.manifest} lacks ${missing.join(", ")}`);
  const files = record["files"];
  if (typeof files !== "object" || files === null || Array.isArray(files)) {
    if (!missing.includes("files")) problems.add(`${LAYOUT.manifest}: files is not an object of path → sha256`);
    return record;
  }
  // A Map, never `in` on the parsed object: a file named `constructor` or `__proto__` is a name like any other.
  const listed = new Map(Object.entries(files as Record<string, unknown>));
  for (const [path, hex] of listed) {
    const actual = scan.hashes.get(path);
    if (actual === undefined) problems.add(`${LAYOUT.manifest} lists ${path}, which is not in the archive`);
    else if (actual !== hex)
      problems.add(`${path}: sha256 ${actual} does not match ${LAYOUT.manifest} (${String(hex)})`);
  }
  for (const path of scan.hashes.keys()) {
    if (path !== LAYOUT.checksums && path !== LAYOUT.manifest && !listed.has(path)) {
      problems.add(`${path} is not listed in ${LAYOUT.manifest}`);
    }
  }
  return record;
}

/**
 * A multi-target bundle (`stack-factory bundle`): its manifest's `bundle.targets` names each target's own manifest
 * and its sha256; each must be in the archive with that digest (the bundle's SHA256SUMS covers every other file).
 */
function checkBundleTargets(scan: Scan, manifest: Record<string, unknown>, problems: Problems): void {
  const bundle = manifest["bundle"];
  if (bundle === undefined) return;
  const targets = (bundle as { targets?: unknown } | null)?.targets;
  if (!Array.isArray(targets)) {
    problems.add(`${LAYOUT.manifest}: bundle.targets is not a list`);
    return;
  }
  for (const t of targets as { target?: unknown; manifest_sha256?: unknown }[]) {
    const name = typeof t?.target === "string" ? t.target : "";
    if (!/^[a-z0-9_.]+$/.test(name)) {
      problems.add(`${LAYOUT.manifest}: bundle.targets holds a bad target name ${JSON.stringify(t?.target)}`);
      continue;
    }
    const path = `targets/${name}/${LAYOUT.manifest}`;
    const actual = scan.hashes.get(path);
    if (actual === undefined) problems.add(`${LAYOUT.manifest}: the bundle's target ${name} has no ${path}`);
    else if (actual !== t.manifest_sha256) {
      problems.add(
        `${path}: sha256 ${actual} does not match the bundle's ${LAYOUT.manifest} (${String(t.manifest_sha256)})`,
      );
    }
  }
}

/**
 * Opens `path` for reading without blocking (a FIFO would otherwise wait for a writer forever) and checks that it
 * is a regular file. Returns undefined when it does not exist.
 */
async function openRegular(path: string): Promise<FileHandle | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new InputError(`${path} cannot be read: ${(error as Error).message}`, { cause: error });
  }
  const stats = await handle.stat();
  if (!stats.isFile()) {
    await handle.close();
    throw new InputError(`${path} is not a regular file (it is ${kindOf(stats)})`);
  }
  return handle;
}

export async function verifyTarball(path: string): Promise<VerifyReport> {
  const handle = await openRegular(path);
  if (handle === undefined) throw new InputError(`tarball ${path} cannot be read: it does not exist`);
  try {
    return await verifyOpen(path, handle);
  } finally {
    await handle.close();
  }
}

async function verifyOpen(path: string, handle: FileHandle): Promise<VerifyReport> {
  const problems = new Problems();
  const sidecar = await readSidecar(path);
  if (typeof sidecar === "string") problems.add(sidecar);
  else if (sidecar !== undefined && sidecar.name !== basename(path)) {
    problems.add(`${basename(path)}.sha256 names ${sidecar.name}, not ${basename(path)}`);
  }

  const decompress = await decompressor(handle);
  if (typeof decompress === "string") {
    problems.add(decompress);
    return { ok: false, problems: problems.all, files: 0 };
  }
  const fileHash = createHash("sha256");
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      fileHash.update(chunk);
      callback(null, chunk);
    },
  });
  let scan: Scan | undefined;
  try {
    await Promise.all([
      pipeline(
        handle.createReadStream({ start: 0, autoClose: false }),
        hashing,
        decompress.stream,
        async (source: AsyncIterable<Uint8Array>) => {
          scan = await scanEntries(new TarReader(source), problems);
        },
      ),
      decompress.exited,
    ]);
  } catch (error) {
    scan = undefined;
    problems.add(`cannot read the archive: ${(error as Error).message}`);
  }
  if (sidecar !== undefined && typeof sidecar !== "string" && scan !== undefined) {
    const actual = fileHash.digest("hex");
    if (actual !== sidecar.hex)
      problems.add(`${basename(path)}: sha256 ${actual} does not match ${basename(path)}.sha256 (${sidecar.hex})`);
  }
  if (scan === undefined) return { ok: false, problems: problems.all, files: 0 };
  const found: Scan = scan;
  let manifest: Record<string, unknown> | undefined;
  if (found.top === undefined) problems.add("the archive is empty");
  else {
    checkSums(found, problems);
    manifest = checkManifest(found, problems);
    if (manifest !== undefined) checkBundleTargets(found, manifest, problems);
    for (const problem of dynamicTagProblems(manifest?.["dynamic_tags"], found.tags)) problems.add(problem);
  }
  const baseImage = manifest?.["base_image"];
  const signingFingerprint = (manifest?.["signing_key"] as { fingerprint?: unknown } | undefined)?.fingerprint;
  return {
    ok: problems.all.length === 0,
    problems: problems.all,
    files: found.hashes.size,
    ...(found.top !== undefined ? { top: found.top } : {}),
    ...(typeof baseImage === "string" && baseImage !== "" ? { baseImage } : {}),
    ...(manifest?.["portability"] !== undefined ? { portability: manifest["portability"] } : {}),
    ...(typeof signingFingerprint === "string" ? { signingFingerprint } : {}),
  };
}
