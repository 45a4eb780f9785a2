/**
 * Which concrete specs a buildcache directory holds, read from the host without Spack or a container. Two layouts:
 *
 * - Spack 1.x (`v3/`): `v3/manifests/spec/<name>/<name>-<version>-<hash>.spec.manifest.json` lists the entry's blobs
 *   (the spec and the tarball), each at `blobs/<algorithm>/<first 2>/<checksum>`; a signed entry's manifest is a
 *   clearsigned message.
 * - Spack 0.2x and the stand-in (`build_cache/`): `…-<hash>.spec.json`, or `.spec.json.sig` when signed, and the
 *   tarball `…-<hash>.spack` (flat, or in 0.2x's per-architecture folders).
 *
 * An entry counts only when everything an install reads is there and, for a signed buildcache, only when signed.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { ConcreteSpec } from "./lock-specs.js";

export type Presence = { missing: ConcreteSpec[] } | { unreadable: string };

const CLEARSIGNED = "-----BEGIN PGP SIGNED MESSAGE-----";

export async function specsInPathBuildcache(
  dir: string,
  specs: readonly ConcreteSpec[],
  options: { signed: boolean },
): Promise<Presence> {
  const top = await readdir(dir).catch((error: NodeJS.ErrnoException) => error);
  if (top instanceof Error) return { unreadable: `cannot read the buildcache ${dir} (${top.code ?? top.message})` };
  if (top.includes("v3")) return { missing: await missingV3(dir, specs, options.signed) };
  if (top.includes("build_cache")) return { missing: await missingBuildCache(dir, specs, options.signed) };
  // An empty buildcache holds nothing: every spec is missing.
  return { missing: [...specs] };
}

async function missingV3(dir: string, specs: readonly ConcreteSpec[], signed: boolean): Promise<ConcreteSpec[]> {
  const missing: ConcreteSpec[] = [];
  for (const spec of specs) {
    const folder = join(dir, "v3", "manifests", "spec", spec.name);
    const names = await readdir(folder).catch(() => [] as string[]);
    const name = names.find((n) => n.endsWith(`-${spec.hash}.spec.manifest.json`));
    if (name === undefined || !(await v3EntryComplete(dir, join(folder, name), signed))) missing.push(spec);
  }
  return missing;
}

/** The manifest parses (inside its clearsigned wrapper when signed) and every blob it lists is there. */
async function v3EntryComplete(dir: string, manifestPath: string, signed: boolean): Promise<boolean> {
  const text = await readFile(manifestPath, "utf8").catch(() => undefined);
  if (text === undefined) return false;
  const isSigned = text.startsWith(CLEARSIGNED);
  if (signed && !isSigned) return false;
  const json = isSigned ? text.slice(text.indexOf("{"), text.lastIndexOf("}") + 1) : text;
  let blobs: unknown;
  try {
    blobs = (JSON.parse(json) as { data?: unknown }).data;
  } catch {
    return false;
  }
  if (!Array.isArray(blobs) || blobs.length === 0) return false;
  for (const blob of blobs as { checksumAlgorithm?: unknown; checksum?: unknown }[]) {
    const algorithm = blob.checksumAlgorithm;
    const sum = blob.checksum;
    if (typeof algorithm !== "string" || typeof sum !== "string") return false;
    if (!/^[a-z0-9]+$/.test(algorithm) || !/^[a-f0-9]{32,128}$/.test(sum)) return false;
    const found = await stat(join(dir, "blobs", algorithm, sum.slice(0, 2), sum)).catch(() => undefined);
    if (found?.isFile() !== true) return false;
  }
  return true;
}

async function missingBuildCache(
  dir: string,
  specs: readonly ConcreteSpec[],
  signed: boolean,
): Promise<ConcreteSpec[]> {
  const root = join(dir, "build_cache");
  const entries = await readdir(root, { recursive: true }).catch(() => [] as string[]);
  const specFiles = new Set<string>();
  const tarballs = new Set<string>();
  for (const entry of entries) {
    const base = entry.slice(entry.lastIndexOf("/") + 1);
    const m = /-([a-z0-9]{32})\.(spec\.json\.sig|spec\.json|spack)$/.exec(base);
    if (m === null) continue;
    if (m[2] === "spack") tarballs.add(m[1] as string);
    // Spec files sit directly in build_cache/; a signed buildcache takes only signed ones (as installs do), an
    // unsigned one (`signed: false`) either.
    else if (!entry.includes("/") && (m[2] === "spec.json.sig" || !signed)) specFiles.add(m[1] as string);
  }
  return specs.filter((s) => !(specFiles.has(s.hash) && tarballs.has(s.hash)));
}
