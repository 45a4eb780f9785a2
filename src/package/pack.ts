/**
 * Assembles a stack tarball (layout in layout.ts) from a tar stream of the view and the generated files, in this
 * process. The factory packs in the build container instead (container-pack.ts, same layout and checks, node off
 * the data path); this packer serves callers that hold a view as a tar stream (tests, benchmarks). It streams
 * end to end: entry bodies go through a hash into the pack, the pack through a compressor into a
 * partial file that is renamed into place at the end. Output depends only on the input (fixed times and owners).
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { writeFileAtomic } from "../fs/write-atomic.js";
import { basename, join } from "node:path";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { extract, pack as createPack, type Header, type Pack } from "tar-stream";
import { BuildError, CancelledError, FactoryError, InputError } from "../errors.js";
import { byteOrder, formatSums } from "./checksums.js";
import {
  extensionOf,
  openCompressor,
  type Compression,
  type Compressor,
  type CompressorPreference,
} from "./compressor.js";
import { cleanName, entryProblem, nameProblem } from "./entry-safety.js";
import { openGenerated, type GeneratedFile } from "./generated-files.js";
import { LAYOUT } from "./layout.js";
import { checkGeneratedPath, checkTop, defaultMtime, generatedOrder, type PackResult } from "./pack-rules.js";

export { defaultMtime, type PackResult };
import { withFiles, type Manifest } from "./manifest.js";
import { writeEmpty, writeFile, type EntryHeader } from "./tar-writer.js";
import { parentDirs } from "../fs/move-aside.js";

export interface PackTarballOptions {
  /**
   * Tar stream of the prepared view directory as the engine archives it (entries `<basename>/...`), not yet read:
   * the packer consumes it from its first byte, and destroys it when packing fails.
   */
  view: Readable;
  /** Name of the top-level directory, `<name>-<version>-<target>`; also the file name without extension. */
  top: string;
  outDir: string;
  /** Default gzip. */
  compression?: Compression;
  /** Default `auto` (pigz / zstd when on PATH). */
  compressor?: CompressorPreference;
  /** Files beside the view, path relative to the top directory → content (install.sh, modules, sbom, data...). */
  files?: Record<string, GeneratedFile>;
  /** The manifest; its `files` are filled in with the checksums of every file packed. */
  manifest: Omit<Manifest, "files"> & { files?: Record<string, string> };
  /** Time of every entry. Default: SOURCE_DATE_EPOCH when set, else the epoch. */
  mtime?: Date;
  /**
   * What to do with view entries the verifier would refuse (symlinks leaving the view, devices, fifos):
   * `reject` (default) fails the pack, `skip` leaves them out and lists them in the result.
   */
  onUnsafe?: "reject" | "skip";
  signal?: AbortSignal;
}

class ViewRenamer {
  private root: string | undefined;
  constructor(private readonly top: string) {}

  get seen(): boolean {
    return this.root !== undefined;
  }

  /** `<root>/rest` → `<top>/view/rest`; every entry must share the root of the first. */
  rename(name: string): string {
    const problem = nameProblem(name);
    if (problem !== undefined) throw new BuildError(`the view archive holds ${JSON.stringify(name)}: ${problem}`);
    const [first, ...rest] = cleanName(name).split("/");
    this.root ??= first;
    if (first !== this.root) {
      throw new BuildError(
        `the view archive has more than one top-level entry (${this.root} and ${first}); archive the view directory itself`,
      );
    }
    return rest.length > 0 ? `${this.top}/${LAYOUT.view}/${rest.join("/")}` : `${this.top}/${LAYOUT.view}`;
  }
}

interface Collected {
  /** Path relative to the top directory → sha256. */
  sums: Map<string, string>;
  skipped: string[];
}

