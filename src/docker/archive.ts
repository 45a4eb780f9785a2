import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { pack, extract } from "tar-stream";
import { DockerError } from "../errors.js";
import { parentDirs } from "../fs/move-aside.js";
import type { TreeEntry } from "../fs/tree.js";

/** A file to write: its text, or its content with a mode (e.g. 0o755 for a script). */
export type FileEntry = string | { content: string | Buffer; mode: number };

export interface PackOptions {
  /** Modification time of every entry (tar-stream defaults to now). */
  mtime: Date;
  uid?: number;
  gid?: number;
}

function normalise(name: string): string {
  const clean = name.replace(/^\.?\/+/, "");
  if (clean === "" || clean.split("/").some((p) => p === ".." || p === "")) {
    throw new DockerError(`bad archive entry name: ${JSON.stringify(name)} (relative paths without '..' or '//')`);
  }
  return clean;
}

/**
 * A tar stream of `files` (relative path → entry), with a directory entry for every nested directory.
 * tar-stream's pack is a streamx stream; its `pipe` feeds Node writables such as the engine request.
 */
export function packFiles(files: Record<string, FileEntry>, options: PackOptions): NodeJS.ReadableStream {
  const tar = pack();
  const owner = { uid: options.uid ?? 0, gid: options.gid ?? 0 };
  const dirs = new Set<string>();
  for (const [rawName, entry] of Object.entries(files).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const name = normalise(rawName);
    for (const dir of parentDirs(name)) {
      if (dirs.has(dir)) continue;
      dirs.add(dir);
      tar.entry({ name: dir, type: "directory", mode: 0o755, mtime: options.mtime, ...owner });
    }
    const content = typeof entry === "string" ? entry : entry.content;
    const mode = typeof entry === "string" ? 0o644 : entry.mode;
    tar.entry({ name, type: "file", mode, mtime: options.mtime, ...owner }, content);
  }
  tar.finalize();
  return tar as unknown as NodeJS.ReadableStream;
}

/** Reads a tar stream whose first entry must be a regular file (as the engine archives a file path). */
export async function readFirstFile(tarStream: Readable, what: string): Promise<Buffer> {
  const extractor = extract();
  tarStream.on("error", (error) => extractor.destroy(error));
  tarStream.pipe(extractor);
  try {
    for await (const entry of extractor) {
      if (entry.header.type !== "file") {
        throw new DockerError(`${what} is not a regular file (it is a ${entry.header.type ?? "special entry"})`);
      }
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    }
  } finally {
    tarStream.unpipe(extractor);
    tarStream.destroy();
  }
  throw new DockerError(`${what} came back as an empty archive`);
}

/** Files up to this size are read whole (and READ_AHEAD of them at once) rather than streamed. */
const SMALL_FILE = 256 * 1024;
const READ_AHEAD = 32;

/**
 * A tar stream of a host directory's entries, file bodies read from disk as the reader takes them (at most
 * READ_AHEAD small files held at once; larger ones streamed). Everything is owned by root and readable by all, directories also searchable: the tree is
 * mounted read-only for a build user of another uid. A file whose size changed while it is read fails the stream.
 */
export function packTree(entries: readonly TreeEntry[]): NodeJS.ReadableStream {
  const tar = pack();
  // Small files are read whole, a few ahead of the one being written (one open and read each, no stream);
  // large ones stream from disk.
  const reads = new Map<number, Promise<Buffer>>();
  const readAhead = (from: number): void => {
    for (let i = from; i < entries.length && reads.size < READ_AHEAD; i++) {
      const e = entries[i] as TreeEntry;
      if (e.type !== "file" || e.size > SMALL_FILE || reads.has(i)) continue;
      const read = readFile(e.abs);
      read.catch(() => {});
      reads.set(i, read);
    }
  };
  const write = (header: Parameters<typeof tar.entry>[0], body?: Buffer): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const done = (error?: Error | null) => (error ? reject(error) : resolve());
      if (body === undefined) tar.entry(header, done);
      else tar.entry(header, body, done);
    });
  const feed = async (): Promise<void> => {
    for (const [i, e] of entries.entries()) {
      const name = normalise(e.path);
      const owner = { uid: 0, gid: 0, uname: "", gname: "", mtime: new Date(e.mtimeMs) };
      if (e.type === "file") {
        const header = { ...owner, name, type: "file" as const, mode: (e.mode & 0o755) | 0o444, size: e.size };
        readAhead(i);
        const read = reads.get(i);
        if (read !== undefined) {
          reads.delete(i);
          const body = await read;
          if (body.length !== e.size) throw new DockerError(`${e.abs} changed while it was read`);
          await write(header, body);
        } else {
          const body = tar.entry(header);
          await pipeline(createReadStream(e.abs), body as unknown as NodeJS.WritableStream);
        }
      } else if (e.type === "directory") {
        await write({ ...owner, name, type: "directory", mode: (e.mode & 0o755) | 0o555 });
      } else {
        await write({ ...owner, name, type: "symlink", mode: 0o777, linkname: e.linkname ?? "" });
      }
    }
    tar.finalize();
  };
  feed().catch((error: unknown) =>
    tar.destroy(new DockerError(`sending files: ${error instanceof Error ? error.message : String(error)}`)),
  );
  return tar as unknown as NodeJS.ReadableStream;
}
