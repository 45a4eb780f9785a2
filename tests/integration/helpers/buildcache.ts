/**
 * What a filesystem buildcache holds, read as Spack 1.x lays it out (build cache layout version 3):
 * `v3/manifests/spec/<name>/<name>-<version>-<hash>.spec.manifest.json` per entry (clearsigned when signed), listing
 * its blobs at `blobs/<algorithm>/<first 2>/<checksum>`; the index through `v3/manifests/index/index.manifest.json`.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { join } from "node:path";

export const TARBALL_TYPE = "application/vnd.spack.install.v2.tar+gzip";
export const SPEC_TYPE = "application/vnd.spack.spec.v5+json";
export const INDEX_TYPE = "application/vnd.spack.db.v8+json";

export interface BlobRecord {
  contentLength: number;
  mediaType: string;
  compression: string;
  checksumAlgorithm: string;
  checksum: string;
}

export interface BuildcacheEntry {
  /** `<name>-<version>-<hash>`, as Spack names the manifest. */
  short: string;
  name: string;
  hash: string;
  manifestPath: string;
  signed: boolean;
  /** The manifest's text as it is on disk (the clearsigned message when signed). */
  text: string;
  version: number;
  data: BlobRecord[];
}

const CLEARSIGNED = "-----BEGIN PGP SIGNED MESSAGE-----";

export function blobPath(dir: string, record: BlobRecord): string {
  return join(dir, "blobs", record.checksumAlgorithm, record.checksum.slice(0, 2), record.checksum);
}

function parseManifest(text: string): { version: number; data: BlobRecord[] } {
  const json = text.startsWith(CLEARSIGNED) ? text.slice(text.indexOf("{"), text.lastIndexOf("}") + 1) : text;
  return JSON.parse(json) as { version: number; data: BlobRecord[] };
}

/** Every spec manifest of the buildcache `dir`, sorted by name; [] when it has no `v3/` tree. */
export function buildcacheEntries(dir: string): BuildcacheEntry[] {
  const top = join(dir, "v3", "manifests", "spec");
  if (!existsSync(top)) return [];
  const entries: BuildcacheEntry[] = [];
  for (const name of readdirSync(top).sort()) {
    for (const file of readdirSync(join(top, name)).sort()) {
      const m = /^(.+)-([a-z0-9]{32})\.spec\.manifest\.json$/.exec(file);
      if (m === null) continue;
      const manifestPath = join(top, name, file);
      const text = readFileSync(manifestPath, "utf8");
      entries.push({
        short: `${m[1]}-${m[2]}`,
        name,
        hash: m[2] as string,
        manifestPath,
        signed: text.startsWith(CLEARSIGNED),
        text,
        ...parseManifest(text),
      });
    }
  }
  return entries;
}

/** The blob of `mediaType` an entry lists (the test fails when there is none). */
export function recordOf(entry: { data: BlobRecord[] }, mediaType: string): BlobRecord {
  const record = entry.data.find((r) => r.mediaType === mediaType);
  if (record === undefined) throw new Error(`no blob of type ${mediaType} in ${JSON.stringify(entry.data)}`);
  return record;
}

/** The spec document of an entry, from its gzipped spec blob. */
export function specDocument(dir: string, entry: BuildcacheEntry): { spec: { nodes: { hash: string }[] } } {
  return JSON.parse(gunzipSync(readFileSync(blobPath(dir, recordOf(entry, SPEC_TYPE)))).toString("utf8"));
}

/** The buildcache index (Spack's database format) the index manifest names. */
export function buildcacheIndex(dir: string): { database: { version: string; installs: Record<string, unknown> } } {
  const manifest = parseManifest(readFileSync(join(dir, "v3", "manifests", "index", "index.manifest.json"), "utf8"));
  return JSON.parse(readFileSync(blobPath(dir, recordOf(manifest, INDEX_TYPE)), "utf8"));
}
