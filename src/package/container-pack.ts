/**
 * Packs a stack tarball inside the build container, so that the factory's node process is not on the data path:
 * GNU tar reads the prepared view and the generated files and writes straight into zstd or pigz/gzip, a thread of
 * templates/pack-tree.py hashes every file meanwhile (OpenSSL, through Python's hashlib) for manifest.json and
 * SHA256SUMS, and node only copies the finished tarball out of the container as one file through the engine API
 * (getArchive, container-copy-out.ts), checking its size and hashing that one stream for the sidecar. When the
 * engine runs here and the output directory is mounted in the container (sharedOutDir), the tarball is written there
 * and nothing is copied.
 *
 * Node decides what goes in and in which order (pack-rules.ts, names from layout.ts): it lists
 * the view (`find`), refuses or skips what the verifier would refuse, uploads the generated files, and hands the
 * packer the ordered member list. Output: `<outDir>/<top>.tar.zst|.tar.gz` via a partial file renamed into place,
 * and `<final>.sha256`. packInContainer runs the steps in order: packSettings, listView, planMembers, the upload
 * (packJob, uploadGenerated), runPacker, receiveTarball, publish.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { basename, join, posix } from "node:path";
import type { Readable } from "node:stream";
import type { ExecOptions, FileEntry, FileOwner } from "../docker/index.js";
import { BuildError, CancelledError, FactoryError, InputError } from "../errors.js";
import { writeFileAtomic } from "../fs/write-atomic.js";
import { parentDirs } from "../fs/move-aside.js";
import { projectRoot } from "../project-root.js";
import { COMPRESSIONS, extensionOf, type Compression } from "./compressor.js";
import { copyFileOut } from "./container-copy-out.js";
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

/** What packInContainer settles before touching the container. */
interface PackSettings {
  compression: Compression;
  /** The view's path, normalised, without a trailing slash. */
  view: string;
  /** The scratch directory in the container, normalised. */
  work: string;
  /** The time of every entry, in seconds since the epoch. */
  mtime: number;
}

/** Checks the options that need no container: names, compression, the view and pack directory paths. */
function packSettings(options: ContainerPackOptions): PackSettings {
  checkTop(options.top);
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
  return { compression, view, work, mtime };
}

/**
 * Step 1: empties the pack directory, then lists the view and who we are in the container (the uploads must be
 * ours to remove).
 */
async function listView(
  container: PackContainer,
  settings: PackSettings,
  signal?: AbortSignal,
): Promise<{ owner: FileOwner; entries: ViewEntry[] }> {
  const listing = await run(
    container,
    [
      "sh",
      "-c",
      // The view's real path: a symlink to it would be archived as a symlink.
      'rm -rf -- "$2" && id -u && id -g && test -d "$1" && ! test -L "$1" && exec find "$1" -mindepth 1 -printf "%y\\0%P\\0%l\\0"',
      "sh",
      settings.view,
      settings.work,
    ],
    `listing the view ${settings.view}`,
    signal,
  );
  const firstNl = listing.indexOf(10);
  const secondNl = listing.indexOf(10, firstNl + 1);
  const owner = {
    uid: Number(listing.subarray(0, firstNl).toString()),
    gid: Number(listing.subarray(firstNl + 1, secondNl).toString()),
  };
  if (!Number.isInteger(owner.uid) || !Number.isInteger(owner.gid))
    throw new BuildError("cannot read the container user's uid and gid");
  return { owner, entries: parseListing(listing.subarray(secondNl + 1)) };
}

/**
 * Step 2: the members, in the tarball's order: the top directory, install.sh, the other generated files (each
 * after its directories), the view, then (added by the packer) manifest.json and SHA256SUMS. View entries the
 * verifier would refuse fail the pack, or are skipped and named with `onUnsafe: "skip"`.
 */
function planMembers(
  top: string,
  generated: [string, GeneratedFile][],
  entries: ViewEntry[],
  onUnsafe: ContainerPackOptions["onUnsafe"],
): { members: Member[]; skipped: string[] } {
  const members: Member[] = [["s", "d", ""]];
  const dirs = new Set<string>();
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
      if (onUnsafe !== "skip") throw new BuildError(`the view holds ${LAYOUT.view}/${rel}: ${problem}`);
      skipped.push(`${LAYOUT.view}/${rel}: ${problem}`);
      continue;
    }
    members.push(["v", type === "directory" ? "d" : type === "symlink" ? "l" : "f", rel]);
  }
  return { members, skipped };
}

/** The packer's job.json (templates/pack-tree.py says what each field means), without `assemble`. */
function packJob(options: ContainerPackOptions, settings: PackSettings, members: Member[], partial: string) {
  return {
    top: options.top,
    layout: scriptLayout(),
    view: settings.view,
    members,
    mtime: settings.mtime,
    compression: settings.compression,
    gzip_program: options.gzipProgram ?? "pigz",
    stream_digest: options.checkDigest ?? false,
    ...(options.sharedOutDir === undefined ? {} : { output: posix.join(options.sharedOutDir, basename(partial)) }),
    manifest: manifestFrame(options.manifest),
  };
}

