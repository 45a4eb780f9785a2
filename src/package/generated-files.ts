/** Files the packer adds beside the view: rendered text, or host files (assets) streamed from disk. */
import { createReadStream } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { basename, join } from "node:path";
import { InputError } from "../errors.js";
import { assetsDir } from "./layout.js";

export type GeneratedFile =
  | string
  | Buffer
  | { content: string | Buffer; mode?: number }
  | { source: string; mode?: number };

export interface OpenedFile {
  size: number;
  mode: number;
  body: AsyncIterable<Uint8Array> | Uint8Array;
}

/** Executable host files ship as 0755, others as 0644, whatever the host's umask made them. */
const normalMode = (mode: number): number => (mode & 0o111 ? 0o755 : 0o644);

export async function openGenerated(path: string, file: GeneratedFile): Promise<OpenedFile> {
  if (typeof file === "string" || Buffer.isBuffer(file)) {
    const body = Buffer.from(file);
    return { size: body.length, mode: 0o644, body };
  }
  if ("content" in file) {
    const body = Buffer.from(file.content);
    return { size: body.length, mode: file.mode ?? 0o644, body };
  }
  let stats;
  try {
    stats = await lstat(file.source);
  } catch (error) {
    throw new InputError(`cannot read ${file.source} (to ship as ${path}): ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (!stats.isFile()) throw new InputError(`${file.source} (to ship as ${path}) is not a regular file`);
  return {
    size: stats.size,
    mode: file.mode ?? normalMode(stats.mode),
    body: createReadStream(file.source, { highWaterMark: 1 << 20 }),
  };
}

/** The tarball paths of a stack's assets: `data/<name>_assets/<basename>`, directories walked recursively. */
export async function assetFiles(stackName: string, paths: readonly string[]): Promise<Record<string, GeneratedFile>> {
  const dir = assetsDir(stackName);
  const files: Record<string, GeneratedFile> = {};
  const add = async (source: string, rel: string): Promise<void> => {
    let stats;
    try {
      stats = await lstat(source);
    } catch (error) {
      throw new InputError(`asset ${source} cannot be read: ${(error as Error).message}`, { cause: error });
    }
    if (stats.isDirectory()) {
      for (const name of (await readdir(source)).sort()) await add(join(source, name), `${rel}/${name}`);
    } else if (stats.isFile()) {
      files[rel] = { source };
    } else {
      throw new InputError(`asset ${source} is neither a regular file nor a directory`);
    }
  };
  for (const path of paths) await add(path, `${dir}/${basename(path)}`);
  return files;
}
