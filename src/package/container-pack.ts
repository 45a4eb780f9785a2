/**
 * Packs a stack tarball inside the build container, so that the factory's node process is not on the data path:
 * GNU tar reads the prepared view and the generated files and writes straight into zstd or pigz/gzip, a thread of
 * templates/pack-tree.py hashes every file meanwhile (OpenSSL, through Python's hashlib) for manifest.json and
 * SHA256SUMS, and node only copies the finished tarball out of the container as one file through the engine API
 * (getArchive), checking its size and hashing that one stream for the sidecar. When the engine runs here and the
 * output directory is mounted in the container (sharedOutDir), the tarball is written there and nothing is copied.
 *
 * Node decides what goes in and in which order (pack-rules.ts, names from layout.ts): it lists
 * the view (`find`), refuses or skips what the verifier would refuse, uploads the generated files, and hands the
 * packer the ordered member list. Output: `<outDir>/<top>.tar.zst|.tar.gz` via a partial file renamed into place,
 * and `<final>.sha256`.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { basename, join, posix } from "node:path";
import type { Readable } from "node:stream";
import type { ExecOptions, FileEntry, FileOwner } from "../docker/index.js";
import { BuildError, CancelledError, FactoryError, InputError } from "../errors.js";
import { writeFileAtomic } from "../fs/write-atomic.js";
import { parentDirs } from "../fs/move-aside.js";
import { projectRoot } from "../project-root.js";
import { COMPRESSIONS, extensionOf, type Compression } from "./compressor.js";
import { entryProblem } from "./entry-safety.js";
import { openGenerated, type GeneratedFile } from "./generated-files.js";
import { withFiles, type Manifest } from "./manifest.js";
import { LAYOUT, scriptLayout } from "./layout.js";
import { checkGeneratedPath, checkTop, defaultMtime, generatedOrder, type PackResult } from "./pack-rules.js";

/** What the packer needs of a build container (BuildContainer has it; tests use a local stand-in). */
export interface PackContainer {
  exec(argv: string[], options?: ExecOptions): Promise<{ exitCode: number }>;
  putFiles(dir: string, files: Record<string, FileEntry>, owner?: FileOwner): Promise<void>;
  getArchive(path: string, signal?: AbortSignal): Promise<Readable>;
}

export interface ContainerPackOptions {
  container: PackContainer;
  /** The prepared view's real path in the container (the build prefix); archived as `<top>/view` (LAYOUT.view). */
  view: string;
  /** Name of the top-level directory, `<name>-<version>-<target>`; also the file name without extension. */
  top: string;
  outDir: string;
  /** Default gzip. */
  compression?: Compression;
  /** gzip with `pigz` when the container has it (default) or always with `gzip`; the output differs, each is reproducible. */
  gzipProgram?: "pigz" | "gzip";
  /** Files beside the view, path relative to the top directory → content (install.sh, modules, sbom, data...). */
  files?: Record<string, GeneratedFile>;
  /** The manifest; its `files` are filled in with the checksums of every file packed. */
  manifest: Omit<Manifest, "files"> & { files?: Record<string, string> };
  /** Time of every entry. Default: SOURCE_DATE_EPOCH when set, else the epoch. */
  mtime?: Date;
  /** View entries the verifier would refuse: `reject` (default) fails the pack, `skip` leaves them out. */
  onUnsafe?: "reject" | "skip";
  /** Scratch directory in the container, removed before and after packing. Must not be inside the view. */
  workDir?: string;
  /**
   * Also hash the finished tarball in the container, and fail unless the bytes here have the same sha256. Default
   * false: the copy is checked by its size (the engine's archive header carries it), and node hashes the bytes it
   * wrote for the sidecar either way.
   */
  checkDigest?: boolean;
  /**
   * The container path at which `outDir` is mounted read-write, when the engine runs on this machine: the packer
   * then writes the tarball straight into it (under its partial name) and nothing is copied through the engine.
   * Default: copy through the engine.
   */
  sharedOutDir?: string;
  /** The packer's stderr, for the target's log. */
  onLog?: (chunk: Buffer) => void;
  signal?: AbortSignal;
}

export const DEFAULT_WORK_DIR = "/sf/stage/pack";
export const PACK_SCRIPT = "templates/pack-tree.py";
/** Generated files are uploaded in batches (and large ones in pieces) of about this many bytes. */
const UPLOAD_BYTES = 16 * 1024 * 1024;
const STDERR_KEEP = 16 * 1024;
/** The copied tarball is written in pieces of about this size. */
const WRITE_BYTES = 4 * 1024 * 1024;

