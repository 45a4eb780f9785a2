import type { Readable } from "node:stream";
import { pack, extract } from "tar-stream";
import { DockerError } from "../errors.js";
import { parentDirs } from "../fs/move-aside.js";

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
