/**
 * Which factory this is, for plans it writes and reads: its version and a digest of what decides how it runs a plan
 * (its code as it runs, from `src/` or `dist-js/`, the builder's `docker/` files and the templates). A plan placed by
 * another factory is refused rather than run by code that may read it differently.
 */
import { createHash } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { projectRoot } from "./project-root.js";

export interface FactoryIdentity {
  version: string;
  /** sha256 (hex, 16 characters) of the code and template files, by relative path. */
  digest: string;
}

let cached: Promise<FactoryIdentity> | undefined;

export function factoryIdentity(): Promise<FactoryIdentity> {
  cached ??= identify();
  return cached;
}

async function identify(): Promise<FactoryIdentity> {
  const pkg = JSON.parse(await readFile(join(projectRoot, "package.json"), "utf8")) as { version: string };
  const code = dirname(fileURLToPath(import.meta.url));
  const hash = createHash("sha256");
  for (const dir of [code, ...["docker", "templates", "modules-templates"].map((d) => join(projectRoot, d))]) {
    for (const file of await filesUnder(dir)) {
      hash.update(`${relative(projectRoot, file)}\0`);
      hash.update(await readFile(file));
      hash.update("\0");
    }
  }
  return { version: pkg.version, digest: hash.digest("hex").slice(0, 16) };
}

/** Regular files under `dir`, in byte order of their paths. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
