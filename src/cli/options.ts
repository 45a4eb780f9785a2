import { resolve } from "node:path";
import { chooseCacheRoot } from "../cache/root.js";
import { projectRoot } from "../render/templates.js";
import { InputError } from "../errors.js";
import { ENV_NAME } from "../config/schema.js";

/** Cache root: `--cache-dir`, then `STACK_FACTORY_CACHE`, then the project's own `cache/`. */
export function cacheRoot(flag: string | undefined): string {
  return chooseCacheRoot(flag, projectRoot);
}

/** `--target a,b --target c` → [a, b, c]; undefined when not given. */
export function targetList(flag: unknown): string[] | undefined {
  if (flag === undefined || flag === null || flag === true) return undefined;
  const values = (Array.isArray(flag) ? flag : [flag]).map(String);
  const list = values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
  return list.length > 0 ? list : undefined;
}

export function positiveInt(flag: unknown, name: string): number | undefined {
  if (flag === undefined) return undefined;
  const n = Number(flag);
  if (!Number.isInteger(n) || n < 1) throw new InputError(`--${name}: expected a positive integer, got "${String(flag)}"`);
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
  if (bytes < 6 * 1024 ** 2) throw new InputError(`--memory: ${String(flag)} is too small for a build container (at least 6m)`);
  return bytes;
}

export function positiveNumber(flag: unknown, name: string): number | undefined {
  if (flag === undefined) return undefined;
  const n = Number(flag);
  if (!Number.isFinite(n) || n <= 0) throw new InputError(`--${name}: expected a positive number, got "${String(flag)}"`);
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
