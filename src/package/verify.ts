/**
 * Checks a stack tarball before it ships or installs: the sidecar checksum, that every entry is safe to extract
 * (one top directory, no absolute or `..` paths, links that stay inside, no devices or fifos), and that every
 * file matches SHA256SUMS and the manifest. Reports problems; only a missing file throws.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readFile, stat } from "node:fs/promises";
import { basename } from "node:path";
import { Duplex, Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { execa } from "execa";
import { extract, type Header } from "tar-stream";
import { InputError } from "../errors.js";
import { parseSums } from "./checksums.js";
import { cleanName, entryProblem, nameProblem } from "./entry-safety.js";
import { CHECKSUMS_FILE, MANIFEST_FILE } from "./layout.js";
import { MANIFEST_KEYS } from "./manifest.js";
import { findExecutable } from "./which.js";

export interface VerifyReport {
  ok: boolean;
  problems: string[];
  /** Regular files (hardlinks included) in the archive. */
  files: number;
  /** The top-level directory, when there is one. */
  top?: string;
  /** The manifest's base image (the image the stack was built on), when the manifest names one. */
  baseImage?: string;
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

async function magic(path: string): Promise<Buffer> {
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(4);
    const { bytesRead } = await handle.read(buffer, 0, 4, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

async function decompressor(path: string): Promise<{ stream: Duplex; exited: Promise<void> } | string> {
  const head = await magic(path);
  if (head.subarray(0, 2).equals(GZIP_MAGIC)) return { stream: createGunzip(), exited: Promise.resolve() };
  if (head.equals(ZSTD_MAGIC)) {
    const zstd = await findExecutable("zstd");
    if (zstd === undefined) return "the archive is zstd-compressed and the zstd program is not on PATH";
    const child = execa(zstd, ["-dc", "-q"], { stdin: "pipe", stdout: "pipe", stderr: "pipe", buffer: { stdout: false, stderr: true } });
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

async function readSidecar(path: string): Promise<{ hex: string; name: string } | string | undefined> {
  let text: string;
  try {
    text = await readFile(`${path}.sha256`, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
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
}

async function scanEntries(source: AsyncIterable<unknown> & { header?: unknown }, problems: Problems): Promise<Scan> {
  const scan: Scan = { top: undefined, hashes: new Map(), metadata: new Map() };
  const seen = new Set<string>();
  for await (const item of source) {
    const entry = item as Readable & { header: Header };
    const { header } = entry;
    const raw = header.name;
    const type = header.type ?? "file";
    const bad = nameProblem(raw);
    const name = cleanName(raw);
    const [first] = name.split("/");
    let rel: string | undefined;
    if (bad !== undefined) {
      problems.add(`${JSON.stringify(raw)}: ${bad}`);
    } else if (scan.top === undefined) {
      scan.top = first;
    }
    if (bad === undefined && first !== scan.top) {
      problems.add(`${JSON.stringify(raw)}: a second top-level entry (the first is ${scan.top})`);
    } else if (bad === undefined) {
      rel = name === scan.top ? "" : name.slice(scan.top!.length + 1);
      if (seen.has(name)) problems.add(`${name}: appears twice in the archive`);
      seen.add(name);
      const problem = entryProblem({ name, type, linkname: header.linkname }, scan.top!);
      if (problem !== undefined) problems.add(`${name}: ${problem}`);
      else if (type === "link") {
        const target = cleanName(header.linkname ?? "").slice(scan.top!.length + 1);
        const hex = scan.hashes.get(target);
        if (hex === undefined) problems.add(`${name}: hardlink to ${header.linkname}, which is not a file before it`);
        else scan.hashes.set(rel, hex);
      }
    }
    if (type === "file" || type === "contiguous-file") {
      const hash = createHash("sha256");
      const keep = rel === MANIFEST_FILE || rel === CHECKSUMS_FILE;
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of entry) {
        hash.update(chunk as Buffer);
        size += (chunk as Buffer).length;
        if (keep && size <= MAX_METADATA_BYTES) chunks.push(chunk as Buffer);
      }
      if (rel !== undefined) {
        scan.hashes.set(rel, hash.digest("hex"));
        if (keep && size > MAX_METADATA_BYTES) problems.add(`${rel} is larger than ${MAX_METADATA_BYTES} bytes`);
        else if (keep) scan.metadata.set(rel, Buffer.concat(chunks));
      }
    } else {
      entry.resume();
    }
  }
  return scan;
}

function checkSums(scan: Scan, problems: Problems): void {
  const text = scan.metadata.get(CHECKSUMS_FILE);
  if (text === undefined) {
    problems.add(`${CHECKSUMS_FILE} is missing`);
    return;
  }
  const { files, bad } = parseSums(text.toString("utf8"));
  for (const line of bad) problems.add(`${CHECKSUMS_FILE}: unreadable line ${JSON.stringify(line.slice(0, 120))}`);
  for (const [path, hex] of files) {
    const actual = scan.hashes.get(path);
    if (actual === undefined) problems.add(`${CHECKSUMS_FILE} lists ${path}, which is not in the archive`);
    else if (actual !== hex) problems.add(`${path}: sha256 ${actual} does not match ${CHECKSUMS_FILE} (${hex})`);
  }
  for (const path of scan.hashes.keys()) {
    if (path !== CHECKSUMS_FILE && !files.has(path)) problems.add(`${path} is not listed in ${CHECKSUMS_FILE}`);
  }
}

/** Checks the manifest; returns it when it is a JSON object. */
function checkManifest(scan: Scan, problems: Problems): Record<string, unknown> | undefined {
  const text = scan.metadata.get(MANIFEST_FILE);
  if (text === undefined) {
    problems.add(`${MANIFEST_FILE} is missing`);
    return undefined;
  }
  let manifest: unknown;
  try {
    manifest = JSON.parse(text.toString("utf8"));
  } catch (error) {
    problems.add(`${MANIFEST_FILE} is not JSON: ${(error as Error).message}`);
    return undefined;
  }
  if (typeof manifest !== "object" || manifest === null || Array.isArray(manifest)) {
    problems.add(`${MANIFEST_FILE} is not a JSON object`);
    return undefined;
  }
  const record = manifest as Record<string, unknown>;
  const missing = MANIFEST_KEYS.filter((key) => !(key in record));
  if (missing.length > 0) problems.add(`${MANIFEST_FILE} lacks ${missing.join(", ")}`);
  const files = record["files"];
  if (typeof files !== "object" || files === null || Array.isArray(files)) {
    if (!missing.includes("files")) problems.add(`${MANIFEST_FILE}: files is not an object of path → sha256`);
    return record;
  }
  const listed = files as Record<string, unknown>;
  for (const [path, hex] of Object.entries(listed)) {
    const actual = scan.hashes.get(path);
    if (actual === undefined) problems.add(`${MANIFEST_FILE} lists ${path}, which is not in the archive`);
    else if (actual !== hex) problems.add(`${path}: sha256 ${actual} does not match ${MANIFEST_FILE} (${String(hex)})`);
  }
  for (const path of scan.hashes.keys()) {
    if (path !== CHECKSUMS_FILE && path !== MANIFEST_FILE && !(path in listed)) {
      problems.add(`${path} is not listed in ${MANIFEST_FILE}`);
    }
  }
  return record;
}

export async function verifyTarball(path: string): Promise<VerifyReport> {
  try {
    const stats = await stat(path);
    if (!stats.isFile()) throw new InputError(`${path} is not a regular file`);
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(`tarball ${path} cannot be read: ${(error as Error).message}`, { cause: error });
  }
  const problems = new Problems();
  const sidecar = await readSidecar(path);
  if (typeof sidecar === "string") problems.add(sidecar);
  else if (sidecar !== undefined && sidecar.name !== basename(path)) {
    problems.add(`${basename(path)}.sha256 names ${sidecar.name}, not ${basename(path)}`);
  }

  const decompress = await decompressor(path);
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
  const extractor = extract();
  const reading = pipeline(createReadStream(path), hashing, decompress.stream, extractor as unknown as NodeJS.WritableStream);
  reading.catch(() => {});
  let scan: Scan | undefined;
  try {
    [scan] = await Promise.all([scanEntries(extractor as unknown as AsyncIterable<unknown>, problems), reading, decompress.exited]);
  } catch (error) {
    problems.add(`cannot read the archive: ${(error as Error).message}`);
  }
  if (sidecar !== undefined && typeof sidecar !== "string" && scan !== undefined) {
    const actual = fileHash.digest("hex");
    if (actual !== sidecar.hex) problems.add(`${basename(path)}: sha256 ${actual} does not match ${basename(path)}.sha256 (${sidecar.hex})`);
  }
  if (scan === undefined) return { ok: false, problems: problems.all, files: 0 };
  let manifest: Record<string, unknown> | undefined;
  if (scan.top === undefined) problems.add("the archive is empty");
  else {
    checkSums(scan, problems);
    manifest = checkManifest(scan, problems);
  }
  const baseImage = manifest?.["base_image"];
  return {
    ok: problems.all.length === 0,
    problems: problems.all,
    files: scan.hashes.size,
    ...(scan.top !== undefined ? { top: scan.top } : {}),
    ...(typeof baseImage === "string" && baseImage !== "" ? { baseImage } : {}),
  };
}