type Member = [kind: "s" | "v", type: "d" | "f" | "l", rel: string];

interface ViewEntry {
  type: string;
  rel: string;
  link: string;
}

const FIND_TYPES: Record<string, string> = {
  f: "file",
  d: "directory",
  l: "symlink",
  b: "block-device",
  c: "character-device",
  p: "fifo",
  s: "socket",
  D: "door",
};

let scriptText: Promise<string> | undefined;
function packScript(): Promise<string> {
  scriptText ??= readFile(join(projectRoot, PACK_SCRIPT), "utf8");
  return scriptText;
}

/** Runs a short command in the container; returns its stdout, throws with its stderr on failure. */
async function run(container: PackContainer, argv: string[], what: string, signal?: AbortSignal): Promise<Buffer> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const { exitCode } = await container.exec(argv, {
    onStdout: (c) => out.push(c),
    onStderr: (c) => err.push(c),
    ...(signal ? { signal } : {}),
  });
  if (exitCode !== 0) {
    throw new BuildError(
      `${what} failed (exit code ${exitCode}): ${Buffer.concat(err).toString("utf8").trim().slice(-2000)}`,
    );
  }
  return Buffer.concat(out);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** `find -printf '%y\0%P\0%l\0'` records, in the order a sorted walk visits them (parents first, names in byte order). */
export function parseListing(raw: Buffer): ViewEntry[] {
  const entries: { entry: ViewEntry; key: Buffer }[] = [];
  let at = 0;
  const field = (): Buffer => {
    const end = raw.indexOf(0, at);
    if (end < 0) throw new BuildError("the view listing is truncated");
    const bytes = raw.subarray(at, end);
    at = end + 1;
    return bytes;
  };
  while (at < raw.length) {
    const type = field().toString("latin1");
    const relBytes = field();
    const linkBytes = field();
    let rel: string;
    let link: string;
    try {
      rel = utf8.decode(relBytes);
      link = utf8.decode(linkBytes);
    } catch {
      throw new BuildError(`the view holds a name that is not UTF-8: ${JSON.stringify(relBytes.toString("latin1"))}`);
    }
    // '/' as the smallest byte: a directory's entries follow it, before any sibling that sorts after it.
    const key = Buffer.from(relBytes);
    for (let i = 0; i < key.length; i++) if (key[i] === 0x2f) key[i] = 0;
    entries.push({ entry: { type: FIND_TYPES[type] ?? `unknown (${type})`, rel, link }, key });
  }
  return entries.sort((a, b) => Buffer.compare(a.key, b.key)).map((e) => e.entry);
}

/** The manifest text around its `files` object, which the packer fills in. */
export function manifestFrame(manifest: ContainerPackOptions["manifest"]): [string, string] {
  const text = `${JSON.stringify(withFiles(manifest, {}), null, 2)}\n`;
  const marker = '\n  "files": {}';
  const at = text.indexOf(marker);
  if (at < 0 || text.indexOf(marker, at + 1) >= 0) throw new BuildError("cannot find the files entry in the manifest");
  return [text.slice(0, at + marker.length - 2), text.slice(at + marker.length)];
}

/** The partial tarball: chunks gathered into few large writes (the copy is the packer's busiest part in node). */
class OutputFile {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private closed = false;
  private constructor(private readonly handle: FileHandle) {}

  static async open(path: string): Promise<OutputFile> {
    return new OutputFile(await open(path, "w"));
  }

  /** Holds a chunk; true when enough is held to write. */
  add(chunk: Buffer): boolean {
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    return this.heldBytes >= WRITE_BYTES;
  }

  async flush(): Promise<void> {
    // writev, not a concatenation: copying every byte once more in node costs as much garbage collection as the copy.
    let held = this.held;
    let left = this.heldBytes;
    this.held = [];
    this.heldBytes = 0;
    while (left > 0) {
      const { bytesWritten } = await this.handle.writev(held);
      left -= bytesWritten;
      if (left === 0) break;
      // A short write: go on from where it stopped.
      let skip = bytesWritten;
      while (skip >= held[0]!.length) skip -= held.shift()!.length;
      held = [held[0]!.subarray(skip), ...held.slice(1)];
    }
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    await this.handle.close();
  }

  async discard(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close().catch(() => {});
  }
}

function tarNumber(field: Buffer): number {
  // Base-256 (GNU, for big values) or NUL/space-terminated octal.
  if (field[0]! & 0x80) return field.subarray(1).reduce((n, byte) => n * 256 + byte, field[0]! & 0x7f);
  const text = field.toString("latin1").replace(/\0.*$/s, "").trim();
  return text === "" ? 0 : parseInt(text, 8);
}