async function packEntries(
  pack: Pack,
  entries: AsyncIterator<unknown>,
  options: PackTarballOptions,
  mtime: Date,
  collected: Collected,
): Promise<void> {
  const { top } = options;
  const relative = (name: string): string => name.slice(top.length + 1);
  const dirs = new Set<string>();
  const ensureDirs = async (path: string): Promise<void> => {
    for (const dir of parentDirs(path)) {
      if (dirs.has(dir)) continue;
      dirs.add(dir);
      await writeEmpty(pack, { name: `${top}/${dir}`, type: "directory", mode: 0o755 }, mtime);
    }
  };

  await writeEmpty(pack, { name: top, type: "directory", mode: 0o755 }, mtime);
  const generated = Object.entries(options.files ?? {}).sort(([a], [b]) => generatedOrder(a, b));
  for (const [path, file] of generated) {
    await ensureDirs(path);
    const opened = await openGenerated(path, file);
    const header: EntryHeader = { name: `${top}/${path}`, type: "file", mode: opened.mode, size: opened.size };
    collected.sums.set(path, await writeFile(pack, header, opened.body, mtime));
  }

  const renamer = new ViewRenamer(top);
  for await (const item of { [Symbol.asyncIterator]: () => entries }) {
    const entry = item as Readable & { header: Header };
    const header: Header = entry.header;
    const name = renamer.rename(header.name);
    const type = header.type ?? "file";
    let linkname: string | undefined;
    if (type === "link") linkname = renamer.rename(header.linkname ?? "");
    else if (type === "symlink") linkname = header.linkname ?? "";
    const problem = entryProblem({ name, type, linkname: linkname ?? null }, top);
    const linkedMissing = type === "link" && linkname !== undefined && !collected.sums.has(relative(linkname));
    if (problem !== undefined || linkedMissing) {
      const reason = problem ?? `hardlink to ${linkname}, which is not a regular file packed before it`;
      if (options.onUnsafe !== "skip") throw new BuildError(`the view holds ${relative(name)}: ${reason}`);
      collected.skipped.push(`${relative(name)}: ${reason}`);
      entry.resume();
      continue;
    }
    const mode = header.mode ?? (type === "directory" ? 0o755 : 0o644);
    if (type === "file") {
      const path = relative(name);
      collected.sums.set(path, await writeFile(pack, { name, type, mode, size: header.size ?? 0 }, entry, mtime));
    } else {
      if (type === "link") collected.sums.set(relative(name), collected.sums.get(relative(linkname!))!);
      await writeEmpty(
        pack,
        { name, type: type as EntryHeader["type"], mode, ...(linkname !== undefined ? { linkname } : {}) },
        mtime,
      );
      entry.resume();
    }
  }

  if (!renamer.seen)
    throw new BuildError(
      "the view archive is empty: archive the prepared view directory (its real path, not the symlink)",
    );
  const files: Record<string, string> = {};
  for (const [path, hex] of [...collected.sums].sort(([a], [b]) => byteOrder(a, b))) files[path] = hex;
  const manifest = Buffer.from(`${JSON.stringify(withFiles(options.manifest, files), null, 2)}\n`);
  collected.sums.set(
    LAYOUT.manifest,
    await writeFile(
      pack,
      { name: `${top}/${LAYOUT.manifest}`, type: "file", mode: 0o644, size: manifest.length },
      manifest,
      mtime,
    ),
  );
  const sums = Buffer.from(formatSums(collected.sums));
  await writeFile(
    pack,
    { name: `${top}/${LAYOUT.checksums}`, type: "file", mode: 0o644, size: sums.length },
    sums,
    mtime,
  );
  pack.finalize();
}

/** Writes `<outDir>/<top>.tar.gz` (or `.tar.zst`) and its `.sha256` sidecar. */
export async function packTarball(options: PackTarballOptions): Promise<PackResult> {
  checkTop(options.top);
  for (const path of Object.keys(options.files ?? {})) checkGeneratedPath(path);
  const compression = options.compression ?? "gzip";
  const mtime = options.mtime ?? defaultMtime();
  const { signal } = options;
  if (signal?.aborted) throw new CancelledError();
  // Connect the view before the first await: a stream that is already flowing loses no bytes, and backpressure
  // holds the rest until the generated files are packed.
  const extractor = extract();
  // Its failures surface in the loop that reads it.
  (extractor as unknown as NodeJS.EventEmitter).on("error", () => {});
  // The iterator listens for entries from its creation on: none is missed while the generated files are packed.
  const entries = extractor[Symbol.asyncIterator]();
  options.view.on("error", (error) => extractor.destroy(error));
  options.view.pipe(extractor as unknown as NodeJS.WritableStream);

  let compressor: Compressor;
  try {
    // The directory first: a compressor started for an output that cannot be written would never be reaped.
    await mkdir(options.outDir, { recursive: true });
    compressor = await openCompressor(compression, options.compressor ?? "auto");
  } catch (error) {
    options.view.destroy();
    extractor.destroy();
    throw error;
  }
  const final = join(options.outDir, `${options.top}${extensionOf(compression)}`);
  const partial = `${final}.partial-${process.pid}`;

  const pack = createPack();
  const collected: Collected = { sums: new Map(), skipped: [] };
  const tarballHash = createHash("sha256");
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      tarballHash.update(chunk);
      callback(null, chunk);
    },
  });
  const stop = (error: Error): void => {
    // The view stream is the caller's: end it without an error event nobody listens to.
    options.view.destroy();
    extractor.destroy(error);
    pack.destroy(error);
    compressor.kill();
  };
  const onAbort = (): void => stop(new CancelledError());
  signal?.addEventListener("abort", onAbort, { once: true });

  try {
    const stopOnError = (error: unknown): never => {
      stop(error instanceof Error ? error : new Error(String(error)));
      throw error;
    };
    const producing = packEntries(pack, entries, options, mtime, collected).catch(stopOnError);
    const writing = pipeline(pack as unknown as Readable, compressor.stream, hashing, createWriteStream(partial)).catch(
      stopOnError,
    );
    const results = await Promise.allSettled([producing, writing, compressor.exited.catch(stopOnError)]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    if (signal?.aborted) throw new CancelledError();
    // A sidecar of an earlier tarball of the same name must not sit beside the new one, even for a moment.
    await rm(`${final}.sha256`, { force: true });
    await rename(partial, final);
  } catch (error) {
    await rm(partial, { force: true });
    if (signal?.aborted) throw new CancelledError();
    if (error instanceof FactoryError) throw error;
    throw new BuildError(`packing ${final} failed: ${(error as Error).message}`, { cause: error });
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }

  const sha256 = tarballHash.digest("hex");
  const sidecar = `${final}.sha256`;
  await writeFileAtomic(sidecar, `${sha256}  ${basename(final)}\n`);
  const { size } = await stat(final);
  return {
    path: final,
    sha256,
    bytes: size,
    files: collected.sums.size + 1,
    skipped: collected.skipped,
    compressor: compressor.label,
  };
}
