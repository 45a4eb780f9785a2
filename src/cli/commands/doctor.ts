import { access, constants, mkdir, statfs } from "node:fs/promises";
import { join } from "node:path";
import {
  engineChoice,
  loadFactorySettings,
  loadRegistryCredentials,
  type FactorySettings,
} from "../../config/factory.js";
import { loadRegistryCa } from "../../config/registry-ca.js";
import { registryGet } from "../../run/registry-get.js";
import { connectEngine, freeBytesOnEngineHost } from "../../docker/index.js";
import { FactoryError } from "../../errors.js";
import { familyOfEngineArch } from "../../plan/dispatch.js";
import { connectEngines } from "../../run/engines.js";
import { findExecutable } from "../../package/which.js";
import { CACHE_KINDS } from "../../cache/layout.js";
import { cacheRoot, engineUrls } from "../options.js";

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

export async function doctorCommand(
  flags: { cacheDir?: string; engine?: unknown; factory?: string; kit?: string },
  stackFile?: string,
): Promise<number> {
  const root = cacheRoot(flags.cacheDir);
  const checks: Check[] = [];

  // Every engine of the factory: without --engine or --factory, the local engine as always.
  const settings = flags.factory === undefined ? undefined : await loadFactorySettings(flags.factory);
  checks.push(...(await engineChecks(settings, engineUrls(flags.engine), root)));
  if (settings?.buildcache?.kind === "oci") checks.push(await registryCheck(settings));

  try {
    await mkdir(root, { recursive: true });
    const fs = await statfs(root);
    const free = fs.bavail * fs.bsize;
    const gib = (free / 1024 ** 3).toFixed(1);
    checks.push(
      free >= MIN_FREE_BYTES
        ? { ok: true, what: `free disk under ${root}: ${gib} GiB` }
        : {
            ok: false,
            what: `free disk under ${root}: ${gib} GiB`,
            advice: "a stack build needs 20 GiB or more: free space or use --cache-dir elsewhere",
          },
    );
  } catch (error) {
    checks.push({
      ok: false,
      what: `cache root ${root}: ${(error as Error).message}`,
      advice: "choose a writable --cache-dir",
    });
  }

  for (const name of CACHE_DIRS) {
    const dir = join(root, name);
    try {
      await mkdir(dir, { recursive: true });
      await access(dir, constants.W_OK);
      checks.push({ ok: true, what: `${dir} is writable` });
    } catch (error) {
      checks.push({
        ok: false,
        what: `${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
        advice: `make it writable: chown -R $(id -u) ${dir}`,
      });
    }
  }

  for (const c of checks) {
    process.stdout.write(`${c.ok ? "ok  " : "FAIL"} ${c.what}\n`);
    if (!c.ok && c.advice) process.stdout.write(`     → ${c.advice}\n`);
  }
  // Not failures: packing works without them, only slower (gzip) or not at all (--compress zstd).
  for (const [tool, use] of [
    ["pigz", "multi-core gzip packing (else node's single-core zlib)"],
    ["zstd", "--compress zstd"],
  ] as const) {
    const found = await findExecutable(tool);
    process.stdout.write(
      found
        ? `ok   ${tool} at ${found}: ${use}\n`
        : `note ${tool} not found: needed for ${use}; install the ${tool} package\n`,
    );
  }
  if (!checks.every((c) => c.ok)) return 1;
  // From a kit, nothing is built or fetched: the kit itself is checked.
  if (flags.kit !== undefined) return (await import("./kit-doctor.js")).kitDoctor(flags.kit, stackFile);
  return stackFile === undefined ? 0 : imageChecks(stackFile);
}

/** Every engine: reachable, its version and architecture, the free disk of its cache root (on its own host). */
async function engineChecks(settings: FactorySettings | undefined, urls: string[], root: string): Promise<Check[]> {
  const { engines: chosen } = engineChoice(settings, urls);
  const { up, down } = await connectEngines(chosen, { runId: "doctor", defaultCacheRoot: root, defaultConcurrency: 1 });
  const checks: Check[] = [];
  for (const setting of chosen) {
    const d = down.find((x) => x.name === setting.name);
    const e = up.find((x) => x.name === setting.name);
    // The one default engine keeps its old wording; named engines say their name.
    const only = chosen.length === 1 && setting.endpoint === undefined;
    const label = only ? "Docker engine" : `engine ${setting.name}: Docker`;
    if (d !== undefined) {
      checks.push({
        ok: false,
        what: `${only ? "Docker engine" : `engine ${d.name}`}: ${d.reason}`,
        advice:
          d.hint ??
          (only
            ? "start a Docker engine (scripts/ensure-docker.sh)"
            : `start the engine at ${d.where} or check that this host reaches it`),
      });
    }
    if (e === undefined) continue;
    const v = e.version!;
    const family = familyOfEngineArch(v.arch);
    checks.push(
      family === undefined
        ? {
            ok: false,
            what: `${label} ${v.version} at ${e.engine.where} is ${v.os}/${v.arch}`,
            advice: "the factory builds x86_64 (amd64) and aarch64 (arm64) targets only",
          }
        : {
            ok: true,
            what: `${label} ${v.version} (API ${v.apiVersion}, ${v.os}/${v.arch}: ${family} targets) at ${e.engine.where}`,
          },
    );
    // An engine's cache root is a path of its own host: measured here for local engines, in a container there otherwise.
    if (e.engine.local && e.cacheRoot === root) continue; // the factory's own cache root is checked below
    try {
      const free = e.engine.local ? await localFree(e.cacheRoot) : await freeBytesOnEngineHost(e.engine, e.cacheRoot);
      checks.push(
        free === undefined
          ? {
              ok: true,
              what: `engine ${e.name}: free disk under ${e.cacheRoot} not measured yet (no factory image there; the first build makes one)`,
            }
          : diskCheck(
              `engine ${e.name}: free disk under ${e.cacheRoot}`,
              free,
              `free space on ${e.name} or give it another cache: in the --factory file`,
            ),
      );
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      // A build makes a missing cache root there through the engine (run/remote-root.ts); the disk is measured then.
      checks.push(
        /bind source path does not exist/.test(message)
          ? {
              ok: true,
              what: `engine ${e.name}: cache root ${e.cacheRoot} does not exist yet; the first build makes it`,
            }
          : {
              ok: false,
              what: `engine ${e.name}: cache root ${e.cacheRoot}: ${message}`,
              advice: `check ${e.cacheRoot} on the engine's host`,
            },
      );
    }
  }
  return checks;
}

