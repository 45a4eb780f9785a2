import { access, constants, mkdir, statfs } from "node:fs/promises";
import { join } from "node:path";
import { connectEngine } from "../../docker/index.js";
import { FactoryError } from "../../errors.js";
import { findExecutable } from "../../package/which.js";
import { CACHE_KINDS } from "../../cache/layout.js";
import { cacheRoot } from "../options.js";

/** Below this much free space under the cache root a real stack build is likely to run out. */
const MIN_FREE_BYTES = 20 * 1024 ** 3;
const CACHE_DIRS = Object.keys(CACHE_KINDS);

interface Check {
  ok: boolean;
  what: string;
  advice?: string;
}

export async function doctorCommand(flags: { cacheDir?: string }): Promise<number> {
  const root = cacheRoot(flags.cacheDir);
  const checks: Check[] = [];

  try {
    const engine = await connectEngine();
    const v = await engine.version();
    checks.push({ ok: true, what: `Docker engine ${v.version} (API ${v.apiVersion}, ${v.os}/${v.arch}) at ${engine.where}` });
  } catch (error) {
    checks.push({
      ok: false,
      what: `Docker engine: ${error instanceof Error ? error.message : String(error)}`,
      advice: error instanceof FactoryError && error.hint ? error.hint : "start a Docker engine (scripts/ensure-docker.sh)",
    });
  }

  try {
    await mkdir(root, { recursive: true });
    const fs = await statfs(root);
    const free = fs.bavail * fs.bsize;
    const gib = (free / 1024 ** 3).toFixed(1);
    checks.push(
      free >= MIN_FREE_BYTES
        ? { ok: true, what: `free disk under ${root}: ${gib} GiB` }
        : { ok: false, what: `free disk under ${root}: ${gib} GiB`, advice: "a stack build needs 20 GiB or more: free space or use --cache-dir elsewhere" },
    );
  } catch (error) {
    checks.push({ ok: false, what: `cache root ${root}: ${(error as Error).message}`, advice: "choose a writable --cache-dir" });
  }

  for (const name of CACHE_DIRS) {
    const dir = join(root, name);
    try {
      await mkdir(dir, { recursive: true });
      await access(dir, constants.W_OK);
      checks.push({ ok: true, what: `${dir} is writable` });
    } catch (error) {
      checks.push({ ok: false, what: `${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, advice: `make it writable: chown -R $(id -u) ${dir}` });
    }
  }

  for (const c of checks) {
    process.stdout.write(`${c.ok ? "ok  " : "FAIL"} ${c.what}\n`);
    if (!c.ok && c.advice) process.stdout.write(`     → ${c.advice}\n`);
  }
  // Not failures: packing works without them, only slower (gzip) or not at all (--compress zstd).
  for (const [tool, use] of [["pigz", "multi-core gzip packing (else node's single-core zlib)"], ["zstd", "--compress zstd"]] as const) {
    const found = await findExecutable(tool);
    process.stdout.write(found ? `ok   ${tool} at ${found}: ${use}\n` : `note ${tool} not found: needed for ${use}; install the ${tool} package\n`);
  }
  return checks.every((c) => c.ok) ? 0 : 1;
}
