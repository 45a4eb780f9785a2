import type { Stats } from "node:fs";
import { stat, statfs } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { chooseCacheRoot } from "../cache/root.js";
import { projectRoot } from "../project-root.js";
import { InputError } from "../errors.js";
import { ENV_NAME } from "../config/schema.js";
import { kindOf } from "../fs/kind.js";
import { checkUserFileKind } from "../fs/user-file.js";

/** Cache root: `--cache-dir`, then `STACK_FACTORY_CACHE`, then the project's own `cache/`. */
export function cacheRoot(flag: string | undefined): string {
  return chooseCacheRoot(flag, projectRoot);
}

/** `--engine URL` (repeatable) → the URLs, in order; [] when not given. */
export function engineUrls(flag: unknown): string[] {
  if (flag === undefined || flag === null || flag === true) return [];
  return (Array.isArray(flag) ? flag : [flag]).map(String);
}

/** `--target a,b --target c` → [a, b, c]; undefined when not given. */
export function targetList(flag: unknown): string[] | undefined {
  if (flag === undefined || flag === null || flag === true) return undefined;
  const values = (Array.isArray(flag) ? flag : [flag]).map(String);
  const list = values
    .flatMap((v) => v.split(","))
    .map((v) => v.trim())
    .filter((v) => v !== "");
  return list.length > 0 ? list : undefined;
}

export function positiveInt(flag: unknown, name: string): number | undefined {
  if (flag === undefined) return undefined;
  const n = Number(flag);
  if (!Number.isInteger(n) || n < 1)
    throw new InputError(`--${name}: expected a positive integer, got "${String(flag)}"`);
  return n;
}

/** `--memory 8g` / `512m` / bytes → bytes. */
export function memoryBytes(flag: unknown): number | undefined {
  if (flag === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)([kmgt]?)b?$/i.exec(String(flag).trim());
  if (m === null) throw new InputError(`--memory: expected a size like 8g or 512m, got "${String(flag)}"`);
  const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[(m[2] ?? "").toLowerCase()] ?? 1;
  const bytes = Math.floor(Number(m[1]) * unit);
  // Docker's own floor for a container's memory is 6 MiB; anything less is a typo.
  if (bytes < 6 * 1024 ** 2)
    throw new InputError(`--memory: ${String(flag)} is too small for a build container (at least 6m)`);
  return bytes;
}

export function positiveNumber(flag: unknown, name: string): number | undefined {
  if (flag === undefined) return undefined;
  const n = Number(flag);
  if (!Number.isFinite(n) || n <= 0)
    throw new InputError(`--${name}: expected a positive number, got "${String(flag)}"`);
  return n;
}

/** `--env A=1 --env B=2` → { A: "1", B: "2" }. */
export function envPairs(flag: unknown): Record<string, string> {
  if (flag === undefined) return {};
  const out: Record<string, string> = {};
  for (const pair of (Array.isArray(flag) ? flag : [flag]).map(String)) {
    const m = new RegExp(`^(${ENV_NAME.source.slice(1, -1)})=(.*)$`, "s").exec(pair);
    if (m === null) throw new InputError(`--env: expected NAME=VALUE, got "${pair}"`);
    out[m[1] as string] = m[2] as string;
  }
  return out;
}

/**
 * File systems whose files are the kernel's, not data: writing a plan, a tarball or a cache there fails in odd
 * ways (Node's recursive mkdir spins forever under /proc). `statfs` magic numbers from linux/magic.h.
 */
const VIRTUAL_FILE_SYSTEMS = new Map<number, string>([
  [0x9fa0, "proc"],
  [0x62656572, "sysfs"],
  [0x27e0eb, "cgroup"],
  [0x63677270, "cgroup2"],
  [0x64626720, "debugfs"],
  [0x74726163, "tracefs"],
  [0x73636673, "securityfs"],
  [0x1cd1, "devpts"],
  [0xcafe4a11, "bpf"],
  [0x6165676c, "pstore"],
  [0x42494e4d, "binfmt_misc"],
  [0xde5e81e4, "efivarfs"],
  [0x19800202, "mqueue"],
  [0x958458f6, "hugetlbfs"],
  [0x6e736673, "nsfs"],
  [0x50495045, "pipefs"],
  [0x534f434b, "sockfs"],
]);

