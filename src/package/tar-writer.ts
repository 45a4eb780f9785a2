/** Writing entries into a tar-stream pack with fixed ownership and time, hashing file bodies as they stream. */
import { createHash } from "node:crypto";
import { once } from "node:events";
import type { Pack } from "tar-stream";

export interface EntryHeader {
  name: string;
  type: "file" | "directory" | "symlink" | "link";
  mode: number;
  size?: number;
  linkname?: string;
}

/** Every entry is owned by 0:0 with empty owner names and one modification time: output depends on content only. */
function fullHeader(header: EntryHeader, mtime: Date) {
  return {
    name: header.type === "directory" ? `${header.name}/` : header.name,
    type: header.type,
    mode: header.mode & 0o7777,
    size: header.type === "file" ? (header.size ?? 0) : 0,
    ...(header.linkname !== undefined ? { linkname: header.linkname } : {}),
    mtime,
    uid: 0,
    gid: 0,
    uname: "",
    gname: "",
  };
}

/** Writes an entry without a body (directory, symlink, hardlink). */
export async function writeEmpty(pack: Pack, header: EntryHeader, mtime: Date): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    pack.entry(fullHeader(header, mtime), (error) => (error ? reject(error) : resolve()));
  });
}

/**
 * Streams a file body into the pack, waiting whenever the pack is full, and returns the body's sha256 (hex).
 * `header.size` must be the exact body length.
 */
export async function writeFile(
  pack: Pack,
  header: EntryHeader,
  body: AsyncIterable<Uint8Array> | Uint8Array,
  mtime: Date,
): Promise<string> {
  const hash = createHash("sha256");
  let sink!: NodeJS.WritableStream & { write(chunk: Uint8Array): boolean };
  const done = new Promise<void>((resolve, reject) => {
    sink = pack.entry(fullHeader({ ...header, type: "file" }, mtime), (error) =>
      error ? reject(error) : resolve(),
    ) as typeof sink;
  });
  done.catch(() => {});
  // A destroyed pack destroys its entry too; that failure reaches the caller through `done`.
  (sink as unknown as NodeJS.EventEmitter).on("error", () => {});
  const chunks: AsyncIterable<Uint8Array> | Uint8Array[] = body instanceof Uint8Array ? [body] : body;
  for await (const chunk of chunks) {
    hash.update(chunk);
    if (!sink.write(chunk)) await Promise.race([once(sink as unknown as NodeJS.EventEmitter, "drain"), done]);
  }
  sink.end();
  await done;
  return hash.digest("hex");
}
