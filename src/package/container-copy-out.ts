/**
 * Copies one finished file out of a container through the engine's archive API (getArchive) into a file here:
 * the engine's tar framing is read directly, the size it announces checked, the bytes hashed on the way and written
 * with writev in few large writes. The packer uses it when the engine runs on another machine.
 */
import type { Hash } from "node:crypto";
import { open, type FileHandle } from "node:fs/promises";
import type { Readable } from "node:stream";
import { BuildError } from "../errors.js";

/** The copied file is written in pieces of about this size. */
const WRITE_BYTES = 4 * 1024 * 1024;

/** What the copy needs of a container. */
export interface ArchiveSource {
  getArchive(path: string, signal?: AbortSignal): Promise<Readable>;
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
 * Feeds the archive's chunks to `take` until `complete()`, pausing the archive while `sink` writes what `take` asked
 * to write. 'data' events, not an async iterator: the iterator concatenates whatever piled up while a write was
 * under way, a copy and an allocation of most of the bytes.
 */
function drain(
  archive: Readable,
  take: (raw: Buffer) => boolean,
  sink: OutputFile,
  complete: () => boolean,
  path: string,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
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
        sink.flush().then(() => (complete() ? finish() : archive.resume()), fail);
      } else if (complete()) finish();
    });
    archive.on("end", finish);
    archive.on("error", fail);
    archive.on("close", () => fail(new BuildError(`${path}: the engine closed the archive early`)));
  });
}

/**
 * Copies one file out of the container (one getArchive) into `sink`. The engine's archive of a file is
 * a header or two and the body: read here directly rather than through a tar parser, which doubled node's share of
 * the copy.
 */
async function copyOut(
  container: ArchiveSource,
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
    await drain(archive, take, sink, () => body === bytes, path);
  } finally {
    archive.destroy();
  }
  if (body !== bytes) throw new BuildError(`${path}: copied ${Math.max(body, 0)} bytes of ${bytes}`);
}

/**
 * Copies the file `path` of the container (`bytes` long) into `target` here, feeding `hash` on the way. On failure
 * the file here is closed and left for the caller to remove.
 */
export async function copyFileOut(
  container: ArchiveSource,
  path: string,
  bytes: number,
  target: string,
  hash: Hash,
  signal?: AbortSignal,
): Promise<void> {
  const sink = await OutputFile.open(target);
  try {
    await copyOut(container, path, bytes, sink, hash, signal);
    await sink.close();
  } catch (error) {
    await sink.discard();
    throw error;
  }
}
