import { chmod, mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { execa } from "execa";
import type { ExecOptions, FileEntry } from "../../src/docker/index.js";
import { CancelledError } from "../../src/errors.js";
import type { PackContainer } from "../../src/package/container-pack.js";

/**
 * A stand-in for a build container that runs on this machine: commands run here, container paths are host paths,
 * getArchive is `tar -c` of the path (as the engine archives it). Enough for the in-container packer.
 */
export class LocalContainer implements PackContainer {
  execs: string[][] = [];

  async exec(argv: string[], options: ExecOptions = {}): Promise<{ exitCode: number }> {
    if (options.signal?.aborted) throw new CancelledError();
    this.execs.push(argv);
    const child = execa(argv[0]!, argv.slice(1), {
      reject: false,
      buffer: false,
      stdin: "ignore",
      ...(options.signal ? { cancelSignal: options.signal } : {}),
    });
    child.stdout?.on("data", (c: Buffer) => options.onStdout?.(c));
    child.stderr?.on("data", (c: Buffer) => options.onStderr?.(c));
    const result = await child;
    if (options.signal?.aborted) throw new CancelledError();
    return { exitCode: result.exitCode ?? 1 };
  }

  async putFiles(dir: string, files: Record<string, FileEntry>): Promise<void> {
    await mkdir(dir, { recursive: true });
    for (const [name, entry] of Object.entries(files)) {
      const path = join(dir, name);
      await mkdir(dirname(path), { recursive: true, mode: 0o755 });
      await writeFile(path, typeof entry === "string" ? entry : entry.content);
      await chmod(path, typeof entry === "string" ? 0o644 : entry.mode);
    }
  }

  async getArchive(path: string, signal?: AbortSignal): Promise<Readable> {
    const child = execa("tar", ["-cf", "-", "-C", dirname(path), path.split("/").pop()!], {
      buffer: false,
      ...(signal ? { cancelSignal: signal } : {}),
    });
    child.catch(() => {});
    return child.stdout as Readable;
  }
}
