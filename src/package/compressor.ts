/**
 * The compressor a tarball goes through: pigz or zstd from PATH when present (multi-threaded, and their output
 * does not depend on the thread count), else node's zlib for gzip. Every choice is deterministic for its input.
 */
import { Duplex } from "node:stream";
import { createGzip } from "node:zlib";
import { execa } from "execa";
import { InputError } from "../errors.js";
import { findExecutable } from "./which.js";

export type Compression = "gzip" | "zstd";
/** `auto`: an external tool when present; `builtin`: node's zlib (gzip only). */
export type CompressorPreference = "auto" | "builtin";

export const COMPRESSIONS: readonly Compression[] = ["gzip", "zstd"];

export function extensionOf(compression: Compression): string {
  return compression === "zstd" ? ".tar.zst" : ".tar.gz";
}

export interface Compressor {
  /** What compresses, for reports: `pigz -6 -n`, `zstd -3 -T0`, `zlib gzip -6`. */
  label: string;
  /** Tar bytes in, compressed bytes out. */
  stream: Duplex;
  /** Settles when the compressor has exited (at once for zlib); rejects when it failed. */
  exited: Promise<void>;
  /** Stops it (after an error elsewhere). */
  kill(): void;
}

const TOOLS: Record<Compression, { tool: string; args: string[] }> = {
  // -n: no name and no timestamp in the gzip header.
  gzip: { tool: "pigz", args: ["-6", "-n", "-c"] },
  zstd: { tool: "zstd", args: ["-3", "-T0", "-q", "-c"] },
};

export async function openCompressor(
  compression: Compression,
  preference: CompressorPreference = "auto",
): Promise<Compressor> {
  if (!COMPRESSIONS.includes(compression)) {
    throw new InputError(
      `unknown compression ${JSON.stringify(compression)}; accepted values are ${COMPRESSIONS.join(", ")}`,
    );
  }
  const { tool, args } = TOOLS[compression];
  const found = preference === "auto" ? await findExecutable(tool) : undefined;
  if (found === undefined) {
    if (compression === "zstd") {
      throw new InputError(`zstd compression needs the zstd program on PATH; install zstd or choose gzip`);
    }
    const gzip = createGzip({ level: 6 });
    return { label: "zlib gzip -6", stream: gzip, exited: Promise.resolve(), kill: () => gzip.destroy() };
  }
  const child = execa(found, args, {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
    buffer: { stdout: false, stderr: true },
    stripFinalNewline: true,
  });
  const exited = child.then(
    () => undefined,
    (error: unknown) => {
      throw new Error(`${tool} failed: ${(error as { shortMessage?: string }).shortMessage ?? String(error)}`, {
        cause: error,
      });
    },
  );
  exited.catch(() => {});
  return {
    label: `${tool} ${args.filter((a) => a !== "-c" && a !== "-q").join(" ")}`,
    stream: Duplex.from({ writable: child.stdin, readable: child.stdout }),
    exited,
    kill: () => {
      child.kill();
    },
  };
}