async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ENOTDIR") throw new InputError(`${path}: a component of the path is not a directory`);
    throw new InputError(`${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** The nearest existing directory at or above `path`; refuses a non-directory on the way and virtual file systems. */
async function existingDirAbove(path: string, what: string): Promise<string> {
  let dir = path;
  for (;;) {
    const stats = await statOrUndefined(dir);
    if (stats !== undefined) {
      if (!stats.isDirectory()) throw new InputError(`${what}: ${dir} is ${kindOf(stats)}, not a directory`);
      break;
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  const fs = VIRTUAL_FILE_SYSTEMS.get(Number((await statfs(dir)).type));
  if (fs !== undefined)
    throw new InputError(`${what}: ${path} is on ${fs}, a file system of the kernel's; give a directory on a disk`);
  return dir;
}

/** `what` (a flag like `--out`) names a directory to write into: absent, or a directory, on a real file system. */
export async function checkOutputDir(path: string, what: string): Promise<void> {
  await existingDirAbove(resolve(path), what);
}

/** `what` names a file to write: absent or a regular file, in a directory on a real file system. */
export async function checkOutputFile(path: string, what: string): Promise<void> {
  const full = resolve(path);
  const stats = await statOrUndefined(full);
  if (stats !== undefined && !stats.isFile())
    throw new InputError(`${what}: ${path} is ${kindOf(stats)}, not a regular file`);
  await existingDirAbove(dirname(full), what);
}

/** `what` names a file to read: it must be a regular file (a FIFO would block the read forever). */
export async function checkInputFile(path: string, what: string): Promise<void> {
  if (path === "") throw new InputError(`${what}: the path is empty`);
  const stats = await statOrUndefined(resolve(path));
  if (stats === undefined) throw new InputError(`cannot read ${what} ${path}: no such file`);
  // The one kind check of files the user names (fs/user-file.ts): a FIFO would block the read forever.
  await checkUserFileKind(path, { what });
}

/** Options that may be given more than once; any other given twice is a mistake, not a list. */
const REPEATABLE = new Set(["target", "env", "engine"]);

/** Why parsed options (cac's, camelCase keys) repeat an option that takes one value, or undefined. */
export function repeatedOption(options: Record<string, unknown>): string | undefined {
  for (const [key, value] of Object.entries(options)) {
    if (key === "--" || !Array.isArray(value) || REPEATABLE.has(key)) continue;
    const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    return `${flag} is given ${value.length} times (${value.map((v) => JSON.stringify(v)).join(", ")}); give it once`;
  }
  return undefined;
}

/** What `rawOptionValues` needs of an option definition (cac's Option): its camelCase names, whether it takes a value. */
export interface OptionDefinition {
  names: string[];
  name: string;
  required?: boolean;
}

const camel = (name: string): string =>
  name.replace(/([a-z])-([a-z])/g, (_, a: string, b: string) => a + b.toUpperCase());

/**
 * The values of the options that take one, exactly as typed, by option key. The parser under cac turns values
 * that look like numbers into numbers (`--out 0x10` would be 16, `--out ''` 0): these are the strings instead.
 */
export function rawOptionValues(
  argv: readonly string[],
  definitions: readonly OptionDefinition[],
): Map<string, string[]> {
  const keys = new Map<string, string>();
  for (const definition of definitions) {
    if (definition.required === undefined) continue;
    for (const name of definition.names) keys.set(name, definition.name);
  }
  const values = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") break;
    if (!arg.startsWith("--")) continue;
    const equals = arg.indexOf("=");
    const key = keys.get(camel(arg.slice(2, equals === -1 ? undefined : equals)));
    if (key === undefined) continue;
    const value = equals === -1 ? argv[++i] : arg.slice(equals + 1);
    if (value === undefined) continue;
    values.set(key, [...(values.get(key) ?? []), value]);
  }
  return values;
}
