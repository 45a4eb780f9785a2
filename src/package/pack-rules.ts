/** What a tarball's packer accepts and in which order it packs (layout.ts names the entries). */
import { InputError } from "../errors.js";
import { byteOrder } from "./checksums.js";
import { cleanName, nameProblem } from "./entry-safety.js";
import { LAYOUT } from "./layout.js";

export interface PackResult {
  path: string;
  /** sha256 (hex) of the compressed tarball, also in `<path>.sha256`. */
  sha256: string;
  bytes: number;
  /** Regular files in the tarball (the checksums file included). */
  files: number;
  /** View entries left out (onUnsafe `skip`), each with the reason. */
  skipped: string[];
  compressor: string;
}

/** Written by the packer itself, never passed in. */
const RESERVED = new Set<string>([LAYOUT.manifest, LAYOUT.checksums]);

export function defaultMtime(env: NodeJS.ProcessEnv = process.env): Date {
  const epoch = env["SOURCE_DATE_EPOCH"];
  if (epoch !== undefined && /^\d+$/.test(epoch)) return new Date(Number(epoch) * 1000);
  return new Date(0);
}

/** The installer first, then the rest in byte order. */
export function generatedOrder(a: string, b: string): number {
  if (a === LAYOUT.installScript) return -1;
  if (b === LAYOUT.installScript) return 1;
  return byteOrder(a, b);
}

export function checkTop(top: string): void {
  if (top === "" || top === "." || top === ".." || top.includes("/") || top.includes("\0")) {
    throw new InputError(
      `tarball top directory ${JSON.stringify(top)} must be one path component (like name-1.0-zen4)`,
    );
  }
}

export function checkGeneratedPath(path: string): void {
  const problem = nameProblem(path);
  if (problem !== undefined || cleanName(path) !== path) {
    throw new InputError(
      `generated file path ${JSON.stringify(path)} must be relative, without '..', './' or a trailing '/'`,
    );
  }
  if (RESERVED.has(path))
    throw new InputError(`${path} is written by the packer; it cannot be passed as a generated file`);
  if (path === LAYOUT.view || path.startsWith(`${LAYOUT.view}/`))
    throw new InputError(`generated file ${path} would land inside the view`);
}
