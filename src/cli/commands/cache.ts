import { inventory, type CacheEntry } from "../../cache/inventory.js";
import { pruneCache } from "../../cache/prune.js";
import { formatBytes } from "../../ui/format.js";
import { InputError } from "../../errors.js";
import { cacheRoot, positiveInt, positiveNumber } from "../options.js";

export interface CacheFlags {
  cacheDir?: string;
  olderThan?: unknown;
  keepLast?: unknown;
  dryRun?: boolean;
  json?: boolean;
}

export async function cacheCommand(action: string, flags: CacheFlags): Promise<number> {
  const root = cacheRoot(flags.cacheDir);
  if (action === "stats") {
    const entries = await inventory(root);
    if (flags.json === true) {
      process.stdout.write(`${JSON.stringify({ root, entries }, null, 2)}\n`);
      return 0;
    }
    process.stdout.write(`cache root ${root}\n`);
    const kinds = [...new Set(entries.map((e) => e.kind))];
    for (const kind of kinds) {
      const list = entries.filter((e) => e.kind === kind);
      process.stdout.write(`${kind}: ${formatBytes(sum(list, "bytes"))}, ${sum(list, "files")} file(s)\n`);
      if (kind === "source") continue;
      for (const e of list) {
        process.stdout.write(
          `  ${e.path}  ${formatBytes(e.bytes)}  ${e.files} file(s)  last used ${e.lastUsed.toISOString()}\n`,
        );
      }
    }
    return 0;
  }
  if (action === "prune") {
    const olderThanDays = positiveNumber(flags.olderThan, "older-than");
    const keepLast = positiveInt(flags.keepLast, "keep-last");
    if (olderThanDays === undefined && keepLast === undefined) {
      throw new InputError("cache prune: give --older-than DAYS and/or --keep-last N");
    }
    const result = await pruneCache(root, {
      ...(olderThanDays === undefined ? {} : { olderThanDays }),
      ...(keepLast === undefined ? {} : { keepLast }),
      ...(flags.dryRun === true ? { dryRun: true } : {}),
    });
    const verb = flags.dryRun === true ? "would remove" : "removed";
    for (const e of result.removed) process.stdout.write(`${verb} ${e.path} (${formatBytes(e.bytes)})\n`);
    for (const e of result.inUse) process.stdout.write(`kept ${e.path}: in use by a running build\n`);
    process.stdout.write(
      `${verb} ${result.removed.length} entr${result.removed.length === 1 ? "y" : "ies"}, ${formatBytes(sum(result.removed, "bytes"))}\n`,
    );
    return 0;
  }
  throw new InputError(`cache: unknown action "${action}"; expected stats or prune`);
}

function sum(list: CacheEntry[], key: "bytes" | "files"): number {
  return list.reduce((n, e) => n + e[key], 0);
}
