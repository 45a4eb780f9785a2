/**
 * Which concrete specs an OCI buildcache holds, asked of the registry's HTTP API from the host (no container, no
 * Spack): the repository's tags (`/v2/<repository>/tags/list`, a tag `…-<hash>.spack` per spec) and its index (the
 * `index.spack` tag's one layer), since installs look specs up in the index: a tag no index lists is not found.
 * Basic authentication with the factory's credentials when the registry asks for it; anything else it asks for is
 * a reason to ask Spack instead.
 */
import type { BuildcacheLocation } from "../config/factory.js";
import type { RegistryCredentials } from "../plan/placement.js";
import type { Presence } from "./buildcache-path.js";
import type { ConcreteSpec } from "./lock-specs.js";
import { registryGet, type RegistryResponse } from "./registry-get.js";

const MANIFEST_TYPES =
  "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
const INDEX_TAG = "index.spack";
const TIMEOUT_MS = 15_000;

export interface OciReadOptions {
  location: Extract<BuildcacheLocation, { kind: "oci" }>;
  /** The repository under the registry (`<location.repository>/<key component>`). */
  repository: string;
  credentials?: RegistryCredentials;
  /** The registry's own CA (PEM, factory settings `buildcache_ca`), trusted beside the system's. */
  ca?: string;
  signal: AbortSignal;
}

export async function specsInOciBuildcache(specs: readonly ConcreteSpec[], options: OciReadOptions): Promise<Presence> {
  try {
    const tags = new Set(await listTags(options));
    const indexed = await indexedHashes(options);
    const present = (s: ConcreteSpec) => indexed.has(s.hash) && [...tags].some((t) => t.endsWith(`${s.hash}.spack`));
    return { missing: specs.filter((s) => !present(s)) };
  } catch (error) {
    if (options.signal.aborted) throw error;
    return {
      unreadable: `cannot read the buildcache ${options.location.registry}/${options.repository}: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
}

async function listTags(options: OciReadOptions): Promise<string[]> {
  const tags: string[] = [];
  let path: string | undefined = `/v2/${options.repository}/tags/list?n=1000`;
  for (let page = 0; path !== undefined && page < 1000; page++) {
    const response = await request(path, options, "application/json");
    // A repository nothing was pushed to yet holds nothing.
    if (response.status === 404) {
      await response.text().catch(() => "");
      return tags;
    }
    await expectOk(response, "tags/list");
    const body = JSON.parse(await response.text()) as { tags?: unknown };
    if (Array.isArray(body.tags)) tags.push(...body.tags.filter((t): t is string => typeof t === "string"));
    path = nextPage(response.header("link") ?? null);
  }
  return tags;
}

/** The hashes the buildcache index lists (none when there is no index). */
async function indexedHashes(options: OciReadOptions): Promise<Set<string>> {
  const manifest = await request(`/v2/${options.repository}/manifests/${INDEX_TAG}`, options, MANIFEST_TYPES);
  if (manifest.status === 404) {
    await manifest.text().catch(() => "");
    return new Set();
  }
  await expectOk(manifest, `manifests/${INDEX_TAG}`);
  const layers = (JSON.parse(await manifest.text()) as { layers?: { digest?: unknown }[] }).layers;
  const digest = layers?.[0]?.digest;
  if (typeof digest !== "string" || !/^sha256:[a-f0-9]{64}$/.test(digest))
    throw new Error(`the ${INDEX_TAG} manifest names no index blob`);
  const blob = await request(`/v2/${options.repository}/blobs/${digest}`, options, "*/*");
  await expectOk(blob, `blobs/${digest}`);
  const installs = (JSON.parse(await blob.text()) as { database?: { installs?: unknown } }).database?.installs;
  if (typeof installs !== "object" || installs === null) throw new Error(`the ${INDEX_TAG} index has no installs`);
  return new Set(Object.keys(installs));
}

async function request(path: string, options: OciReadOptions, accept: string): Promise<RegistryResponse> {
  const { location } = options;
  const url = `${location.plainHttp ? "http" : "https"}://${location.registry}${path}`;
  const get = (headers: Record<string, string>) =>
    registryGet(url, {
      headers,
      signal: options.signal,
      timeoutMs: TIMEOUT_MS,
      ...(options.ca === undefined ? {} : { ca: options.ca }),
    });
  const first = await get({ accept });
  if (first.status !== 401) return first;
  const challenge = first.header("www-authenticate") ?? "";
  await first.text().catch(() => "");
  if (!/^basic\b/i.test(challenge))
    throw new Error(
      `the registry asks for ${challenge.split(" ")[0] || "an unknown"} authentication (only basic is read here)`,
    );
  if (options.credentials === undefined) throw new Error("the registry asks for credentials and none were given");
  const { username, password } = options.credentials;
  return get({ accept, authorization: `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}` });
}

async function expectOk(response: RegistryResponse, what: string): Promise<void> {
  if (response.status >= 200 && response.status < 300) return;
  await response.text().catch(() => "");
  throw new Error(`${what} answered HTTP ${response.status}`);
}

/** The path of `Link: </v2/…?last=x&n=1000>; rel="next"`, if any (same registry only). */
function nextPage(link: string | null): string | undefined {
  const m = link === null ? null : /<(\/v2\/[^>]*)>\s*;\s*rel="?next"?/.exec(link);
  return m?.[1];
}
