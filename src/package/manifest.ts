/** manifest.json: what a tarball holds, where it was built and which files the installer relocates. */
import { parseDynamicTags, type DynamicTag } from "./dynamic-tags.js";
import type { Portability } from "./node-check.js";
import { parseRelocateIndex, type RelocateEntry } from "./relocation-index.js";
import type { SpecRecord } from "./specs.js";

export const MANIFEST_FORMAT_VERSION = 1;

/** Keys every manifest has; the verifier checks them. */
export const MANIFEST_KEYS = [
  "format_version",
  "stack",
  "target",
  "compiler",
  "base_image",
  "image_id",
  "spack_commit",
  "specs",
  "build_prefix",
  "relocate",
  "files",
  "created_by",
] as const;

export interface ManifestSpec {
  name: string;
  version: string;
  hash: string;
  /** The package repository the recipe came from (Spack's namespace: `builtin`, or a site repository's). */
  namespace?: string;
  variants: Record<string, unknown>;
  dependencies: { name: string; hash: string }[];
}

export interface Manifest {
  format_version: number;
  stack: { name: string; version: string; file: string; description: string };
  target: string;
  /** The compiler the stack was built with, e.g. `gcc@13.3.0`, or `os` for the base image's own. */
  compiler: string;
  base_image: string;
  /** Image id (`sha256:...`) of the builder image; null when unknown. */
  image_id: string | null;
  /** Commit of the Spack checkout; null when unknown. */
  spack_commit: string | null;
  /** Commit of Spack v1.x's builtin package repository (spack-packages); null for Spack 0.2x or when unknown. */
  spack_packages_commit?: string | null;
  specs: ManifestSpec[];
  /** The view's path in the build container: an install at PREFIX maps it to PREFIX/view. */
  build_prefix: string;
  relocate: RelocateEntry[];
  /** What the tree needs from a node (machine, libraries outside the view, symbol versions); absent in older manifests. */
  portability?: Portability;
  /** The search-path tag every ELF file of the view was linked with (`verify` checks it); absent in older manifests. */
  dynamic_tags?: Record<string, DynamicTag>;
  /** Fingerprint of the key whose detached signature (`<tarball>.asc`) ships beside the tarball; absent when unsigned. */
  signing_key?: { fingerprint: string };
  /** Path relative to the top directory → sha256 hex; every regular file but manifest.json and SHA256SUMS. */
  files: Record<string, string>;
  created_by: string;
}

export interface ManifestInput {
  stack: Manifest["stack"];
  target: string;
  compiler: string;
  baseImage: string;
  imageId?: string;
  spackCommit?: string;
  spackPackagesCommit?: string;
  specs: SpecRecord[];
  buildPrefix: string;
  /** relocate.tsv as written by prepare-relocation.py. */
  relocateIndex: string;
  portability?: Portability;
  /** dynamic-tags.tsv as written by prepare-relocation.py. */
  dynamicTags?: string;
  /** Fingerprint of the tarball's signing key. */
  signingFingerprint?: string;
  createdBy?: string;
}

export function buildManifest(input: ManifestInput, files: Record<string, string> = {}): Manifest {
  return {
    format_version: MANIFEST_FORMAT_VERSION,
    stack: {
      name: input.stack.name,
      version: input.stack.version,
      file: input.stack.file,
      description: input.stack.description,
    },
    target: input.target,
    compiler: input.compiler,
    base_image: input.baseImage,
    image_id: input.imageId ?? null,
    spack_commit: input.spackCommit ?? null,
    spack_packages_commit: input.spackPackagesCommit ?? null,
    specs: input.specs.map((s) => ({
      name: s.name,
      version: s.version,
      hash: s.hash,
      ...(s.namespace === undefined ? {} : { namespace: s.namespace }),
      variants: s.variants,
      dependencies: s.dependencies.map((d) => ({ name: d.name, hash: d.hash })),
    })),
    build_prefix: input.buildPrefix,
    relocate: parseRelocateIndex(input.relocateIndex),
    ...(input.portability === undefined ? {} : { portability: input.portability }),
    ...(input.dynamicTags === undefined ? {} : { dynamic_tags: parseDynamicTags(input.dynamicTags) }),
    ...(input.signingFingerprint === undefined ? {} : { signing_key: { fingerprint: input.signingFingerprint } }),
    files,
    created_by: input.createdBy ?? "stack-factory",
  };
}

/** The manifest with its file checksums filled in, keys in their fixed order. */
export function withFiles(
  manifest: Omit<Manifest, "files"> & { files?: Record<string, string> },
  files: Record<string, string>,
): Manifest {
  const { created_by, ...rest } = manifest;
  return { ...rest, files, created_by } as Manifest;
}