function checkHeader(header: Buffer, path: string): void {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!;
  if (sum !== tarNumber(header.subarray(148, 156)))
    throw new BuildError(`${path}: the engine's archive has a corrupt header`);
}

/**
 * Copies one file out of the container (one getArchive) into `sink`. The engine's archive of a file is
 * a header or two and the body: read here directly rather than through a tar parser, which doubled node's share of
 * the copy.
 */
async function copyOut(
  container: PackContainer,
  path: string,
  bytes: number,
  sink: OutputFile,
  hash: Hash,
  signal?: AbortSignal,
): Promise<void> {
  const archive = await container.getArchive(path, signal);
  let pending: Buffer = Buffer.alloc(0);
  /** Bytes of the current record still to skip (extended headers and their padding). */
  let skip = 0;
  let body = -1;
  /** Takes one chunk of the archive; true when the file should be written before the next. */
  const take = (raw: Buffer): boolean => {
    let chunk: Buffer = raw;
    while (chunk.length > 0 && body < 0) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length);
        skip -= n;
        chunk = chunk.subarray(n);
        continue;
      }
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      if (pending.length < 512) return false;
      const header = pending.subarray(0, 512);
      chunk = pending.subarray(512);
      pending = Buffer.alloc(0);
      if (header.every((b) => b === 0)) throw new BuildError(`${path} came back as an empty archive`);
      checkHeader(header, path);
      const type = String.fromCharCode(header[156]!);
      const size = tarNumber(header.subarray(124, 136));
      if (type === "x" || type === "g" || type === "L" || type === "K") {
        skip = Math.ceil(size / 512) * 512;
      } else if (type === "0" || type === "\0" || type === "7") {
        if (size !== bytes) throw new BuildError(`${path} came back with ${size} bytes, not ${bytes}`);
        body = 0;
      } else {
        throw new BuildError(`${path} came back as a tar entry of type ${JSON.stringify(type)}, not a file`);
      }
    }
    if (body < 0 || chunk.length === 0 || body === bytes) return false;
    const data = chunk.length <= bytes - body ? chunk : chunk.subarray(0, bytes - body);
    hash.update(data);
    body += data.length;
    return sink.add(data);
  };
  try {
    // 'data' events, not an async iterator: the iterator concatenates whatever piled up while a write was under way,
    // a copy and an allocation of most of the bytes.
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (error: unknown): void => {
        if (settled) return;
        settled = true;
        reject(error);
      };
      const finish = (): void => {
        if (settled) return;
        settled = true;
        resolve();
      };
      archive.on("data", (raw: Buffer) => {
        if (settled) return;
        let write: boolean;
        try {
          write = take(raw);
        } catch (error) {
          fail(error);
          return;
        }
        if (write) {
          archive.pause();
          sink.flush().then(() => (body === bytes ? finish() : archive.resume()), fail);
        } else if (body === bytes) finish();
      });
      archive.on("end", finish);
      archive.on("error", fail);
      archive.on("close", () => fail(new BuildError(`${path}: the engine closed the archive early`)));
    });
  } finally {
    archive.destroy();
  }
  if (body !== bytes) throw new BuildError(`${path}: copied ${Math.max(body, 0)} bytes of ${bytes}`);
}

interface Upload {
  files: Record<string, FileEntry>;
  assemble: [string, string[]][];
}

/** Uploads the generated files under `<work>/stage/<top>/`, large host files in pieces; returns what to join. */
async function uploadGenerated(
  container: PackContainer,
  work: string,
  top: string,
  generated: [string, GeneratedFile][],
  owner: FileOwner,
  last: (assemble: [string, string[]][]) => Record<string, FileEntry>,
): Promise<void> {
  const upload: Upload = { files: {}, assemble: [] };
  let batch = 0;
  const flush = async (): Promise<void> => {
    if (Object.keys(upload.files).length === 0) return;
    await container.putFiles(work, upload.files, owner);
    upload.files = {};
    batch = 0;
  };
  let pieces = 0;
  for (const [path, file] of generated) {
    const opened = await openGenerated(path, file);
    const name = `stage/${top}/${path}`;
    if (opened.body instanceof Uint8Array) {
      upload.files[name] = { content: Buffer.from(opened.body), mode: opened.mode };
      batch += opened.size;
    } else if (opened.size <= UPLOAD_BYTES) {
      const chunks: Buffer[] = [];
      for await (const chunk of opened.body) chunks.push(Buffer.from(chunk));
      upload.files[name] = { content: Buffer.concat(chunks), mode: opened.mode };
      batch += opened.size;
    } else {
      // The file itself starts empty (with its mode); the packer appends the pieces in order.
      upload.files[name] = { content: Buffer.alloc(0), mode: opened.mode };
      const parts: string[] = [];
      let held: Buffer[] = [];
      let heldBytes = 0;
      const put = async (): Promise<void> => {
        const piece = `upload/${pieces++}`;
        parts.push(piece);
        upload.files[piece] = { content: Buffer.concat(held), mode: 0o600 };
        held = [];
        heldBytes = 0;
        await flush();
      };
      for await (const chunk of opened.body) {
        held.push(Buffer.from(chunk));
        heldBytes += chunk.length;
        if (heldBytes >= UPLOAD_BYTES) await put();
      }
      if (heldBytes > 0) await put();
      upload.assemble.push([path, parts]);
    }
    if (batch >= UPLOAD_BYTES) await flush();
  }
  // The job goes with the last batch (usually the only one).
  Object.assign(upload.files, last(upload.assemble));
  await flush();
}