async function localFree(dir: string): Promise<number> {
  await mkdir(dir, { recursive: true });
  const fs = await statfs(dir);
  return fs.bavail * fs.bsize;
}

function diskCheck(what: string, free: number, advice: string): Check {
  const gib = (free / 1024 ** 3).toFixed(1);
  return free >= MIN_FREE_BYTES
    ? { ok: true, what: `${what}: ${gib} GiB` }
    : { ok: false, what: `${what}: ${gib} GiB`, advice: `a stack build needs 20 GiB or more: ${advice}` };
}

/** The registry of an oci:// buildcache as this host sees it, with the credentials when there are some. */
async function registryCheck(settings: FactorySettings): Promise<Check> {
  const bc = settings.buildcache as Extract<FactorySettings["buildcache"], { kind: "oci" }>;
  const url = `${bc.plainHttp ? "http" : "https"}://${bc.registry}/v2/`;
  try {
    const headers: Record<string, string> = {};
    if (settings.credentials !== undefined) {
      const c = await loadRegistryCredentials(settings.credentials);
      headers["Authorization"] = `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
    }
    const ca = settings.buildcacheCa === undefined ? undefined : await loadRegistryCa(settings.buildcacheCa);
    const answer = await registryGet(url, {
      headers,
      timeoutMs: 5000,
      ...(ca === undefined ? {} : { ca }),
    });
    await answer.text().catch(() => "");
    const status = answer.status;
    if (status >= 200 && status < 300)
      return {
        ok: true,
        what: `registry ${bc.registry} answers${settings.credentials === undefined ? "" : " and takes the credentials"} (buildcache ${bc.url})`,
      };
    if (status === 401) {
      return {
        ok: false,
        what: `registry ${bc.registry}: HTTP 401`,
        advice:
          settings.credentials === undefined
            ? "it needs credentials: credentials: FILE in the --factory file"
            : `it refused the credentials in ${settings.credentials}`,
      };
    }
    return { ok: false, what: `registry ${bc.registry}: HTTP ${status}`, advice: `check ${url}` };
  } catch (error) {
    if (error instanceof FactoryError)
      return { ok: false, what: error.message, ...(error.hint === undefined ? {} : { advice: error.hint }) };
    const reason =
      error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
    return {
      ok: false,
      what: `registry ${bc.registry}: ${reason}`,
      advice: `the engines must reach ${bc.registry}; so should this host, to check it`,
    };
  }
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
    process.stdout.write(
      `FAIL builder image has no working python3\n     → Spack needs python3: check the base image (${stack.base_image})\n`,
    );
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