/** What the packer reports on its `done` line. */
interface Packed {
  bytes: number;
  /** The tarball's sha256 as the container computed it, or "-" when it was not asked to. */
  sha256: string;
  files: number;
  /** The tarball's path in the container. */
  path: string;
  /** The compressor, e.g. `zstd -3 -T0`. */
  label: string;
}

/** Step 4: runs the packer uploaded into the pack directory; returns what it reported of the finished tarball. */
async function runPacker(
  container: PackContainer,
  work: string,
  onLog: ContainerPackOptions["onLog"],
  signal?: AbortSignal,
): Promise<Packed> {
  let done: Packed | undefined;
  let line = "";
  const stderr: Buffer[] = [];
  let stderrBytes = 0;
  const onStdout = (chunk: Buffer): void => {
    line += chunk.toString("utf8");
    for (let nl = line.indexOf("\n"); nl >= 0; nl = line.indexOf("\n")) {
      const words = line.slice(0, nl).split(" ");
      line = line.slice(nl + 1);
      if (words[0] === "done") {
        const [bytes, sha256, files, path] = words.slice(1, 5);
        done = {
          bytes: Number(bytes),
          sha256: sha256!,
          files: Number(files),
          path: path!,
          label: words.slice(5).join(" "),
        };
      }
    }
  };
  const onStderr = (chunk: Buffer): void => {
    onLog?.(chunk);
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
  return done;
}

/**
 * Step 5: the finished tarball here, at `partial`: copied out (one file through the engine API) and hashed on the
 * way, or, with a shared directory, hashed where it already is. Checks its size (and the container's digest when
 * it made one); returns its sha256.
 */
async function receiveTarball(
  options: ContainerPackOptions,
  done: Packed,
  partial: string,
  signal?: AbortSignal,
): Promise<string> {
  const hash = createHash("sha256");
  if (options.sharedOutDir === undefined) {
    await copyFileOut(options.container, done.path, done.bytes, partial, hash, signal);
  } else {
    for await (const chunk of createReadStream(partial, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  }
  const sha256 = hash.digest("hex");
  if (done.sha256 !== "-" && sha256 !== done.sha256)
    throw new BuildError(`the tarball copied out has sha256 ${sha256}, the container wrote ${done.sha256}`);
  const { size } = await stat(partial);
  if (size !== done.bytes)
    throw new BuildError(`the tarball here has ${size} bytes, the container wrote ${done.bytes}`);
  return sha256;
}

/** Step 6: the partial file renamed into place, then its sidecar. */
async function publish(partial: string, final: string, sha256: string): Promise<void> {
  // A sidecar of an earlier tarball of the same name must not sit beside the new one, even for a moment.
  await rm(`${final}.sha256`, { force: true });
  await rename(partial, final);
  await writeFileAtomic(`${final}.sha256`, `${sha256}  ${basename(final)}\n`);
}

/** Packs `<outDir>/<top>.tar.gz` (or `.tar.zst`) in the container and writes its `.sha256` sidecar. */
export async function packInContainer(options: ContainerPackOptions): Promise<PackResult> {
  const { container, top, signal } = options;
  const settings = packSettings(options);
  if (signal?.aborted) throw new CancelledError();

  await mkdir(options.outDir, { recursive: true });
  const final = join(options.outDir, `${top}${extensionOf(settings.compression)}`);
  const partial = `${final}.partial-${process.pid}`;
  let cleanWork = false;

  try {
    const { owner, entries } = await listView(container, settings, signal);
    cleanWork = true;
    const generated = Object.entries(options.files ?? {}).sort(([a], [b]) => generatedOrder(a, b));
    const { members, skipped } = planMembers(top, generated, entries, options.onUnsafe);
    // Step 3: the generated files, the job and the packer into the container.
    const job = packJob(options, settings, members, partial);
    const script = await packScript();
    await uploadGenerated(container, settings.work, top, generated, owner, (assemble) => ({
      "job.json": JSON.stringify({ ...job, assemble }),
      "pack-tree.py": { content: script, mode: 0o755 },
    }));
    if (signal?.aborted) throw new CancelledError();
    const done = await runPacker(container, settings.work, options.onLog, signal);
    const sha256 = await receiveTarball(options, done, partial, signal);
    if (signal?.aborted) throw new CancelledError();
    await publish(partial, final, sha256);
    return { path: final, sha256, bytes: done.bytes, files: done.files, skipped, compressor: done.label };
  } catch (error) {
    await rm(partial, { force: true });
    if (signal?.aborted) throw new CancelledError();
    if (error instanceof FactoryError) throw error;
    throw new BuildError(`packing ${final} failed: ${(error as Error).message}`, { cause: error });
  } finally {
    if (cleanWork && !signal?.aborted) await container.exec(["rm", "-rf", "--", settings.work]).catch(() => {});
  }
}