/** Packs `<outDir>/<top>.tar.gz` (or `.tar.zst`) in the container and writes its `.sha256` sidecar. */
export async function packInContainer(options: ContainerPackOptions): Promise<PackResult> {
  const { container, top, signal } = options;
  checkTop(top);
  for (const path of Object.keys(options.files ?? {})) checkGeneratedPath(path);
  const compression = options.compression ?? "gzip";
  if (!COMPRESSIONS.includes(compression)) {
    throw new InputError(
      `unknown compression ${JSON.stringify(compression)}; accepted values are ${COMPRESSIONS.join(", ")}`,
    );
  }
  if (!options.view.startsWith("/"))
    throw new BuildError(`the view path ${JSON.stringify(options.view)} must be absolute`);
  const view = posix.normalize(options.view).replace(/(.)\/+$/, "$1");
  const work = posix.normalize(options.workDir ?? DEFAULT_WORK_DIR);
  if (view === "/") throw new BuildError("the view cannot be the container's root directory");
  if (work === view || work.startsWith(`${view}/`))
    throw new BuildError(`the pack directory ${work} is inside the view ${view}`);
  // The pack directory is removed before and after: it must hold nothing but the packer's files.
  if (work === "/" || view.startsWith(`${work}/`))
    throw new BuildError(`the pack directory ${work} would hold the view ${view}`);
  const mtime = Math.floor((options.mtime ?? defaultMtime()).getTime() / 1000);
  if (signal?.aborted) throw new CancelledError();

  await mkdir(options.outDir, { recursive: true });
  const final = join(options.outDir, `${top}${extensionOf(compression)}`);
  const partial = `${final}.partial-${process.pid}`;
  let cleanWork = false;
  let sink: OutputFile | undefined;

  try {
    // 1. What the view holds, and who we are in the container (the uploads must be ours to remove).
    const listing = await run(
      container,
      [
        "sh",
        "-c",
        // The view's real path: a symlink to it would be archived as a symlink.
        'rm -rf -- "$2" && id -u && id -g && test -d "$1" && ! test -L "$1" && exec find "$1" -mindepth 1 -printf "%y\\0%P\\0%l\\0"',
        "sh",
        view,
        work,
      ],
      `listing the view ${view}`,
      signal,
    );
    cleanWork = true;
    const firstNl = listing.indexOf(10);
    const secondNl = listing.indexOf(10, firstNl + 1);
    const owner = {
      uid: Number(listing.subarray(0, firstNl).toString()),
      gid: Number(listing.subarray(firstNl + 1, secondNl).toString()),
    };
    if (!Number.isInteger(owner.uid) || !Number.isInteger(owner.gid))
      throw new BuildError("cannot read the container user's uid and gid");
    const entries = parseListing(listing.subarray(secondNl + 1));

    // 2. The members, in the tarball's order: the top directory, install.sh, the other generated files (each after
    //    its directories), the view, then (added by the packer) manifest.json and SHA256SUMS.
    const members: Member[] = [["s", "d", ""]];
    const dirs = new Set<string>();
    const generated = Object.entries(options.files ?? {}).sort(([a], [b]) => generatedOrder(a, b));
    for (const [path] of generated) {
      for (const dir of parentDirs(path)) {
        if (dirs.has(dir)) continue;
        dirs.add(dir);
        members.push(["s", "d", dir]);
      }
      members.push(["s", "f", path]);
    }
    members.push(["v", "d", ""]);
    const skipped: string[] = [];
    for (const { type, rel, link } of entries) {
      const name = `${top}/${LAYOUT.view}/${rel}`;
      const problem = entryProblem({ name, type, linkname: type === "symlink" ? link : null }, top);
      if (problem !== undefined) {
        if (options.onUnsafe !== "skip") throw new BuildError(`the view holds ${LAYOUT.view}/${rel}: ${problem}`);
        skipped.push(`${LAYOUT.view}/${rel}: ${problem}`);
        continue;
      }
      members.push(["v", type === "directory" ? "d" : type === "symlink" ? "l" : "f", rel]);
    }

    // 3. The generated files, the job and the packer into the container.
    const job = {
      top,
      layout: scriptLayout(),
      view,
      members,
      mtime,
      compression,
      gzip_program: options.gzipProgram ?? "pigz",
      stream_digest: options.checkDigest ?? false,
      ...(options.sharedOutDir === undefined ? {} : { output: posix.join(options.sharedOutDir, basename(partial)) }),
      manifest: manifestFrame(options.manifest),
    };
    const script = await packScript();
    await uploadGenerated(container, work, top, generated, owner, (assemble) => ({
      "job.json": JSON.stringify({ ...job, assemble }),
      "pack-tree.py": { content: script, mode: 0o755 },
    }));
    if (signal?.aborted) throw new CancelledError();

    // 4. Pack. The packer reports the tarball when it is complete: copy it out (one file through the engine API)
    //    and hash it, or, with a shared directory, hash it where it already is.
    let done: { bytes: number; sha256: string; files: number; path: string; label: string } | undefined;
    let line = "";
    const stderr: Buffer[] = [];
    let stderrBytes = 0;
    const onStdout = (chunk: Buffer): void => {
      line += chunk.toString("utf8");
      for (let nl = line.indexOf("\n"); nl >= 0; nl = line.indexOf("\n")) {
        const words = line.slice(0, nl).split(" ");
        line = line.slice(nl + 1);
        if (words[0] === "done") {
          done = {
            bytes: Number(words[1]),
            sha256: words[2]!,
            files: Number(words[3]),
            path: words[4]!,
            label: words.slice(5).join(" "),
          };
        }
      }
    };
    const onStderr = (chunk: Buffer): void => {
      options.onLog?.(chunk);
      stderr.push(chunk);
      stderrBytes += chunk.length;
      while (stderrBytes > STDERR_KEEP && stderr.length > 1) stderrBytes -= stderr.shift()!.length;
    };
    const { exitCode } = await container.exec(["python3", `${work}/pack-tree.py`, `${work}/job.json`], {
      onStdout,
      onStderr,
      ...(signal ? { signal } : {}),
    });
    if (exitCode !== 0) {
      throw new BuildError(
        `packing in the container failed (exit code ${exitCode}): ${Buffer.concat(stderr).toString("utf8").trim()}`,
      );
    }
    if (done === undefined || !Number.isSafeInteger(done.bytes))
      throw new BuildError("the packer ended without reporting the tarball");
    const hash = createHash("sha256");
    if (options.sharedOutDir === undefined) {
      const out = await OutputFile.open(partial);
      sink = out;
      await copyOut(container, done.path, done.bytes, out, hash, signal);
      await out.close();
    } else {
      for await (const chunk of createReadStream(partial, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
    }
    const sha256 = hash.digest("hex");
    if (done.sha256 !== "-" && sha256 !== done.sha256)
      throw new BuildError(`the tarball copied out has sha256 ${sha256}, the container wrote ${done.sha256}`);
    const { size } = await stat(partial);
    if (size !== done.bytes)
      throw new BuildError(`the tarball here has ${size} bytes, the container wrote ${done.bytes}`);
    if (signal?.aborted) throw new CancelledError();
    // A sidecar of an earlier tarball of the same name must not sit beside the new one, even for a moment.
    await rm(`${final}.sha256`, { force: true });
    await rename(partial, final);
    await writeFileAtomic(`${final}.sha256`, `${sha256}  ${basename(final)}\n`);
    return { path: final, sha256, bytes: size, files: done.files, skipped, compressor: done.label };
  } catch (error) {
    await sink?.discard();
    await rm(partial, { force: true });
    if (signal?.aborted) throw new CancelledError();
    if (error instanceof FactoryError) throw error;
    throw new BuildError(`packing ${final} failed: ${(error as Error).message}`, { cause: error });
  } finally {
    if (cleanWork && !signal?.aborted) await container.exec(["rm", "-rf", "--", work]).catch(() => {});
  }
}
