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

/** Exit code when the builder image cannot concretize offline (no clingo): what Spack itself exits with. */
const EXIT_NO_CLINGO = 3;

export async function doctorCommand(flags: { cacheDir?: string }, stackFile?: string): Promise<number> {
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
  if (!checks.every((c) => c.ok)) return 1;
  return stackFile === undefined ? 0 : imageChecks(stackFile);
}

/** What a real build needs of the stack's builder image: python3 and Spack's concretizer module, clingo. */
async function imageChecks(stackFile: string): Promise<number> {
  const { loadStack } = await import("../../config/index.js");
  const { planImage } = await import("../../plan/plan.js");
  const { loadTemplates } = await import("../../render/templates.js");
  const { checkBuilderImage } = await import("../../run/image-check.js");
  const stack = await loadStack(stackFile);
  const image = planImage(stack, await loadTemplates());
  process.stdout.write(`...  builder image ${image.tag} (from ${stack.base_image}): building or reusing it\n`);
  const ready = await checkBuilderImage(await connectEngine(), image);
  if (ready.python === undefined) {
    process.stdout.write(`FAIL builder image has no working python3\n     → Spack needs python3: check the base image (${stack.base_image})\n`);
    return 1;
  }
  process.stdout.write(`ok   python3 ${ready.python} in the builder image\n`);
  if (ready.clingo === undefined) {
    process.stdout.write(
      `FAIL python3 in the builder image cannot import clingo: Spack would bootstrap it from the network, which an offline factory cannot do\n` +
        `     → use a base image whose archive has python3-clingo (Debian 12+, Ubuntu 24.04+), or give Spack a bootstrap mirror (spack bootstrap mirror --binary-packages)\n`,
    );
    return EXIT_NO_CLINGO;
  }
  process.stdout.write(`ok   clingo ${ready.clingo} importable: Spack concretizes without the network\n`);
  return 0;
}
